//! Soft-delete windows per path: how long a soft-deleted row stays recoverable depends on why
//! it went. A category (and a tenant override of it) has one window for every path
//! (`soft_delete_window`) and may name another per path (`soft_delete_windows`):
//! `expired` (its retention ran out, event clocks such as termination included) and
//! `customer_request` (`retention.request_delete()` and its queue, whatever reason it gave, and
//! rows the application soft-deleted itself).

use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// Why a row was soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Expired,
    CustomerRequest,
}

impl Path {
    /// The key of `soft_delete_windows`; `expired` is also the log reason of an expiry.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Expired => "expired",
            Path::CustomerRequest => "customer_request",
        }
    }

    /// The path `retention.soft_delete_path()` answered.
    pub fn from_sql(answer: Option<&str>) -> Self {
        if answer == Some(Path::Expired.as_str()) {
            Path::Expired
        } else {
            Path::CustomerRequest
        }
    }

    fn parse(key: &str) -> Result<Self, RetentionError> {
        match key {
            "expired" => Ok(Path::Expired),
            "customer_request" => Ok(Path::CustomerRequest),
            other => Err(RetentionError::InvalidValue(format!(
                "unknown soft-delete path \"{other}\": expected expired or customer_request"
            ))),
        }
    }
}

/// The windows of a category or of a tenant override (None: not set there).
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    /// `soft_delete_window`: every path without a window of its own.
    pub any: Option<Interval>,
    pub expired: Option<Interval>,
    pub customer_request: Option<Interval>,
}

impl Windows {
    /// The window of one path; None: rows on it are hard-deleted at once.
    pub fn of(&self, path: Path) -> Option<Interval> {
        match path {
            Path::Expired => self.expired.or(self.any),
            Path::CustomerRequest => self.customer_request.or(self.any),
        }
    }

    /// Whether any path keeps soft-deleted rows recoverable.
    pub fn any_path(&self) -> bool {
        self.any.is_some() || self.expired.is_some() || self.customer_request.is_some()
    }

    /// Whether both paths have the same window (one condition serves every soft-deleted row).
    pub fn uniform(&self) -> bool {
        let (e, c) = (self.of(Path::Expired), self.of(Path::CustomerRequest));
        e.map(parts) == c.map(parts)
    }

    /// The shorter of the paths' windows (zero for a path without one), ordered as
    /// PostgreSQL orders intervals (a month is 30 days).
    pub fn shortest(&self) -> Interval {
        let zero = crate::engine::period::zero();
        let length =
            |w: &Interval| (w.months() as i64 * 30 + w.days() as i64) * 86_400_000_000 + w.micros();
        [self.of(Path::Expired), self.of(Path::CustomerRequest)]
            .into_iter()
            .map(|w| w.unwrap_or(zero))
            .min_by_key(length)
            .unwrap_or(zero)
    }

    /// A tenant override's windows over its category's: the tenant's window for the path, the
    /// tenant's window for every path, the category's for the path, the category's.
    pub fn over(&self, category: &Windows) -> Windows {
        Windows {
            any: self.any.or(category.any),
            expired: self.expired.or(self.any).or(category.expired),
            customer_request: self
                .customer_request
                .or(self.any)
                .or(category.customer_request),
        }
    }

    /// Conditions that soft-deleted row `t` (its soft-delete column `soft`) has been
    /// recoverable long enough at `at`; `path` is its path (see [`path_sql`]), read only when
    /// the paths' windows differ. A path without a window finishes at once.
    pub fn finished_sql(
        &self,
        soft: &str,
        at: &str,
        path: &str,
        params: &mut Params,
    ) -> Vec<String> {
        let zero = crate::engine::period::zero;
        let expired = params.bind(self.of(Path::Expired).unwrap_or_else(zero));
        if self.uniform() {
            return vec![format!("{soft} <= {at} - {expired}::interval")];
        }
        let request = params.bind(self.of(Path::CustomerRequest).unwrap_or_else(zero));
        vec![
            // The index range every finished row is in, then each row's own window.
            format!("{soft} <= GREATEST({at} - {expired}::interval, {at} - {request}::interval)"),
            format!(
                "{soft} <= {at} - CASE WHEN {path} = '{}' THEN {expired}::interval ELSE {request}::interval END",
                Path::Expired.as_str()
            ),
        ]
    }
}

fn parts(i: Interval) -> (i32, i32, i64) {
    (i.months(), i.days(), i.micros())
}

