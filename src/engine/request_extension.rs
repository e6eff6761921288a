//! Deadline extensions of erasure requests. GDPR Art. 12(3) lets a controller extend the
//! one-month deadline by at most two further months, giving the data subject the reasons:
//! `retention.extend_request()` records each extension (how long, why, who, when) in
//! `retention.erasure_extensions` and moves the request's `due_at`, which the overdue views
//! follow.

use crate::engine::vocabulary::ErasureStatus;
use crate::error::RetentionError;
use pgrx::datum::Interval;
use pgrx::spi::SpiClient;

/// The most a request's deadline may be extended, in total (GDPR Art. 12(3)).
pub const MOST: &str = "2 months";

/// Locks request `id`; refuses an unknown (42704) or completed (55000) one.
pub fn lock_open(client: &mut SpiClient, id: i64) -> Result<(), RetentionError> {
    if crate::engine::erasure::lock_request(client, id)? == ErasureStatus::Completed {
        return Err(RetentionError::RequestCompleted(id));
    }
    Ok(())
}

/// `by` is positive and, with the request's earlier extensions, at most [`MOST`] (22023).
pub fn check_extension(client: &SpiClient, id: i64, by: Interval) -> Result<(), RetentionError> {
    let row = client
        .select(
            "SELECT $2 > interval '0',
                    coalesce(sum(x.extension), interval '0') + $2 <= $3::interval,
                    coalesce(sum(x.extension), interval '0')::text
               FROM retention.erasure_extensions x WHERE x.request_id = $1",
            Some(1),
            &[id.into(), by.into(), MOST.into()],
        )?
        .first();
    if !row.get::<bool>(1)?.unwrap_or(false) {
        return Err(RetentionError::InvalidValue(
            "by must be a positive interval".into(),
        ));
    }
    if !row.get::<bool>(2)?.unwrap_or(false) {
        let already = row.get::<String>(3)?.unwrap_or_default();
        return Err(RetentionError::InvalidValue(format!(
            "a request's deadline may be extended by at most {MOST} in total (already {already})"
        )));
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn a_deadline_moves_by_at_most_two_months_with_reasons() {
        let id = int("SELECT retention.request_erasure('s1', now() - interval '40 days')");
        assert_eq!(
            int("SELECT count(*) FROM retention.overdue_erasure_requests"),
            1
        );
        Spi::run(&format!(
            "SELECT retention.extend_request({id}, '1 month', 'backups in three systems')"
        ))
        .unwrap();
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND NOT overdue
                    AND due_at = received_at + interval '30 days' + interval '1 month'
                    AND extended_by = interval '1 month'"
            )),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.overdue_erasure_requests"),
            0
        );
        for (sql, state) in [
            (
                format!("SELECT retention.extend_request({id}, '1 month 1 day', 'more')"),
                "22023",
            ),
            (
                format!("SELECT retention.extend_request({id}, '0', 'none')"),
                "22023",
            ),
            (
                format!("SELECT retention.extend_request({id}, '-1 day', 'back')"),
                "22023",
            ),
            (
                format!("SELECT retention.extend_request({id}, '1 day', ' ')"),
                "22023",
            ),
            (
                format!("SELECT retention.extend_request({id}, NULL, 'x')"),
                "22004",
            ),
            (
                format!("SELECT retention.extend_request({id}, '1 day', NULL)"),
                "22004",
            ),
            (
                "SELECT retention.extend_request(NULL, '1 day', 'x')".into(),
                "22004",
            ),
            (
                "SELECT retention.extend_request(999999, '1 day', 'x')".into(),
                "42704",
            ),
        ] {
            assert_eq!(sqlstate(&sql), state, "{sql}");
        }
        Spi::run(&format!(
            "SELECT retention.extend_request({id}, '1 month', 'second system')"
        ))
        .unwrap();
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.erasure_extensions WHERE request_id = {id}
                    AND extended_by = current_user AND reason <> ''"
            )),
            2
        );
        assert_eq!(
            sqlstate(&format!(
                "SELECT retention.extend_request({id}, '1 day', 'a third')"
            )),
            "22023"
        );
        let done = int("SELECT retention.request_erasure('s2')");
        Spi::run(&format!("SELECT retention.verify_erasure({done})")).unwrap();
        assert_eq!(
            sqlstate(&format!(
                "SELECT retention.extend_request({done}, '1 day', 'late')"
            )),
            "55000"
        );
    }
}
