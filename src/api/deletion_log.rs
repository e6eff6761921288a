//! The SQL surface of deletion log (engine/deletion_log.rs).

use crate::engine::deletion_log::*;
use pgrx::prelude::*;

/// Whether this backend is inside the log's own retention: the append-only trigger lets a
/// DELETE through only then. Nothing in SQL can set it.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn log_trimming() -> bool {
    TRIMMING.with(|t| t.get())
}
