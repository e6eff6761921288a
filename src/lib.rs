//! pg_retention: a data-retention policy, executable inside PostgreSQL.
//!
//! Layers (see README "Architecture"): `api` (the SQL functions) → `engine` (retention's
//! concepts) → `pg` (PostgreSQL plumbing); `worker` drives the engine from a background worker.
//! `error` is shared by all. The catalog DDL is in sql/bootstrap.sql, the comments, views and
//! guards over the functions in sql/finalize.sql.

// SQL functions return pgrx's `ErrorReport` (large, by value) as pgrx expects; internal
// helpers return `RetentionError`, which converts into it.
#![allow(clippy::result_large_err)]

use pgrx::prelude::*;

mod api;
mod engine;
mod error;
mod pg;
#[cfg(any(test, feature = "pg_test"))]
mod testing;
mod worker;

::pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::gucs::init();
    pg::progress::init();
    engine::guard::init();
    engine::partition_guard::init();
    engine::redaction::init();
    worker::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'pg_retention'",
            "pg_retention.database = 'pgrx_tests'",
            "pg_retention.enabled = off",
        ]
    }
}
