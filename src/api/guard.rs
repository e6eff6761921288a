//! The SQL surface of guard (engine/guard.rs).

use crate::engine::guard::*;
use pgrx::prelude::*;

/// `retention.guard_changing()`: whether this backend is inside the extension's own change of
/// the guard's triggers; the event trigger `retention_guard_ddl` lets only those through while
/// a hold covers the table. Nothing in SQL can set it.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn guard_changing() -> bool {
    is_changing()
}
