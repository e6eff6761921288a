//! The SQL surface of tagging (engine/tagging.rs).

use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::engine::tagging::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::regclass::RegClass;
use pgrx::datum::{AnyArray, DatumWithOid};
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn tag(tbl: Option<RegClass>, category: Option<&str>, keys: Option<AnyArray>) -> SqlResult<i64> {
    crate::pg::preconditions::require_primary("retention.tag()")?;
    let oid = required(tbl, "tbl")?.oid();
    let category = required(category, "category")?;
    let keys = required(keys, "keys")?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            let table = Managed::load(client, oid)?;
            check_keys(client, &table, &keys)?;
            tag_keys(client, &table, category, keys_arg(&keys))
        })
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
fn tag_where(
    tbl: Option<RegClass>,
    category: Option<&str>,
    condition: Option<&str>,
) -> SqlResult<i64> {
    crate::pg::preconditions::require_primary("retention.tag_where()")?;
    let oid = required(tbl, "tbl")?.oid();
    let category = required(category, "category")?;
    let condition = required(condition, "condition")?;
    if condition.trim().is_empty() {
        return Err(RetentionError::InvalidValue("condition must not be empty".into()).into());
    }
    Ok(Spi::connect_mut(|client| -> Result<i64, RetentionError> {
        let table = Managed::load(client, oid)?;
        // The condition is the caller's code: it selects the keys as the caller, with the
        // caller's search path and rights. The UPDATE, which fires the owner's triggers, runs
        // as the owner, like every statement that changes an application table.
        let sql = RowSet::of(&table)
            .filter(format!("(\n{condition}\n)"))
            .select(&format!("array_agg({})", table.key_text_sql()));
        // The condition must stand on its own (balanced, one expression, no second
        // statement), and sits on its own lines so a trailing comment cannot reach past it.
        check_single_statement(&format!("SELECT {condition}"))?;
        check_single_statement(&sql)?;
        let Some(keys) = client
            .select(&sql, Some(1), &[])?
            .first()
            .get_datum_by_ordinal(1)?
        else {
            return Ok(0);
        };
        // SAFETY: array_agg of text (or of text[]) gives a text array, alive until SPI ends.
        let keys = unsafe { DatumWithOid::new(keys, pg_sys::TEXTARRAYOID) };
        crate::pg::identity::as_extension(|| tag_keys(client, &table, category, keys))
    })?)
}
