//! The SQL surface of metrics (engine/metrics.rs).

use crate::engine::managed::Managed;
use crate::engine::metrics::*;
use crate::error::RetentionError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn metrics() -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(rows_deleted, i64),
            name!(rows_soft_deleted, i64),
            name!(rows_anonymized, i64),
            name!(rows_restored, i64),
            name!(backlog_rows, i64),
            name!(held_back_rows, i64),
            name!(oldest_overdue_seconds, Option<f64>),
            name!(last_success, Option<TimestampWithTimeZone>),
            name!(failed_runs_24h, i64),
            name!(last_error, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let lines = crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Vec<Line>, RetentionError> {
            let mut lines = Vec::new();
            for table in Managed::load_all(client)? {
                let due = due_now(client, &table)?;
                lines.push(line(client, &table, due)?);
            }
            Ok(lines)
        })
    })?;
    Ok(TableIterator::new(lines))
}
