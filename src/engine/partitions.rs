//! Whole-partition retirement: before a cycle purges a partitioned table row by row, it
//! retires each leaf partition in which every row is due for a hard delete under its own
//! policy (category or tag, tenant override, clock) and no hold keeps any of them. Such a
//! partition gets one log entry per row, hash-chained like every other, then is dropped
//! (default), detached, or detached and moved to another schema
//! (`retention.set_partition_retirement`), all in one transaction: a crash leaves the
//! partition attached and whole, or gone with all its entries.
//!
//! A partition stays attached, and its due rows go row by row, when any row in it is not due,
//! is held, is soft-deleted or anonymized rather than deleted, or waits for a disposition
//! review; when it is empty (a partition made ahead of time) or the DEFAULT partition; or when
//! a foreign key references the table (its referencing rows would need their own entries).

use crate::engine::acting::Act;
use crate::engine::deletion_log::{self, Entry};
use crate::engine::holds;
use crate::engine::managed::Managed;
use crate::engine::purge::{self, Phase, Step};
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::params::Params;
use crate::pg::result_rows::ResultRows;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// How long a retirement waits for the parent table's lock to drop or detach a partition.
const RETIREMENT_LOCK_TIMEOUT: &str = "2s";

/// What happens to a retired partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    Drop,
    Detach,
    /// Detached and moved to this schema.
    Move(String),
    /// Never retired whole: rows go one by one.
    Off,
}

impl Retirement {
    /// The mode `set_partition_retirement` takes and `partition_retirement.mode` stores
    /// (CHECK `retirement_mode_known`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Retirement::Drop => "drop",
            Retirement::Detach => "detach",
            Retirement::Move(_) => "move",
            Retirement::Off => "off",
        }
    }

    pub fn parse(mode: &str, schema: Option<&str>) -> Result<Self, RetentionError> {
        match (mode, schema) {
            ("drop", None) => Ok(Retirement::Drop),
            ("detach", None) => Ok(Retirement::Detach),
            ("off", None) => Ok(Retirement::Off),
            ("move", Some(s)) => Ok(Retirement::Move(s.to_string())),
            ("move", None) => Err(RetentionError::InvalidValue(
                "mode move needs a target schema (target_schema => 'archive')".into(),
            )),
            ("drop" | "detach" | "off", Some(_)) => Err(RetentionError::InvalidValue(
                "a target schema goes with mode move only".into(),
            )),
            (other, _) => Err(RetentionError::InvalidValue(format!(
                "unknown mode \"{other}\": expected drop, detach, move or off"
            ))),
        }
    }

    /// The table's setting (drop when none was set; off on a schema older than 0.6.0, which
    /// has no retirement, while the library already serves it for previews).
    fn of(client: &SpiClient, table: &Managed) -> Result<Self, RetentionError> {
        if !crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
            return Ok(Retirement::Off);
        }
        let row = client
            .select(
                "SELECT mode, target_schema FROM retention.partition_retirement WHERE tbl = $1",
                Some(1),
                &[table.oid.into()],
            )?
            .next()
            .map(|r| Ok::<_, RetentionError>((r.get::<String>(1)?, r.get::<String>(2)?)))
            .transpose()?;
        match row {
            Some((Some(mode), schema)) => Self::parse(&mode, schema.as_deref()),
            _ => Ok(Retirement::Drop),
        }
    }
}

/// A partition retired whole: its name and the rows it held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retired {
    pub partition: String,
    pub rows: i64,
}

/// The leaf partitions of `table` that may be retired whole: ordinary tables, not DEFAULT.
fn leaves(client: &SpiClient, table: &Managed) -> Result<Vec<String>, RetentionError> {
    client
        .select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_partition_tree($1::oid::regclass) p
               JOIN pg_catalog.pg_class c ON c.oid = p.relid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE p.isleaf AND c.relkind = 'r'
                AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
              ORDER BY n.nspname, c.relname",
            None,
            &[table.oid.into()],
        )?
        .map(|r| Ok(r.get::<String>(1)?.unwrap_or_default()))
        .collect()
}

/// Whether a foreign key references the table: its partitions then go row by row.
fn referenced(client: &SpiClient, table: &Managed) -> Result<bool, RetentionError> {
    Ok(client
        .select(
            "SELECT 1 FROM pg_catalog.pg_constraint
              WHERE contype = 'f' AND confrelid = $1::oid LIMIT 1",
            Some(1),
            &[table.oid.into()],
        )?
        .next()
        .is_some())
}

/// The steps whose rows a retirement may remove: expiry by hard delete, not under review
/// (approved disposition batches go row by row: their entries carry the approval).
fn deleting<'a>(table: &Managed, steps: &'a [Step]) -> Vec<&'a Step> {
    steps
        .iter()
        .filter(|s| {
            s.phase == Phase::Expire && s.act(table) == Act::HardDelete && s.approval.is_none()
        })
        .collect()
}

