//! Tagging rows with a category other than their table's default: `retention.tag` (by primary
//! key) and `retention.tag_where` (by condition). Also the key matching shared with the
//! customer-deletion path.

use crate::catalog;
use crate::error::{required, RetentionError, SqlResult};
use crate::managed::Managed;
use pgrx::datum::{AnyArray, DatumWithOid};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::PgRelation;
use std::ffi::CString;

/// SQL matching row alias `t` against the key array bound as `$param`.
///
/// A single-column key takes a one-dimensional array of key values (any type castable to
/// text); a composite key takes a two-dimensional array, one inner array per row.
pub fn key_match_sql(
    client: &SpiClient,
    table: &Managed,
    param: usize,
) -> Result<String, RetentionError> {
    let types = table.key_types(client)?;
    if table.key_columns.len() == 1 {
        return Ok(format!(
            "t.{} = ANY(${param}::text[]::{}[])",
            quote_identifier(&table.key_columns[0]),
            types[0]
        ));
    }
    let columns: Vec<String> = table
        .key_columns
        .iter()
        .map(|c| format!("t.{}", quote_identifier(c)))
        .collect();
    let values: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("a.k[i][{}]::{ty}", i + 1))
        .collect();
    Ok(format!(
        "({}) IN (SELECT {} FROM (SELECT ${param}::text[] AS k) a, generate_subscripts(a.k, 1) i)",
        columns.join(", "),
        values.join(", ")
    ))
}

/// Checks a key array's shape against the table's key: non-empty, right dimensions.
pub fn check_keys(
    client: &SpiClient,
    table: &Managed,
    keys: &AnyArray,
) -> Result<(), RetentionError> {
    let arg = unsafe { DatumWithOid::new(keys.datum(), keys.oid()) };
    let shape = client.select(
        "SELECT coalesce(cardinality($1), 0), coalesce(array_ndims($1), 0),
                coalesce(array_length($1, 2), 0)",
        Some(1),
        &[arg],
    )?;
    let row = shape.first();
    let (count, ndims) = row.get_two::<i32, i32>()?;
    let width = row.get::<i32>(3)?.unwrap_or(0);
    let (count, ndims) = (count.unwrap_or(0), ndims.unwrap_or(0));
    if count == 0 {
        return Err(RetentionError::InvalidValue(
            "keys must not be empty".into(),
        ));
    }
    let n = table.key_columns.len();
    if n == 1 && ndims != 1 {
        return Err(RetentionError::InvalidValue(format!(
            "table {} has a one-column primary key: keys must be a one-dimensional array",
            table.display_name
        )));
    }
    if n > 1 && (ndims != 2 || width as usize != n) {
        return Err(RetentionError::InvalidValue(format!(
            "table {} has a {n}-column primary key: keys must be a two-dimensional array of {n} values per row",
            table.display_name
        )));
    }
    Ok(())
}

/// The key array as an SPI argument.
pub fn keys_arg<'a>(keys: &AnyArray) -> DatumWithOid<'a> {
    unsafe { DatumWithOid::new(keys.datum(), keys.oid()) }
}

/// The category column of a table, or the error explaining that tagging needs one.
fn category_column(table: &Managed) -> Result<&str, RetentionError> {
    table.category_column.as_deref().ok_or_else(|| {
        RetentionError::MissingColumnRole(
            format!("table {} has no category column", table.display_name),
            "Call retention.manage() with category_column => '<text column>'.".into(),
        )
    })
}

#[pg_extern(volatile, parallel_unsafe)]
fn tag(tbl: Option<PgRelation>, category: Option<&str>, keys: Option<AnyArray>) -> SqlResult<i64> {
    let oid = required(tbl, "tbl")?.oid();
    let category = required(category, "category")?;
    let keys = required(keys, "keys")?;
    Ok(Spi::connect_mut(|client| -> Result<i64, RetentionError> {
        let table = Managed::load(client, oid)?;
        let column = category_column(&table)?;
        table.check_category(client, &catalog::load(client, category)?)?;
        check_keys(client, &table, &keys)?;
        let sql = format!(
            "UPDATE {} AS t SET {} = $1 WHERE {}",
            table.display_name,
            quote_identifier(column),
            key_match_sql(client, &table, 2)?
        );
        Ok(client
            .update(&sql, None, &[category.into(), keys_arg(&keys)])?
            .len() as i64)
    })?)
}

/// Refuses anything but exactly one SQL statement (so a condition cannot smuggle a second one).
fn check_single_statement(sql: &str) -> Result<(), RetentionError> {
    let c = CString::new(sql)
        .map_err(|_| RetentionError::InvalidValue("condition contains a NUL byte".into()))?;
    // SAFETY: raw_parser returns a palloc'd List (or NIL) that we only read the length of.
    let statements = unsafe {
        let parsed = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if parsed.is_null() {
            0
        } else {
            (*parsed).length
        }
    };
    match statements {
        1 => Ok(()),
        _ => Err(RetentionError::InvalidValue(
            "condition must be a single boolean expression".into(),
        )),
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn tag_where(
    tbl: Option<PgRelation>,
    category: Option<&str>,
    condition: Option<&str>,
) -> SqlResult<i64> {
    let oid = required(tbl, "tbl")?.oid();
    let category = required(category, "category")?;
    let condition = required(condition, "condition")?;
    if condition.trim().is_empty() {
        return Err(RetentionError::InvalidValue("condition must not be empty".into()).into());
    }
    Ok(Spi::connect_mut(|client| -> Result<i64, RetentionError> {
        let table = Managed::load(client, oid)?;
        let column = category_column(&table)?;
        table.check_category(client, &catalog::load(client, category)?)?;
        let sql = format!(
            "UPDATE {} AS t SET {} = $1 WHERE ({condition})",
            table.display_name,
            quote_identifier(column)
        );
        check_single_statement(&sql)?;
        Ok(client.update(&sql, None, &[category.into()])?.len() as i64)
    })?)
}
