//! The library against the schema: after a package upgrade the new library runs against each
//! database's old schema until `ALTER EXTENSION pg_retention UPDATE` is run there. The purge
//! paths (the worker, `run()`, `request_delete()`, `restore()`, `reapply_deletions()`) refuse
//! until then, so rows are never removed by code that expects tables it cannot find; holds,
//! configuration, reading and verifying keep working throughout.

use crate::error::RetentionError;
use pgrx::prelude::*;

/// The version of this library, the schema version it is built for.
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

/// The installed schema's version in this database, or None when the extension is absent.
/// Every purge batch asks (through the holds it reads): the statement is kept. It only reads,
/// so it also runs on a standby (previews, dry runs).
pub fn installed() -> Result<Option<String>, RetentionError> {
    Spi::connect(|client| {
        let found = crate::pg::kept::run(
            client,
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_retention'",
            &[],
            &[],
        )?;
        Ok(found
            .into_iter()
            .next()
            .map(|r| r.get::<String>(1))
            .transpose()?
            .flatten())
    })
}

/// The schema version that added holds' `frozen`, `grace_until` and `rows_freed`.
pub const HOLD_FREEZE: &str = "0.4.0";
/// The schema version that added `retention.category_locks` and `categories.locked`.
pub const CATEGORY_LOCKS: &str = "0.5.0";
/// The schema version that added per-path soft-delete windows and disposition review.
pub const GOVERNANCE: &str = "0.6.0";

/// Whether this database's schema is `version` or newer (compared number by number): what a
/// reader that needs one release's columns asks while the library is already newer.
pub fn at_least(version: &str) -> Result<bool, RetentionError> {
    let numbers = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap_or(0)).collect() };
    Ok(installed()?.is_some_and(|found| numbers(&found) >= numbers(version)))
}

/// Ok when this database's schema is the one this library is built for.
pub fn require_current() -> Result<(), RetentionError> {
    match installed()? {
        Some(version) if version == LIBRARY => Ok(()),
        found => Err(RetentionError::SchemaOutdated {
            schema: found.unwrap_or_else(|| "not installed".into()),
            library: LIBRARY.into(),
        }),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn current_schema_is_accepted() {
        assert_eq!(super::installed().unwrap().as_deref(), Some(super::LIBRARY));
        assert!(super::require_current().is_ok());
    }

    #[pg_test]
    fn purging_waits_for_alter_extension_update() {
        Spi::run("SELECT retention.define_category('c', '1 day')").unwrap();
        Spi::run("CREATE TABLE t (id int PRIMARY KEY, created_at timestamptz NOT NULL)").unwrap();
        Spi::run("SELECT retention.manage('t', 'c', created_column => 'created_at')").unwrap();
        Spi::run("INSERT INTO t VALUES (1, now() - interval '2 days')").unwrap();
        // What a database still on the previous schema looks like to this library.
        Spi::run("UPDATE pg_catalog.pg_extension SET extversion = '0.0.1' WHERE extname = 'pg_retention'")
            .unwrap();
        assert_eq!(sqlstate("SELECT * FROM retention.run()"), "55000");
        assert_eq!(
            sqlstate("SELECT retention.request_delete('t', ARRAY[1])"),
            "55000"
        );
        // Holds and reading keep working.
        Spi::run("SELECT retention.place_hold('audit', tbl => 't')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.holds"), 1);
        assert_eq!(int("SELECT count(*) FROM t"), 1);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 0);
    }
}
