//! The SQL surface of request extension (engine/request_extension.rs).

use crate::engine::request_extension::*;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

/// `retention.extend_request(request_id, by, reason)`: extends an open erasure request's
/// deadline; returns the new `due_at`.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn extend_request(
    request_id: Option<i64>,
    by: Option<Interval>,
    reason: Option<&str>,
) -> SqlResult<TimestampWithTimeZone> {
    crate::pg::preconditions::require_primary("retention.extend_request()")?;
    let id = required(request_id, "request_id")?;
    let by = required(by, "by")?;
    let reason = required(reason, "reason")?;
    if reason.trim().is_empty() {
        return Err(RetentionError::InvalidValue("reason must not be empty".into()).into());
    }
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            lock_open(client, id)?;
            check_extension(client, id, by)?;
            client.update(
                "INSERT INTO retention.erasure_extensions (request_id, extension, reason, extended_by)
                 VALUES ($1, $2, $3, $4)",
                None,
                &[id.into(), by.into(), reason.into(), crate::pg::identity::caller_name().into()],
            )?;
            client
                .update(
                    "UPDATE retention.erasure_records SET due_at = due_at + $2 WHERE id = $1
                     RETURNING due_at",
                    None,
                    &[id.into(), by.into()],
                )?
                .first()
                .get_one::<TimestampWithTimeZone>()?
                .ok_or(RetentionError::UnknownErasureRequest(id))
        })
    })?)
}
