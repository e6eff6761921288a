//! The SQL surface of progress (pg/progress.rs).

use crate::pg::progress::*;
use pgrx::prelude::*;

/// `retention.progress_rows()`, the function behind the view `retention.progress`: the lines
/// of this database's running purgers.
#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn progress_rows() -> TableIterator<
    'static,
    (
        name!(pid, i32),
        name!(purger, String),
        name!(table_name, Option<String>),
        name!(step, i32),
        name!(steps, i32),
        name!(rows_done, i64),
        name!(rows_remaining_estimate, i64),
        name!(rows_per_second, f64),
        name!(throttled, bool),
        name!(table_started_at, Option<TimestampWithTimeZone>),
    ),
> {
    TableIterator::new(running().into_iter().map(|s| {
        (
            s.pid,
            if s.worker { "worker" } else { "run" }.to_string(),
            (s.table_len > 0)
                .then(|| String::from_utf8_lossy(&s.table[..s.table_len]).into_owned()),
            s.step,
            s.steps,
            s.rows_done,
            s.rows_estimate,
            s.rows_per_second,
            s.throttled,
            (s.started != 0)
                .then(|| TimestampWithTimeZone::try_from(s.started).ok())
                .flatten(),
        )
    }))
}