/// The leaf partitions of `table` a cycle tries to retire whole (see [`retire`]): none when
/// the table is not partitioned, is a Citus distributed table (not supported yet), no step
/// hard-deletes, retirement is off, or a foreign key references the table.
pub fn candidates(
    client: &SpiClient,
    table: &Managed,
    steps: &[Step],
) -> Result<Vec<String>, RetentionError> {
    if !table.partitioned || table.distribution.is_some() || deleting(table, steps).is_empty() {
        return Ok(Vec::new());
    }
    if Retirement::of(client, table)? == Retirement::Off || referenced(client, table)? {
        return Ok(Vec::new());
    }
    leaves(client, table)
}

/// Retires partition `leaf` of `table` when every row in it is due for a hard delete by one
/// of `steps` and no hold keeps any of them; None when it stays. Each call is one unit: the
/// worker commits it on its own, so the parent's lock is held only for the drop.
pub fn retire(
    client: &mut SpiClient,
    table: &Managed,
    steps: &[Step],
    leaf: &str,
    run_id: Option<i64>,
) -> Result<Option<Retired>, RetentionError> {
    let mode = Retirement::of(client, table)?;
    if mode == Retirement::Off {
        return Ok(None);
    }
    take_lock(LockKey::Holds, false)?;
    let held = holds::active_for(client, table)?;
    let rows = retire_leaf(
        client,
        table,
        &deleting(table, steps),
        &held,
        leaf,
        &mode,
        run_id,
    )?;
    Ok(rows.map(|rows| Retired {
        partition: leaf.to_string(),
        rows,
    }))
}

/// SQL over row alias `t`: the index of the first of `steps` that deletes the row now, NULL
/// when none does or a hold keeps it.
fn which_step_sql(
    table: &Managed,
    steps: &[&Step],
    held: &[holds::Hold],
    horizon: Interval,
    params: &mut Params,
) -> String {
    let mut cases = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let (mut conditions, _) = purge::unheld_step_sql(table, step, horizon, held, params);
        conditions.push("true".into());
        cases.push(format!("WHEN {} THEN {index}", conditions.join(" AND ")));
    }
    format!("CASE {} END", cases.join(" "))
}

/// The partitions a cycle at `now() + horizon` would retire whole, with their rows, changing
/// nothing (for `retention.preview()`): holds as they will be then, no lock taken.
pub fn preview(
    client: &SpiClient,
    table: &Managed,
    steps: &[Step],
    horizon: Interval,
    held: &[holds::Hold],
) -> Result<Vec<Retired>, RetentionError> {
    let deleting = deleting(table, steps);
    let mut found = Vec::new();
    for leaf in candidates(client, table, steps)? {
        let mut params = Params::default();
        let which = which_step_sql(table, &deleting, held, horizon, &mut params);
        let sql = RowSet::of_relation(&leaf).select(&format!(
            "count(*), count(*) FILTER (WHERE ({which}) IS NULL)"
        ));
        let row = executor::select(client, table, &sql, params.args())?.first();
        let (rows, staying) = (
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(1),
        );
        if rows > 0 && staying == 0 {
            found.push(Retired {
                partition: leaf,
                rows,
            });
        }
    }
    Ok(found)
}

/// Retires one partition when every row in it is due and unheld (see [`retire`]): locks it
/// against writers, reads every row's key and step, logs them, then drops or detaches it.
fn retire_leaf(
    client: &mut SpiClient,
    table: &Managed,
    steps: &[&Step],
    held: &[holds::Hold],
    leaf: &str,
    mode: &Retirement,
    run_id: Option<i64>,
) -> Result<Option<i64>, RetentionError> {
    // Without a lock first: the partition taking today's writes shows a row that is not due
    // at once, and is left alone.
    let Some(parent) = parent_of(client, table, leaf)? else {
        return Ok(None);
    };
    if !all_due(client, table, steps, held, leaf)? {
        return Ok(None);
    }
    // The lock, the drop and the parent's lock wait at most RETIREMENT_LOCK_TIMEOUT: the
    // retirement then fails whole, and the rows go row by row.
    let previous = client
        .update(
            "SELECT pg_catalog.current_setting('lock_timeout'),
                    pg_catalog.set_config('lock_timeout', $1, true)",
            None,
            &[RETIREMENT_LOCK_TIMEOUT.into()],
        )?
        .first()
        .get_one::<String>()?;
    executor::update(
        client,
        table,
        &format!("LOCK TABLE {leaf} IN EXCLUSIVE MODE"),
        &[],
    )?;
    let retired = match entries_of(client, table, steps, held, leaf)? {
        Some(entries) if !entries.is_empty() => {
            deletion_log::append(
                client,
                &deletion_log::Batch {
                    action: Act::HardDelete.log_action(),
                    table_name: &table.display_name,
                    reason: crate::engine::vocabulary::reason::EXPIRED,
                    run_id,
                    reason_of_soft_delete: false,
                    approval_id: None,
                },
                &entries,
            )?;
            dispose(client, table, leaf, &parent, mode)?;
            Some(entries.len() as i64)
        }
        _ => None,
    };
    client.update(
        "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
        None,
        &[previous.into()],
    )?;
    Ok(retired)
}

