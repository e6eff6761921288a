//! The SQL surface of redaction (engine/redaction/).

use crate::engine::managed::check_rights;
use crate::engine::redaction::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::regclass::relation_name;
use crate::pg::regclass::RegClass;
use pgrx::prelude::*;

/// `retention.redact(tbl, columns, detectors, replacement, pattern)`: from now on, identifiers
/// the detectors find in `columns` of `tbl` are replaced before a row is stored (`%s` in the
/// replacement names the detector). Calling it again replaces the table's rule.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn redact(
    tbl: Option<RegClass>,
    columns: Option<Vec<Option<String>>>,
    detectors: default!(Option<Vec<Option<String>>>, "'{card,email,phone}'"),
    replacement: default!(Option<String>, "'[redacted:%s]'"),
    pattern: default!(Option<String>, "NULL"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.redact()")?;
    let oid = required(tbl, "tbl")?.oid();
    let columns = column_list(columns)?;
    let (detectors, patterns) = detector_list(detectors, pattern)?;
    let replacement = required(replacement, "replacement")?;
    check_patterns(&patterns)?;
    let rule = Rule {
        columns,
        detectors,
        patterns,
        replacement,
    };
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            let oid = RegClass(oid).table(client)?;
            let table = relation_name(client, oid)?;
            refuse_distributed(client, oid, &table)?;
            check_rights(client, oid, &table, &["TRIGGER"], "redacting")?;
            check_columns(client, oid, &table, &rule.columns)?;
            install(client, oid, &table, &rule)
        })
    })?;
    Ok(())
}

/// `retention.unredact(tbl)`: removes the table's redaction (its counts stay).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn unredact(tbl: Option<RegClass>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.unredact()")?;
    let oid = required(tbl, "tbl")?.oid();
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            let oid = RegClass(oid).table(client)?;
            let table = relation_name(client, oid)?;
            check_rights(client, oid, &table, &["TRIGGER"], "unredacting")?;
            let gone = client
                .update(
                    "DELETE FROM retention.redaction_rules WHERE tbl = $1::oid::regclass RETURNING 1",
                    None,
                    &[oid.into()],
                )?
                .len();
            if gone == 0 {
                return Err(RetentionError::NotRedacted(table));
            }
            crate::engine::guard::changing(|| remove_triggers(client, oid))
        })
    })?;
    Ok(())
}
