//! `retention.explain(tbl, keys)`: for each key, why the row is still here and when it will go
//! (its category, clock, policy in force, due time, soft delete, holds, queued requests and the
//! purger's next action), or, for a row that is gone, the deletion log's account of it.

use crate::engine::catalog::{self, Action, Category, Clock};
use crate::engine::holds;
use crate::engine::managed::Managed;
use crate::engine::policy;
use crate::engine::rowset::RowSet;
use crate::engine::tagging::{key_match_sql, keys_arg, requested_keys_sql};
use crate::engine::vocabulary::LogAction;
use crate::engine::windows::Path;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use pgrx::datum::AnyArray;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::JsonB;
use serde_json::json;

/// One row of `explain`.
pub type Explained = (
    JsonB,
    bool,
    Option<String>,
    Option<bool>,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<Interval>,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    JsonB,
    JsonB,
    String,
    Option<TimestampWithTimeZone>,
    JsonB,
);

/// The categories and tenant overrides, read once per call.
pub struct Policy {
    categories: Vec<Category>,
    overrides: std::collections::BTreeMap<String, Vec<policy::Override>>,
}

/// What the table says of one present row.
pub struct Present {
    key: serde_json::Value,
    category: String,
    tagged: bool,
    tenant: Option<String>,
    created: Option<TimestampWithTimeZone>,
    activity: Option<TimestampWithTimeZone>,
    soft_deleted_at: Option<TimestampWithTimeZone>,
}

/// The requested rows the table has, read as its owner.
pub fn present_rows(
    client: &mut SpiClient,
    table: &Managed,
    keys: &AnyArray,
) -> Result<Vec<Present>, RetentionError> {
    let mut params = Params::default();
    params.bind(keys_arg(keys));
    let category = table.category_sql(&mut params);
    let column = |c: &Option<String>, cast: &str| {
        c.as_deref()
            .map(|c| format!("t.{}::{cast}", quote_identifier(c)))
            .unwrap_or_else(|| format!("NULL::{cast}"))
    };
    let sql = RowSet::of(table)
        .filter(key_match_sql(client, table, 1)?)
        .select(&format!(
            "{}, {}, {} IS NOT NULL, {}, {}, {}, {}",
            table.key_json_sql(),
            category,
            column(&table.category_column, "text"),
            column(&table.tenant_column, "text"),
            column(&table.created_column, "timestamptz"),
            column(&table.activity_column, "timestamptz"),
            column(&table.soft_delete_column, "timestamptz"),
        ));
    executor::select(client, table, &sql, params.args())?
        .map(|r| {
            Ok(Present {
                key: r.get::<JsonB>(1)?.map(|k| k.0).unwrap_or_default(),
                category: r.get::<String>(2)?.unwrap_or_default(),
                tagged: r.get::<bool>(3)?.unwrap_or(false),
                tenant: r.get::<String>(4)?,
                created: r.get::<TimestampWithTimeZone>(5)?,
                activity: r.get::<TimestampWithTimeZone>(6)?,
                soft_deleted_at: r.get::<TimestampWithTimeZone>(7)?,
            })
        })
        .collect()
}

/// One present row: its policy, holds, queue entries and the purger's next step.
pub fn explain_present(
    client: &mut SpiClient,
    table: &Managed,
    policy: &Policy,
    row: &Present,
) -> Result<Explained, RetentionError> {
    let category = policy
        .categories
        .iter()
        .find(|c| c.name == row.category)
        .ok_or_else(|| RetentionError::UnknownCategory(row.category.clone()))?;
    let (retain_for, windows) =
        policy::in_force(category, row.tenant.as_deref(), &policy.overrides);
    let overridden = row.tenant.as_deref().is_some_and(|t| {
        policy
            .overrides
            .get(&category.name)
            .is_some_and(|list| list.iter().any(|o| o.tenant == t))
    });
    let clock_value = clock_value(client, category, row)?;
    let due_at = add(client, clock_value, Some(retain_for))?;
    let window = match row.soft_deleted_at {
        Some(_) => windows.of(soft_delete_path(client, table, &row.key)?),
        None => None,
    };
    let window_ends = add(client, row.soft_deleted_at, window)?;
    let holding = holding(client, table, &row.key)?;
    let (next_action, next_action_at) = next_step(
        table,
        category,
        &windows,
        row,
        &holding,
        due_at,
        window_ends,
    );
    Ok((
        JsonB(row.key.clone()),
        true,
        Some(category.name.clone()),
        Some(row.tagged),
        Some(category.clock.as_str().into()),
        clock_value,
        Some(retain_for),
        Some(
            if overridden {
                "tenant override"
            } else {
                "category default"
            }
            .into(),
        ),
        due_at,
        row.soft_deleted_at,
        window_ends,
        JsonB(serde_json::Value::Array(holding)),
        queued(client, table, &row.key)?,
        next_action,
        next_action_at,
        log_of(client, table, &row.key)?,
    ))
}

