//! The SQL surface of runs (engine/runs.rs).

use crate::engine::cascade::check_can_purge;
use crate::engine::cycle::{dry_run_table, purge_all};
use crate::engine::managed::Managed;
use crate::engine::purge::table_steps;
use crate::engine::purge::{self};
use crate::engine::runs::add_cascaded;
use crate::error::RetentionError;
use crate::pg::regclass::RegClass;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn run(
    tbl: default!(Option<RegClass>, "NULL"),
    dry_run: default!(Option<bool>, "false"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(soft_deleted, i64),
            name!(hard_deleted, i64),
            name!(anonymized, i64),
            name!(error, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let dry_run = crate::error::required(dry_run, "dry_run")?;
    let only = tbl.map(|r| r.oid());
    let tables = Spi::connect(|client| -> Result<Vec<Managed>, RetentionError> {
        Ok(match only {
            Some(oid) => vec![Managed::load(client, oid)?],
            None => Managed::load_all(client)?,
        })
    })?;
    let mut outcomes = Vec::with_capacity(tables.len());
    if dry_run {
        let mut cascaded = Vec::new();
        for table in &tables {
            outcomes.push(dry_run_table(table, &mut cascaded)?);
        }
        add_cascaded(&mut outcomes, cascaded);
    } else {
        check_can_purge()?;
        outcomes = crate::pg::identity::as_extension(|| purge_all(&tables))?;
    }
    Ok(TableIterator::new(outcomes.into_iter().map(|o| {
        (
            o.table_name,
            o.soft_deleted,
            o.hard_deleted,
            o.anonymized,
            o.error,
        )
    })))
}

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn preview(
    horizon: default!(Option<Interval>, "'0'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(category, String),
            name!(tenant, Option<String>),
            name!(action, String),
            name!(rows, i64),
            name!(held_by, Option<i64>),
        ),
    >,
    ErrorReport,
> {
    let horizon = crate::error::required(horizon, "horizon")?;
    crate::engine::period::check_interval("horizon", &horizon)?;
    // Read as the extension: the policy-admin and auditor duties hold EXECUTE, not rights on
    // every retention table (application tables are read as their owners, owner.rs).
    let rows = crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Vec<_>, RetentionError> {
            let mut rows = Vec::new();
            for table in Managed::load_all(client)? {
                let steps = table_steps(client, &table, horizon)?;
                // Partitions retired whole: their rows are among the hard_delete lines.
                let held = crate::engine::holds::active_for_reading(client, &table)?;
                for retired in
                    crate::engine::partitions::preview(client, &table, &steps, horizon, &held)?
                {
                    rows.push((
                        retired.partition,
                        table.category.clone(),
                        None,
                        "retire_partition".to_string(),
                        retired.rows,
                        None,
                    ));
                }
                for step in steps {
                    for line in purge::preview(client, &table, &step, horizon)? {
                        rows.push((
                            table.display_name.clone(),
                            step.segment.category.name.clone(),
                            line.tenant,
                            step.act(&table).log_action().as_str().to_string(),
                            line.rows,
                            line.held_by,
                        ));
                    }
                }
            }
            Ok(rows)
        })
    })?;
    Ok(TableIterator::new(rows))
}
