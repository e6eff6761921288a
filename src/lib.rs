//! pg_retention: a data-retention policy, executable inside PostgreSQL.
//!
//! One module per concept; the catalog DDL is in sql/bootstrap.sql, the comments, views and
//! guards over the functions in sql/finalize.sql.

// SQL functions return pgrx's `ErrorReport` (large, by value) as pgrx expects; internal
// helpers return `RetentionError`, which converts into it.
#![allow(clippy::result_large_err)]

use pgrx::prelude::*;

mod cascade;
mod catalog;
mod category_lock;
mod customer_delete;
mod deletion_log;
mod disposition;
mod erasure;
mod error;
mod explain;
mod export;
mod guard;
mod gucs;
mod holds;
mod identity;
mod managed;
mod metrics;
mod owner;
mod params;
mod partition_guard;
mod partitions;
mod policy;
mod progress;
mod purge;
mod reapply;
mod redaction;
mod regclass;
mod request_extension;
mod runs;
mod schema_version;
mod subxact;
mod tagging;
mod tenants;
#[cfg(any(test, feature = "pg_test"))]
mod testing;
mod windows;
mod worker;

::pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    guard::init();
    partition_guard::init();
    progress::init();
    redaction::init();
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