/// A key the table does not have: what the log says of it.
pub fn explain_gone(
    client: &mut SpiClient,
    table: &Managed,
    key: serde_json::Value,
) -> Result<Explained, RetentionError> {
    let log = log_of(client, table, &key)?;
    let next = if log.0.as_array().is_some_and(|a| !a.is_empty()) {
        "none: the row is gone (see log)"
    } else {
        "none: no such row, and no log entry"
    };
    Ok((
        JsonB(key.clone()),
        false,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        JsonB(json!([])),
        queued(client, table, &key)?,
        next.into(),
        None,
        log,
    ))
}

/// The time the row's clock started: its created or activity column, its tenant's event, or
/// none for a parent-bound row (it goes with its parent).
fn clock_value(
    client: &SpiClient,
    category: &Category,
    row: &Present,
) -> Result<Option<TimestampWithTimeZone>, RetentionError> {
    Ok(match category.clock {
        Clock::Created => row.created,
        Clock::LastActivity => row.activity,
        Clock::Parent => None,
        Clock::Event => client
            .select(
                "SELECT occurred_at FROM retention.tenant_events WHERE tenant = $1 AND event = $2",
                Some(1),
                &[row.tenant.clone().into(), category.event.clone().into()],
            )?
            .next()
            .map(|r| r.get::<TimestampWithTimeZone>(1))
            .transpose()?
            .flatten(),
    })
}

/// `at + interval`, when both are known.
fn add(
    client: &SpiClient,
    at: Option<TimestampWithTimeZone>,
    interval: Option<Interval>,
) -> Result<Option<TimestampWithTimeZone>, RetentionError> {
    let (Some(at), Some(interval)) = (at, interval) else {
        return Ok(None);
    };
    Ok(client
        .select("SELECT $1 + $2", Some(1), &[at.into(), interval.into()])?
        .first()
        .get_one::<TimestampWithTimeZone>()?)
}

/// Why a soft-deleted row went (see windows.rs): which of its windows applies.
fn soft_delete_path(
    client: &SpiClient,
    table: &Managed,
    key: &serde_json::Value,
) -> Result<Path, RetentionError> {
    // Before 0.6.0 a category has one window for every path.
    if !crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
        return Ok(Path::CustomerRequest);
    }
    let path = client
        .select(
            "SELECT retention.soft_delete_path($1, $2)",
            Some(1),
            &[
                table.display_name.as_str().into(),
                JsonB(key.clone()).into(),
            ],
        )?
        .first()
        .get_one::<String>()?;
    Ok(Path::from_sql(path.as_deref()))
}

/// The holds keeping the row (active ones, and released ones in their grace).
fn holding(
    client: &mut SpiClient,
    table: &Managed,
    key: &serde_json::Value,
) -> Result<Vec<serde_json::Value>, RetentionError> {
    let mut found = Vec::new();
    for hold in holds::active_for_reading(client, table)? {
        let mut params = Params::default();
        params.bind(JsonB(key.clone()));
        let category = table.category_sql(&mut params);
        let Some(covers) = holds::covers_sql(&hold, table, None, &category, &mut params) else {
            continue;
        };
        let sql = RowSet::of(table)
            .filter(format!("{} = $1", table.key_json_sql()))
            .filter(covers)
            .count();
        let covered = executor::select(client, table, &sql, params.args())?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0);
        if covered > 0 {
            found.push(json!({
                "id": hold.id, "reason": hold.reason, "tenant": hold.tenant,
                "subject": hold.subject, "category": hold.category, "frozen": hold.frozen,
                "released": hold.grace_until.is_some(),
            }));
        }
    }
    Ok(found)
}

/// The purger's next step for a present row, and when.
fn next_step(
    table: &Managed,
    category: &Category,
    windows: &crate::engine::windows::Windows,
    row: &Present,
    holding: &[serde_json::Value],
    due_at: Option<TimestampWithTimeZone>,
    window_ends: Option<TimestampWithTimeZone>,
) -> (String, Option<TimestampWithTimeZone>) {
    if let Some(hold) = holding.first() {
        return (format!("none: kept by legal hold {}", hold["id"]), None);
    }
    if row.soft_deleted_at.is_some() {
        return (
            "hard_delete (its soft-delete window ends)".into(),
            window_ends,
        );
    }
    if category.clock == Clock::Parent {
        return ("hard_delete, with its parent".into(), None);
    }
    let Some(due_at) = due_at else {
        return ("none: its clock has not started".into(), None);
    };
    let act = if category.action == Action::Anonymize {
        LogAction::Anonymize
    } else if windows.of(Path::Expired).is_some() && table.soft_delete_column.is_some() {
        LogAction::SoftDelete
    } else {
        LogAction::HardDelete
    }
    .as_str();
    match &category.review {
        Some(role) => (
            format!("{act}, once a member of \"{role}\" approves its disposition batch"),
            Some(due_at),
        ),
        None => (act.into(), Some(due_at)),
    }
}

