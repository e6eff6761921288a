//! The SQL surface of customer delete (engine/customer_delete.rs).

use crate::engine::cascade::check_can_purge;
use crate::engine::customer_delete::*;
use crate::engine::managed::{check_rights, Managed};
use crate::engine::tagging::{check_keys, keys_arg};
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::regclass::RegClass;
use pgrx::datum::AnyArray;
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn request_delete(
    tbl: Option<RegClass>,
    keys: Option<AnyArray>,
    reason: default!(Option<&str>, "'customer_request'"),
) -> SqlResult<i64> {
    let oid = required(tbl, "tbl")?.oid();
    let keys = required(keys, "keys")?;
    let reason = required(reason, "reason")?;
    if reason.trim().is_empty() {
        return Err(RetentionError::InvalidValue("reason must not be empty".into()).into());
    }
    check_can_purge()?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let table = Managed::load(client, oid)?;
            let needed: &[&str] = if table.soft_delete_column.is_some() {
                &["SELECT", "DELETE", "UPDATE"]
            } else {
                &["SELECT", "DELETE"]
            };
            check_rights(client, oid, &table.display_name, needed, "deleting rows of")?;
            check_keys(client, &table, &keys)?;
            let requested = delete_keys(client, &table, keys_arg(&keys), reason, None)?;
            Ok(requested.soft_deleted + requested.hard_deleted)
        })
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn restore(tbl: Option<RegClass>, keys: Option<AnyArray>) -> SqlResult<i64> {
    let oid = required(tbl, "tbl")?.oid();
    let keys = required(keys, "keys")?;
    check_can_purge()?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let table = Managed::load(client, oid)?;
            check_rights(
                client,
                oid,
                &table.display_name,
                &["SELECT", "UPDATE"],
                "restoring rows of",
            )?;
            check_keys(client, &table, &keys)?;
            restore_keys(client, &table, keys_arg(&keys))
        })
    })?)
}
