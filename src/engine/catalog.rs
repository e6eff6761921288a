//! Retention categories: `retention.define_category`, `retention.drop_category`, and the
//! in-memory [`Category`] every other module reads.

use crate::engine::period::{check_interval, zero};
use crate::engine::windows::Windows;
use crate::error::RetentionError;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// The deletion log's own category: built in (7 years unless redefined), never dropped.
pub const BUILTIN: &str = "deletion_log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Created,
    LastActivity,
    Event,
    Parent,
}

impl Clock {
    /// The name `define_category` takes and `category_definitions.clock` stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Created => "created",
            Clock::LastActivity => "last_activity",
            Clock::Event => "event",
            Clock::Parent => "parent",
        }
    }

    pub fn parse(s: &str) -> Result<Self, RetentionError> {
        Ok(match s {
            "created" => Clock::Created,
            "last_activity" => Clock::LastActivity,
            "event" => Clock::Event,
            "parent" => Clock::Parent,
            other => {
                return Err(RetentionError::InvalidValue(format!(
                    "unknown clock \"{other}\": expected created, last_activity, event or parent"
                )))
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    Anonymize,
}

impl Action {
    /// The name `define_category` takes and `category_definitions.action` stores
    /// (CHECK `category_action_known`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Anonymize => "anonymize",
        }
    }

    pub fn parse(s: &str) -> Result<Self, RetentionError> {
        match s {
            "delete" => Ok(Action::Delete),
            "anonymize" => Ok(Action::Anonymize),
            other => Err(RetentionError::InvalidValue(format!(
                "unknown action \"{other}\": expected delete or anonymize"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub retain_for: Interval,
    pub clock: Clock,
    pub action: Action,
    /// Soft-delete windows, per path (see windows.rs).
    pub windows: Windows,
    pub event: Option<String>,
    pub erasure_exempt: bool,
    /// Locked by `retention.lock_category()`: rows leave only by expiry.
    pub locked: bool,
    /// The role whose members approve the disposal of due rows (see disposition.rs).
    pub review: Option<String>,
    /// Pending disposition batches older than this are approved without a reviewer.
    pub auto_approve_after: Option<Interval>,
}

/// The columns [`from_row`] reads; `locked` exists from schema 0.5.0 on, per-path windows
/// and review from 0.6.0 on.
fn category_columns() -> Result<String, RetentionError> {
    use crate::pg::schema_version::{at_least, CATEGORY_LOCKS, GOVERNANCE};
    let locked = if at_least(CATEGORY_LOCKS)? {
        "locked"
    } else {
        "false"
    };
    let governance = if at_least(GOVERNANCE)? {
        "(soft_delete_windows ->> 'expired')::interval,
         (soft_delete_windows ->> 'customer_request')::interval, review, auto_approve_after"
    } else {
        "NULL::interval, NULL::interval, NULL::text, NULL::interval"
    };
    Ok(format!(
        "name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, {locked},
         {governance}"
    ))
}

fn from_row(row: &pgrx::spi::SpiHeapTupleData) -> Result<Category, RetentionError> {
    Ok(Category {
        name: row.get::<String>(1)?.unwrap_or_default(),
        retain_for: row.get::<Interval>(2)?.unwrap_or_else(zero),
        clock: Clock::parse(&row.get::<String>(3)?.unwrap_or_default())?,
        action: Action::parse(&row.get::<String>(4)?.unwrap_or_default())?,
        windows: Windows {
            any: row.get::<Interval>(5)?,
            expired: row.get::<Interval>(9)?,
            customer_request: row.get::<Interval>(10)?,
        },
        event: row.get::<String>(6)?,
        erasure_exempt: row.get::<bool>(7)?.unwrap_or(false),
        locked: row.get::<bool>(8)?.unwrap_or(false),
        review: row.get::<String>(11)?,
        auto_approve_after: row.get::<Interval>(12)?,
    })
}

/// Every category, by name.
pub fn load_all(client: &SpiClient) -> Result<Vec<Category>, RetentionError> {
    let sql = format!(
        "SELECT {} FROM retention.categories ORDER BY name",
        category_columns()?
    );
    client
        .select(&sql, None, &[])?
        .map(|row| from_row(&row))
        .collect()
}

/// One category; [`RetentionError::UnknownCategory`] when there is none of that name.
pub fn load(client: &SpiClient, name: &str) -> Result<Category, RetentionError> {
    let sql = format!(
        "SELECT {} FROM retention.categories WHERE name = $1",
        category_columns()?
    );
    let rows = client.select(&sql, Some(1), &[name.into()])?;
    match rows.into_iter().next() {
        Some(row) => from_row(&row),
        None => Err(RetentionError::UnknownCategory(name.to_string())),
    }
}

/// An event name with clock event, and only then.
pub fn check_event(clock: Clock, event: Option<&str>) -> Result<(), RetentionError> {
    match (clock, event) {
        (Clock::Event, None) => Err(RetentionError::InvalidValue(
            "clock event needs an event name (event => 'termination')".into(),
        )),
        (Clock::Event, Some(e)) if e.trim().is_empty() => Err(RetentionError::InvalidValue(
            "event name must not be empty".into(),
        )),
        (c, Some(_)) if c != Clock::Event => Err(RetentionError::InvalidValue(
            "an event name is only meaningful with clock event".into(),
        )),
        _ => Ok(()),
    }
}

impl Category {
    /// [`Category::store`] on a schema without per-path windows and review (before 0.6.0).
    fn store_before_governance(
        &self,
        client: &mut SpiClient,
        description: Option<&str>,
    ) -> Result<(), RetentionError> {
        let w = &self.windows;
        if w.expired.is_some() || w.customer_request.is_some() || self.review.is_some() {
            crate::pg::schema_version::require_current()?;
        }
        let args: [DatumWithOid; 9] = [
            self.name.as_str().into(),
            self.retain_for.into(),
            self.clock.as_str().into(),
            self.action.as_str().into(),
            w.any.into(),
            self.event.as_deref().into(),
            self.erasure_exempt.into(),
            description.into(),
            crate::pg::identity::caller_name().into(),
        ];
        client.update(
            "INSERT INTO retention.category_definitions AS c
                 (name, retain_for, clock, action, soft_delete_window, event, erasure_exempt,
                  description, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET
                 retain_for = excluded.retain_for, clock = excluded.clock,
                 action = excluded.action, soft_delete_window = excluded.soft_delete_window,
                 event = excluded.event, erasure_exempt = excluded.erasure_exempt,
                 description = coalesce(excluded.description, c.description),
                 updated_at = now(), updated_by = excluded.updated_by",
            None,
            &args,
        )?;
        Ok(())
    }

    /// Checks a definition's options against each other, the built-in category's rules and
    /// the reviewing role.
    pub fn check(&self, client: &SpiClient) -> Result<(), RetentionError> {
        let invalid = |m: &str| Err(RetentionError::InvalidValue(m.into()));
        if self.windows.any_path() && self.action == Action::Anonymize {
            return invalid("a soft-delete window applies to action delete only");
        }
        if self.windows.any_path() && self.clock == Clock::Parent {
            return invalid(
                "a soft-delete window does not apply to clock parent: rows go with their parent",
            );
        }
        if self.name == BUILTIN {
            if self.clock != Clock::Created
                || self.action != Action::Delete
                || self.windows.any_path()
                || self.review.is_some()
            {
                return invalid("built-in category \"deletion_log\" deletes by creation time, without a window or a review");
            }
            check_log_period(client, self.retain_for)?;
        }
        if let Some(after) = &self.auto_approve_after {
            check_interval("auto_approve_after", after)?;
            if self.review.is_none() {
                return invalid("auto_approve_after needs a reviewing role (review => 'role')");
            }
        }
        if let Some(role) = &self.review {
            if self.clock == Clock::Parent {
                return invalid(
                    "a review does not apply to clock parent: rows go with their parent",
                );
            }
            crate::engine::catalog::check_reviewer(client, role)?;
        }
        Ok(())
    }

    /// Inserts or replaces the definition (the description stays when none is given). A
    /// schema older than 0.6.0 stores what it has columns for, and refuses the rest.
    pub fn store(
        &self,
        client: &mut SpiClient,
        description: Option<&str>,
    ) -> Result<(), RetentionError> {
        if !crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
            return self.store_before_governance(client, description);
        }
        let args: [DatumWithOid; 13] = [
            self.name.as_str().into(),
            self.retain_for.into(),
            self.clock.as_str().into(),
            self.action.as_str().into(),
            self.windows.any.into(),
            self.event.as_deref().into(),
            self.erasure_exempt.into(),
            description.into(),
            crate::pg::identity::caller_name().into(),
            self.windows.expired.into(),
            self.windows.customer_request.into(),
            self.review.as_deref().into(),
            self.auto_approve_after.into(),
        ];
        client.update(
            "INSERT INTO retention.category_definitions AS c
                 (name, retain_for, clock, action, soft_delete_window, event, erasure_exempt,
                  description, updated_by, window_expired, window_customer_request, review,
                  auto_approve_after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (name) DO UPDATE SET
                 retain_for = excluded.retain_for, clock = excluded.clock,
                 action = excluded.action, soft_delete_window = excluded.soft_delete_window,
                 event = excluded.event, erasure_exempt = excluded.erasure_exempt,
                 description = coalesce(excluded.description, c.description),
                 window_expired = excluded.window_expired,
                 window_customer_request = excluded.window_customer_request,
                 review = excluded.review, auto_approve_after = excluded.auto_approve_after,
                 updated_at = now(), updated_by = excluded.updated_by",
            None,
            &args,
        )?;
        Ok(())
    }
}

/// Checks a new period for the built-in `deletion_log` category: never below
/// `pg_retention.log_floor_days` (default 365),
/// and shorter than the period in force only for a role with the legal duty (EXECUTE on
/// `place_hold`): the policy admin alone cannot shorten the audit trail.
fn check_log_period(client: &SpiClient, retain_for: Interval) -> Result<(), RetentionError> {
    let row = client
        .select(
            "SELECT $1 < pg_catalog.make_interval(days => $2),
                    $1 < (SELECT retain_for FROM retention.categories WHERE name = 'deletion_log'),
                    pg_catalog.has_function_privilege($3::oid,
                        'retention.place_hold'::pg_catalog.regproc::oid, 'EXECUTE')",
            Some(1),
            &[
                retain_for.into(),
                crate::pg::gucs::LOG_FLOOR_DAYS.get().into(),
                crate::pg::identity::caller_oid().into(),
            ],
        )?
        .first();
    let (below_floor, shorter, legal) = (
        row.get::<bool>(1)?.unwrap_or(true),
        row.get::<bool>(2)?.unwrap_or(true),
        row.get::<bool>(3)?.unwrap_or(false),
    );
    if below_floor {
        return Err(RetentionError::InvalidValue(format!(
            "the deletion log keeps its entries at least {} days (pg_retention.log_floor_days)",
            crate::pg::gucs::LOG_FLOOR_DAYS.get()
        )));
    }
    if shorter && !legal {
        return Err(RetentionError::InsufficientPrivilege(
            "shortening the deletion log's retention needs the legal duty".into(),
        ));
    }
    Ok(())
}

/// Refuses a reviewing role that does not exist (42704).
pub fn check_reviewer(client: &SpiClient, role: &str) -> Result<(), RetentionError> {
    let exists = client
        .select(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            Some(1),
            &[role.into()],
        )?
        .next()
        .is_some();
    if !exists {
        return Err(RetentionError::UnknownRole(role.to_string()));
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn define_category_creates_then_updates() {
        Spi::run(
            "SELECT retention.define_category('conversations', '1 year', description => 'chats')",
        )
        .unwrap();
        Spi::run("SELECT retention.define_category('conversations', '2 years')").unwrap();
        let (period, description) = Spi::get_two::<String, String>(
            "SELECT retain_for::text, description FROM retention.categories WHERE name = 'conversations'",
        )
        .unwrap();
        assert_eq!(period.as_deref(), Some("2 years"));
        assert_eq!(
            description.as_deref(),
            Some("chats"),
            "an update keeps the description"
        );
        Spi::run("SELECT retention.define_category('raw_audio', '0')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.categories WHERE name = 'raw_audio' AND retain_for = '0'"), 1);
        Spi::run("SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination', soft_delete_window => '30 days')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.categories WHERE clock = 'event' AND event = 'termination'"), 1);
    }

    #[pg_test]
    fn define_category_rejects_bad_input() {
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '1 day', clock => 'parent', soft_delete_window => '1 day')"),
            "22023"
        );
        assert_eq!(sqlstate("SELECT retention.grant_auditor(NULL)"), "22004");
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '-1 day')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '2000 years')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '1 day', clock => 'sundial')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '1 day', action => 'shred')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '1 day', clock => 'event')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', '1 day', event => 'termination')"),
            "22023"
        );
        assert_eq!(
            sqlstate(
                "SELECT retention.define_category('x', '1 day', soft_delete_window => '-1 day')"
            ),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category(NULL, '1 day')"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('x', NULL)"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.define_category('', '1 day')"),
            "22023"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.categories WHERE name = 'x'"),
            0
        );
    }

    #[pg_test]
    fn drop_category_refuses_while_in_use() {
        crate::testing::seed(3);
        assert_eq!(
            sqlstate("SELECT retention.drop_category('conversations')"),
            "2BP01"
        );
        assert_eq!(
            sqlstate("SELECT retention.drop_category('deletion_log')"),
            "2BP01"
        );
        assert_eq!(sqlstate("SELECT retention.drop_category('nope')"), "42704");
        Spi::run("UPDATE conversations SET category = 'audit_logs' WHERE id = 1").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.drop_category('audit_logs')"),
            "2BP01"
        );
        Spi::run("SELECT retention.set_tenant_policy('t1', 'support_records', '1 year')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.drop_category('support_records')"),
            "2BP01"
        );
        Spi::run("SELECT retention.clear_tenant_policy('t1', 'support_records')").unwrap();
        Spi::run("SELECT retention.drop_category('support_records')").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.categories WHERE name = 'support_records'"),
            0
        );
    }

    #[pg_test]
    fn changing_a_clock_is_checked_against_the_tables_using_it() {
        crate::testing::seed(3);
        // conversations has no activity column.
        assert_eq!(sqlstate("SELECT retention.define_category('conversations', '1 year', clock => 'last_activity')"), "55000");
        assert_eq!(int("SELECT count(*) FROM retention.categories WHERE name = 'conversations' AND clock = 'created'"), 1);
    }
}