/// Queued customer deletions of the key not yet done.
fn queued(
    client: &SpiClient,
    table: &Managed,
    key: &serde_json::Value,
) -> Result<JsonB, RetentionError> {
    json_of(
        client,
        "SELECT coalesce(jsonb_agg(jsonb_build_object('id', q.id, 'reason', q.reason,
                    'requested_at', q.requested_at, 'requested_by', q.requested_by) ORDER BY q.id), '[]')
           FROM retention.deletion_queue q
          WHERE q.tbl = $1::oid::regclass AND q.row_key = $2 AND q.done_at IS NULL",
        table,
        key,
    )
}

/// The deletion log's entries for the key, oldest first.
fn log_of(
    client: &SpiClient,
    table: &Managed,
    key: &serde_json::Value,
) -> Result<JsonB, RetentionError> {
    json_of(
        client,
        "SELECT coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'logged_at', l.logged_at,
                    'action', l.action, 'reason', l.reason, 'category', l.category,
                    'retain_for', l.retain_for::text, 'run_id', l.run_id, 'actor', l.actor)
                    ORDER BY l.id), '[]')
           FROM retention.deletion_log l
          WHERE l.table_name = (SELECT $1::oid::regclass::text) AND l.row_key = $2",
        table,
        key,
    )
}

/// A JSON answer of `sql` over the table's oid (`$1`) and a key (`$2`).
fn json_of(
    client: &SpiClient,
    sql: &str,
    table: &Managed,
    key: &serde_json::Value,
) -> Result<JsonB, RetentionError> {
    Ok(client
        .select(sql, Some(1), &[table.oid.into(), JsonB(key.clone()).into()])?
        .first()
        .get_one::<JsonB>()?
        .unwrap_or(JsonB(json!([]))))
}

/// Explains each key of `keys` (checked against the table's key by the caller), present
/// row or gone.
pub fn explain_keys(
    client: &mut SpiClient,
    table: &Managed,
    keys: &AnyArray,
) -> Result<Vec<Explained>, RetentionError> {
    let present = present_rows(client, table, keys)?;
    let mut params = Params::default();
    params.bind(keys_arg(keys));
    let requested = client
        .select(
            &format!(
                "SELECT key FROM ({}) r",
                requested_keys_sql(client, table, 1)?
            ),
            None,
            params.args(),
        )?
        .map(|r| {
            r.get::<JsonB>(1)
                .map(|k| k.map(|k| k.0).unwrap_or_default())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let policy = Policy {
        categories: catalog::load_all(client)?,
        overrides: policy::overrides(client)?,
    };
    let mut rows = Vec::new();
    for key in requested {
        rows.push(match present.iter().find(|p| p.key == key) {
            Some(row) => explain_present(client, table, &policy, row)?,
            None => explain_gone(client, table, key)?,
        });
    }
    Ok(rows)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn explain_tells_why_a_row_is_here_and_when_it_goes() {
        seed(800);
        Spi::run("SELECT retention.set_tenant_policy('t2', 'conversations', '2 years')").unwrap();
        let hold = int("SELECT retention.place_hold('case', subject => 's4', notify => false)");
        let row = |id: i64, column: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT {column}::text FROM retention.explain('conversations', ARRAY[{id}])"
            ))
            .unwrap()
            .unwrap_or_default()
        };
        // Row 3 (t0, s3, 3 days old): the category default, due in 362 days.
        assert_eq!(row(3, "policy"), "category default");
        assert_eq!(row(3, "next_action"), "hard_delete");
        assert_eq!(
            int(
                "SELECT count(*) FROM retention.explain('conversations', ARRAY[3])
                  WHERE due_at = clock_value + interval '1 year' AND clock = 'created'
                    AND NOT tagged AND present"
            ),
            1
        );
        // Row 5 (t2, s0): the tenant's override.
        assert_eq!(row(5, "policy"), "tenant override");
        assert_eq!(row(5, "retain_for"), "2 years");
        // Row 4 (t1, s4): held.
        assert_eq!(
            row(4, "next_action"),
            format!("none: kept by legal hold {hold}")
        );
        assert_eq!(
            int("SELECT (holds->0->>'id')::bigint FROM retention.explain('conversations', ARRAY[4])"),
            hold
        );
        // Row 400 is gone after a run: the log explains it.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(row(400, "present"), "false");
        assert_eq!(row(400, "log->0->>'action'"), "hard_delete");
        assert_eq!(
            row(900, "next_action"),
            "none: no such row, and no log entry"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.explain('conversations', ARRAY[1, 2, 400])"),
            3
        );
        assert_eq!(
            sqlstate("SELECT * FROM retention.explain('conversations', NULL::int[])"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT * FROM retention.explain('conversations', '{}'::int[])"),
            "22023"
        );
    }
}
