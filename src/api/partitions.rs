//! The SQL surface of partitions (engine/partitions.rs).

use crate::engine::managed::Managed;
use crate::engine::partitions::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::regclass::RegClass;
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn set_partition_retirement(
    tbl: Option<RegClass>,
    mode: Option<&str>,
    target_schema: default!(Option<&str>, "NULL"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.set_partition_retirement()")?;
    let oid = required(tbl, "tbl")?.oid();
    let mode = Retirement::parse(required(mode, "mode")?, target_schema)?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let table = Managed::load(client, oid)?;
            if !table.partitioned {
                return Err(RetentionError::WrongObjectType(format!(
                    "{} is not a partitioned table",
                    table.display_name
                )));
            }
            crate::engine::managed::check_rights(
                client,
                oid,
                &table.display_name,
                &["SELECT", "DELETE"],
                "retiring partitions of",
            )?;
            if let Retirement::Move(schema) = &mode {
                check_schema(client, &table, schema)?;
            }
            client.update(
                "INSERT INTO retention.partition_retirement (tbl, mode, target_schema, set_by)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tbl) DO UPDATE SET mode = excluded.mode,
                     target_schema = excluded.target_schema, set_at = now(),
                     set_by = excluded.set_by",
                None,
                &[
                    oid.into(),
                    mode.as_str().into(),
                    target_schema.into(),
                    crate::pg::identity::caller_name().into(),
                ],
            )?;
            Ok(())
        })
    })?;
    Ok(())
}