/// Every row of the locked partition `leaf` as a log entry (key, tenant, the category and
/// period that make it due); None as soon as one row is not due by `steps` or is held.
fn entries_of(
    client: &SpiClient,
    table: &Managed,
    steps: &[&Step],
    held: &[holds::Hold],
    leaf: &str,
) -> Result<Option<Vec<Entry>>, RetentionError> {
    let mut params = Params::default();
    let which = which_step_sql(
        table,
        steps,
        held,
        crate::engine::period::zero(),
        &mut params,
    );
    let tenant = table.tenant_text_sql();
    let key = table.key_json_sql();
    let sql = RowSet::of_relation(leaf).select(&format!("{key}::text, {tenant}, {which}, {key}"));
    let mut entries = Vec::new();
    let mut rows = ResultRows::of(executor::select(client, table, &sql, params.args())?)?;
    while let Some(row) = rows.next_row() {
        let Some(index) = row.int4(3)? else {
            return Ok(None);
        };
        let step = steps[index as usize];
        entries.push(Entry {
            row_key: row.text(1)?.unwrap_or_default(),
            row_key_jsonb: deletion_log::key_datum(&row, 4)?,
            tenant: row.text(2)?,
            category: Some(step.segment.category.name.clone()),
            retain_for: Some(step.segment.retain_for),
            reason: None,
        });
    }
    Ok(Some(entries))
}

/// Drops, detaches, or detaches and moves a retired partition, as the table's owner.
fn dispose(
    client: &mut SpiClient,
    table: &Managed,
    leaf: &str,
    parent: &str,
    mode: &Retirement,
) -> Result<(), RetentionError> {
    let statements = match mode {
        Retirement::Drop => vec![format!("DROP TABLE {leaf}")],
        Retirement::Detach => vec![format!("ALTER TABLE {parent} DETACH PARTITION {leaf}")],
        Retirement::Move(schema) => vec![
            format!("ALTER TABLE {parent} DETACH PARTITION {leaf}"),
            format!("ALTER TABLE {leaf} SET SCHEMA {}", quote_identifier(schema)),
        ],
        Retirement::Off => {
            return Err(RetentionError::Unsupported(format!(
                "partition retirement of {} is off",
                table.display_name
            )))
        }
    };
    for statement in statements {
        executor::update(client, table, &statement, &[])?;
    }
    Ok(())
}

/// The parent of `leaf` while it is still a partition in `table`'s tree (None when it has
/// been detached or dropped since the cycle listed it).
fn parent_of(
    client: &SpiClient,
    table: &Managed,
    leaf: &str,
) -> Result<Option<String>, RetentionError> {
    Ok(client
        .select(
            "SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i
              WHERE i.inhrelid = pg_catalog.to_regclass($1)
                AND i.inhparent IN (SELECT relid FROM pg_catalog.pg_partition_tree($2::oid::regclass))",
            Some(1),
            &[leaf.into(), table.oid.into()],
        )?
        .next()
        .map(|r| r.get::<String>(1))
        .transpose()?
        .flatten())
}

/// Whether `leaf` has rows and every one is due by one of `steps` and unheld: a query that
/// stops at the first row that is not.
fn all_due(
    client: &SpiClient,
    table: &Managed,
    steps: &[&Step],
    held: &[holds::Hold],
    leaf: &str,
) -> Result<bool, RetentionError> {
    let mut params = Params::default();
    let which = which_step_sql(
        table,
        steps,
        held,
        crate::engine::period::zero(),
        &mut params,
    );
    let leaf_rows = RowSet::of_relation(leaf);
    let staying = leaf_rows.clone().filter(format!("({which}) IS NULL"));
    let sql = format!(
        "SELECT ({}) AND NOT ({})",
        leaf_rows.exists(),
        staying.exists()
    );
    Ok(executor::select(client, table, &sql, params.args())?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// A move's target schema must exist and take the owner's tables (3F000, 42501).
pub fn check_schema(
    client: &SpiClient,
    table: &Managed,
    schema: &str,
) -> Result<(), RetentionError> {
    let row = client
        .select(
            "SELECT pg_catalog.has_schema_privilege($2::oid, n.oid, 'CREATE')
               FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
            Some(1),
            &[schema.into(), table.owner.into()],
        )?
        .next()
        .map(|r| r.get::<bool>(1))
        .transpose()?
        .flatten();
    match row {
        None => Err(RetentionError::UnknownSchema(schema.to_string())),
        Some(false) => Err(RetentionError::InsufficientPrivilege(format!(
            "the owner of {} cannot create tables in schema \"{schema}\"",
            table.display_name
        ))),
        Some(true) => Ok(()),
    }
}
