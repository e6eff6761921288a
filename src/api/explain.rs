//! The SQL surface of explain (engine/explain.rs).

use crate::engine::explain::*;
use crate::engine::managed::Managed;
use crate::engine::tagging::check_keys;
use crate::error::{required, RetentionError};
use crate::pg::regclass::RegClass;
use pgrx::datum::AnyArray;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn explain(
    tbl: Option<RegClass>,
    key: Option<AnyArray>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(row_key, JsonB),
            name!(present, bool),
            name!(category, Option<String>),
            name!(tagged, Option<bool>),
            name!(clock, Option<String>),
            name!(clock_value, Option<TimestampWithTimeZone>),
            name!(retain_for, Option<Interval>),
            name!(policy, Option<String>),
            name!(due_at, Option<TimestampWithTimeZone>),
            name!(soft_deleted_at, Option<TimestampWithTimeZone>),
            name!(window_ends, Option<TimestampWithTimeZone>),
            name!(holds, JsonB),
            name!(queued, JsonB),
            name!(next_action, String),
            name!(next_action_at, Option<TimestampWithTimeZone>),
            name!(log, JsonB),
        ),
    >,
    ErrorReport,
> {
    let oid = required(tbl, "tbl")?.oid();
    let keys = required(key, "key")?;
    let rows = crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Vec<Explained>, RetentionError> {
            let table = Managed::load(client, oid)?;
            crate::engine::managed::check_rights(
                client,
                oid,
                &table.display_name,
                &["SELECT"],
                "explaining rows of",
            )?;
            check_keys(client, &table, &keys)?;
            explain_keys(client, &table, &keys)
        })
    })?;
    Ok(TableIterator::new(rows))
}
