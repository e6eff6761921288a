//! Tagging rows with a category other than their table's default: `retention.tag` (by primary
//! key) and `retention.tag_where` (by condition). Also the key matching shared with the
//! customer-deletion path.

use crate::engine::catalog;
use crate::engine::managed::{check_rights, Managed};
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::datum::{AnyArray, DatumWithOid};
use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, SpiClient};
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
        .map(|(i, ty)| format!("(${param}::text[])[i][{}]::{ty}", i + 1))
        .collect();
    // Not correlated (no lateral reference to the array): Citus plans it on the coordinator.
    Ok(format!(
        "({}) IN (SELECT {} FROM generate_subscripts(${param}::text[], 1) AS i)",
        columns.join(", "),
        values.join(", ")
    ))
}

/// SQL listing the keys of key array `$param` as the deletion log writes them (column
/// `key`, a JSON object of the key columns), one row per key.
pub fn requested_keys_sql(
    client: &SpiClient,
    table: &Managed,
    param: usize,
) -> Result<String, RetentionError> {
    let types = table.key_types(client)?;
    let single = table.key_columns.len() == 1;
    let pairs: Vec<String> = table
        .key_columns
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(i, (column, ty))| {
            let value = if single {
                format!("(${param}::text[])[i]::{ty}")
            } else {
                format!("(${param}::text[])[i][{}]::{ty}", i + 1)
            };
            format!(
                "{}, {value}",
                crate::engine::managed::quote_literal_text(column)
            )
        })
        .collect();
    Ok(format!(
        "SELECT jsonb_build_object({}) AS key FROM generate_subscripts(${param}::text[], 1) AS i",
        pairs.join(", ")
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

/// Tags the unheld rows of `table` whose keys are in `keys` with `category`, as the table's
/// owner, once the caller's rights on the table are checked; returns the rows tagged.
pub fn tag_keys(
    client: &mut SpiClient,
    table: &Managed,
    category: &str,
    keys: DatumWithOid,
) -> Result<i64, RetentionError> {
    check_rights(
        client,
        table.oid,
        &table.display_name,
        &["SELECT", "UPDATE"],
        "tagging rows of",
    )?;
    let column = category_column(table)?;
    table.check_category(client, &catalog::load(client, category)?)?;
    let mut params = Params::default();
    let name = params.bind(category);
    params.bind(keys);
    let matching = key_match_sql(client, table, 2)?;
    // A held row keeps its category: a hold preserves rows as they are.
    let unheld = crate::engine::keeping::unheld_sql(client, table, &mut params)?;
    let sql = RowSet::of(table)
        .filter(matching)
        .filter(unheld)
        .update(&format!("{} = {name}", quote_identifier(column)), None);
    Ok(crate::pg::executor::update(client, table, &sql, params.args())?.len() as i64)
}

/// Refuses anything but exactly one SQL statement (so a condition cannot smuggle a second one).
pub fn check_single_statement(sql: &str) -> Result<(), RetentionError> {
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn tag_and_tag_where_set_the_category_column() {
        seed(10);
        assert_eq!(
            int("SELECT retention.tag('conversations', 'audit_logs', ARRAY[1, 2, 99])"),
            2
        );
        assert_eq!(
            int("SELECT retention.tag('conversations', 'audit_logs', ARRAY['3'])"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE category = 'audit_logs'"),
            3
        );
    }

    #[pg_test]
    fn tag_where_counts_matching_rows() {
        seed(10);
        assert_eq!(
            int("SELECT retention.tag_where('conversations', 'audit_logs', $$tenant = 't1'$$)"),
            4
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE category = 'audit_logs'"),
            4
        );
    }

    #[pg_test]
    fn tagging_rejects_bad_input() {
        seed(10);
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'nope', ARRAY[1])"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'audit_logs', ARRAY[]::int[])"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'audit_logs', ARRAY['abc'])"),
            "22P02"
        );
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'audit_logs', NULL::int[])"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'support_records', ARRAY[1])"),
            "55000"
        );
        assert_eq!(sqlstate("SELECT retention.tag_where('conversations', 'audit_logs', 'true; DROP TABLE conversations')"), "22023");
        assert_eq!(sqlstate("SELECT retention.tag_where('conversations', 'audit_logs', 'true) OR (true); DROP TABLE conversations; SELECT (1')"), "42601");
        assert_eq!(
            sqlstate("SELECT retention.tag_where('conversations', 'audit_logs', 'true) OR (true')"),
            "42601"
        );
        assert_eq!(
            sqlstate("SELECT retention.tag_where('conversations', 'audit_logs', '')"),
            "22023"
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE category IS NOT NULL"),
            0
        );
        Spi::run("CREATE TABLE plain (id int PRIMARY KEY, created_at timestamptz); SELECT retention.manage('plain', 'conversations', created_column => 'created_at')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.tag('plain', 'audit_logs', ARRAY[1])"),
            "55000"
        );
    }

    #[pg_test]
    fn tagging_leaves_held_rows_alone() {
        seed(10);
        Spi::run("SELECT retention.place_hold('case', tenant => 't1', notify => false)").unwrap();
        assert_eq!(
            int("SELECT retention.tag('conversations', 'audit_logs', ARRAY[1, 2, 3])"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE id = 1 AND category IS NULL"),
            1
        );
    }

    #[pg_test]
    fn composite_keys_take_two_dimensional_arrays() {
        Spi::run(
            "SELECT retention.define_category('conversations', '1 year');
             SELECT retention.define_category('audit_logs', '7 years');
             CREATE TABLE pairs (a int, b text, created_at timestamptz, category text, PRIMARY KEY (a, b));
             INSERT INTO pairs VALUES (1, 'x', now(), NULL), (1, 'y', now(), NULL), (2, 'x', now(), NULL);
             SELECT retention.manage('pairs', 'conversations', created_column => 'created_at', category_column => 'category');",
        )
        .unwrap();
        assert_eq!(int("SELECT retention.tag('pairs', 'audit_logs', ARRAY[ARRAY['1', 'y'], ARRAY['2', 'x']])"), 2);
        assert_eq!(int("SELECT count(*) FROM pairs WHERE category = 'audit_logs' AND (a, b) IN ((1, 'y'), (2, 'x'))"), 2);
        assert_eq!(
            sqlstate("SELECT retention.tag('pairs', 'audit_logs', ARRAY[1, 2])"),
            "22023"
        );
    }
}