/// Reads `soft_delete_window` and `soft_delete_windows` (`{"customer_request": "30 days",
/// "expired": "90 days"}`): known paths only, each window neither negative nor absurd.
pub fn parse(
    client: &SpiClient,
    any: Option<Interval>,
    per_path: Option<pgrx::JsonB>,
) -> Result<Windows, RetentionError> {
    if let Some(window) = &any {
        crate::engine::period::check_interval("soft_delete_window", window)?;
    }
    let mut windows = Windows {
        any,
        ..Windows::default()
    };
    let Some(pgrx::JsonB(value)) = per_path else {
        return Ok(windows);
    };
    let Some(object) = value.as_object() else {
        return Err(RetentionError::InvalidValue(
            "soft_delete_windows must be a JSON object: {\"customer_request\": \"30 days\", \"expired\": \"90 days\"}".into(),
        ));
    };
    for (key, text) in object {
        let path = Path::parse(key)?;
        let Some(text) = text.as_str() else {
            return Err(RetentionError::InvalidValue(format!(
                "soft_delete_windows.{key} must be an interval as text (\"30 days\")"
            )));
        };
        let window = client
            .select("SELECT $1::text::interval", Some(1), &[text.into()])?
            .first()
            .get_one::<Interval>()?
            .unwrap_or_else(crate::engine::period::zero);
        crate::engine::period::check_interval(&format!("soft_delete_windows.{key}"), &window)?;
        match path {
            Path::Expired => windows.expired = Some(window),
            Path::CustomerRequest => windows.customer_request = Some(window),
        }
    }
    Ok(windows)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    /// Projects: recoverable 30 days after a customer's deletion, 90 after termination.
    fn setup() {
        Spi::run(
            "SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination',
                     soft_delete_windows => '{\"customer_request\": \"30 days\", \"expired\": \"90 days\"}');
             CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
             SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                                     soft_delete_column => 'deleted_at');
             INSERT INTO projects VALUES (1, 'acme', NULL), (2, 'globex', NULL), (3, 'globex', NULL);",
        )
        .unwrap();
    }

    fn age_soft_deletes(by: &str) {
        Spi::run(&format!(
            "UPDATE projects SET deleted_at = deleted_at - interval '{by}' WHERE deleted_at IS NOT NULL"
        ))
        .unwrap();
    }

    #[pg_test]
    fn each_path_keeps_its_own_window() {
        setup();
        assert_eq!(
            Spi::get_one::<pgrx::JsonB>(
                "SELECT soft_delete_windows FROM retention.categories WHERE name = 'projects'"
            )
            .unwrap()
            .map(|j| j.0),
            Some(serde_json::json!({"customer_request": "30 days", "expired": "90 days"}))
        );
        // Acme deletes project 1; globex is terminated: 2 and 3 are soft-deleted as expired.
        Spi::run("SELECT retention.request_delete('projects', ARRAY[1])").unwrap();
        Spi::run("SELECT retention.record_event('globex', 'termination', now())").unwrap();
        assert_eq!(
            int("SELECT sum(soft_deleted)::bigint FROM retention.run()"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE deleted_at IS NOT NULL"),
            3
        );
        // 31 days on: the customer's deletion is final, the terminated ones are recoverable.
        age_soft_deletes("31 days");
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM projects"), 2);
        assert_eq!(
            sqlstate("SELECT retention.restore('projects', ARRAY[1])"),
            "55000"
        );
        assert_eq!(int("SELECT retention.restore('projects', ARRAY[2])"), 1);
        Spi::run("SELECT retention.cancel_event('globex', 'termination')").unwrap();
        // 91 days after termination, the other terminated project goes.
        age_soft_deletes("60 days");
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT min(id) * count(*) FROM projects"), 2);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete' AND reason = 'expired' AND row_key = '{\"id\": 3}'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete' AND reason = 'customer_request' AND row_key = '{\"id\": 1}'"), 1);
    }

    #[pg_test]
    fn a_tenant_override_replaces_a_path_window() {
        setup();
        Spi::run(
            "SELECT retention.set_tenant_policy('acme', 'projects', '0',
                     soft_delete_windows => '{\"customer_request\": \"60 days\"}');
             SELECT retention.request_delete('projects', ARRAY[1, 2]);",
        )
        .unwrap();
        age_soft_deletes("31 days");
        // Globex's deletion follows the category (30 days), acme's its contract (60 days).
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM projects WHERE id = 1"), 1);
        assert_eq!(int("SELECT retention.restore('projects', ARRAY[1])"), 1);
    }

    #[pg_test]
    fn a_locked_category_keeps_each_path_window() {
        setup();
        Spi::run("SELECT retention.lock_category('projects')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination',
                      soft_delete_windows => '{\"customer_request\": \"7 days\", \"expired\": \"90 days\"}')"),
            "42501"
        );
        assert_eq!(
            sqlstate(
                "SELECT retention.set_tenant_policy('acme', 'projects', '0',
                      soft_delete_windows => '{\"expired\": \"10 days\"}')"
            ),
            "42501"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination',
                      soft_delete_windows => '{\"customer_request\": \"45 days\", \"expired\": \"1 year\"}')"),
            "00000"
        );
    }
}
