//! Retention categories: `retention.define_category`, `retention.drop_category`, and the
//! in-memory [`Category`] every other module reads.

use crate::error::{required, RetentionError, SqlResult};
use crate::managed::Managed;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// The deletion log's own category: built in (7 years unless redefined), never dropped.
const BUILTIN: &str = "deletion_log";

/// The longest period a category or tenant policy may keep data: anything longer is a typo.
const MAX_YEARS: i32 = 1000;

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

    fn parse(s: &str) -> Result<Self, RetentionError> {
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

#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub retain_for: Interval,
    pub clock: Clock,
    pub action: Action,
    pub soft_delete_window: Option<Interval>,
    pub event: Option<String>,
    pub erasure_exempt: bool,
    /// Locked by `retention.lock_category()`: rows leave only by expiry.
    pub locked: bool,
}

/// The columns [`from_row`] reads; `locked` exists from schema 0.5.0 on.
fn category_columns() -> Result<&'static str, RetentionError> {
    Ok(
        if crate::schema_version::at_least(crate::schema_version::CATEGORY_LOCKS)? {
            "name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, locked"
        } else {
            "name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, false"
        },
    )
}

fn from_row(row: &pgrx::spi::SpiHeapTupleData) -> Result<Category, RetentionError> {
    Ok(Category {
        name: row.get::<String>(1)?.unwrap_or_default(),
        retain_for: row.get::<Interval>(2)?.unwrap_or_else(zero),
        clock: Clock::parse(&row.get::<String>(3)?.unwrap_or_default())?,
        action: if row.get::<String>(4)?.as_deref() == Some("anonymize") {
            Action::Anonymize
        } else {
            Action::Delete
        },
        soft_delete_window: row.get::<Interval>(5)?,
        event: row.get::<String>(6)?,
        erasure_exempt: row.get::<bool>(7)?.unwrap_or(false),
        locked: row.get::<bool>(8)?.unwrap_or(false),
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

/// The zero interval.
pub fn zero() -> Interval {
    Interval::from_micros(0)
}

/// Rejects negative and absurd periods (invariant 4).
pub fn check_interval(what: &str, value: &Interval) -> Result<(), RetentionError> {
    if value.months() < 0 || value.days() < 0 || value.micros() < 0 {
        return Err(RetentionError::InvalidValue(format!(
            "{what} must not be negative"
        )));
    }
    let years = value.months() as f64 / 12.0
        + (value.days() as f64 + value.micros() as f64 / 86_400_000_000.0) / 365.25;
    if years > MAX_YEARS as f64 {
        return Err(RetentionError::InvalidValue(format!(
            "{what} must not exceed {MAX_YEARS} years"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn define_category(
    name: Option<&str>,
    retain_for: Option<Interval>,
    clock: default!(Option<&str>, "'created'"),
    action: default!(Option<&str>, "'delete'"),
    soft_delete_window: default!(Option<Interval>, "NULL"),
    event: default!(Option<&str>, "NULL"),
    erasure_exempt: default!(Option<bool>, "false"),
    description: default!(Option<&str>, "NULL"),
) -> SqlResult<()> {
    crate::runs::require_primary("retention.define_category()")?;
    let name = required(name, "name")?;
    if name.trim().is_empty() {
        return Err(RetentionError::InvalidValue("category name must not be empty".into()).into());
    }
    let retain_for = required(retain_for, "retain_for")?;
    check_interval("retain_for", &retain_for)?;
    let clock_text = required(clock, "clock")?;
    let clock = Clock::parse(clock_text)?;
    let action = required(action, "action")?;
    if action != "delete" && action != "anonymize" {
        return Err(RetentionError::InvalidValue(format!(
            "unknown action \"{action}\": expected delete or anonymize"
        ))
        .into());
    }
    if let Some(window) = &soft_delete_window {
        check_interval("soft_delete_window", window)?;
        if action == "anonymize" {
            return Err(RetentionError::InvalidValue(
                "a soft_delete_window applies to action delete only".into(),
            )
            .into());
        }
        if clock == Clock::Parent {
            return Err(RetentionError::InvalidValue(
                "a soft_delete_window does not apply to clock parent: rows go with their parent"
                    .into(),
            )
            .into());
        }
    }
    match (clock, event) {
        (Clock::Event, None) => {
            return Err(RetentionError::InvalidValue(
                "clock event needs an event name (event => 'termination')".into(),
            )
            .into())
        }
        (Clock::Event, Some(e)) if e.trim().is_empty() => {
            return Err(RetentionError::InvalidValue("event name must not be empty".into()).into())
        }
        (c, Some(_)) if c != Clock::Event => {
            return Err(RetentionError::InvalidValue(
                "an event name is only meaningful with clock event".into(),
            )
            .into())
        }
        _ => {}
    }
    let erasure_exempt = required(erasure_exempt, "erasure_exempt")?;
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let builtin = name == BUILTIN;
            if builtin
                && (clock != Clock::Created || action != "delete" || soft_delete_window.is_some())
            {
                return Err(RetentionError::InvalidValue(format!(
                    "built-in category \"{name}\" deletes by creation time, without a window"
                )));
            }
            if builtin {
                check_log_period(client, retain_for)?;
            }
            // A new clock must be computable on every table that already uses the category.
            let candidate = Category {
                name: name.to_string(),
                retain_for,
                clock,
                action: if action == "anonymize" {
                    Action::Anonymize
                } else {
                    Action::Delete
                },
                soft_delete_window,
                event: event.map(str::to_string),
                erasure_exempt,
                locked: false,
            };
            for table in Managed::load_all(client)? {
                if table.uses_category(client, name)? {
                    table.check_category(client, &candidate)?;
                }
            }
            let args: [DatumWithOid; 9] = [
                name.into(),
                retain_for.into(),
                clock_text.into(),
                action.into(),
                soft_delete_window.into(),
                event.into(),
                erasure_exempt.into(),
                description.into(),
                crate::identity::caller_name().into(),
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
            crate::guard::invalidate(client)?;
            Ok(())
        })
    })?;
    Ok(())
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
                crate::gucs::LOG_FLOOR_DAYS.get().into(),
                crate::identity::caller_oid().into(),
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
            crate::gucs::LOG_FLOOR_DAYS.get()
        )));
    }
    if shorter && !legal {
        return Err(RetentionError::InsufficientPrivilege(
            "shortening the deletion log's retention needs the legal duty".into(),
        ));
    }
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn drop_category(name: Option<&str>) -> SqlResult<()> {
    crate::runs::require_primary("retention.drop_category()")?;
    let name = required(name, "name")?;
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            if name == BUILTIN {
                return Err(RetentionError::CategoryInUse(
                    name.to_string(),
                    "It is built in: the deletion log's own retention (redefine it to change it)."
                        .into(),
                ));
            }
            client
                .update(
                    "SELECT 1 FROM retention.category_definitions WHERE name = $1 FOR UPDATE",
                    Some(1),
                    &[name.into()],
                )?
                .next()
                .ok_or_else(|| RetentionError::UnknownCategory(name.to_string()))?;
            let users = client
                .select(
                    "SELECT string_agg(what, ', ') FROM (
                     SELECT 'default category of ' || tbl::text AS what
                       FROM retention.managed_tables WHERE category = $1
                     UNION ALL
                     SELECT 'policy of tenant ' || tenant
                       FROM retention.tenant_policies WHERE category = $1
                     UNION ALL
                     SELECT 'scope of legal hold ' || id
                       FROM retention.holds WHERE category = $1) u",
                    None,
                    &[name.into()],
                )?
                .first()
                .get_one::<String>()?;
            if let Some(users) = users {
                return Err(RetentionError::CategoryInUse(
                    name.to_string(),
                    format!("Used as {users}."),
                ));
            }
            for table in Managed::load_all(client)? {
                if table.uses_category(client, name)? {
                    return Err(RetentionError::CategoryInUse(
                        name.to_string(),
                        format!("Rows of {} are tagged with it.", table.display_name),
                    ));
                }
            }
            client.update(
                "DELETE FROM retention.category_definitions WHERE name = $1",
                None,
                &[name.into()],
            )?;
            crate::guard::invalidate(client)?;
            Ok(())
        })
    })?;
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
