//! The SQL surface of managed (engine/managed.rs).

use crate::engine::managed::*;
use crate::engine::managing::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::regclass::{relation_name, RegClass};
use pgrx::prelude::*;

#[allow(clippy::too_many_arguments)] // the SQL signature, one argument per column role
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn manage(
    tbl: Option<RegClass>,
    category: Option<&str>,
    created_column: default!(Option<&str>, "NULL"),
    activity_column: default!(Option<&str>, "NULL"),
    tenant_column: default!(Option<&str>, "NULL"),
    subject_column: default!(Option<&str>, "NULL"),
    category_column: default!(Option<&str>, "NULL"),
    soft_delete_column: default!(Option<&str>, "NULL"),
    anonymize: default!(Option<pgrx::JsonB>, "NULL"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.manage()")?;
    let tbl = required(tbl, "tbl")?;
    let category = required(category, "category")?;
    let roles = Roles {
        created: created_column,
        activity: activity_column,
        tenant: tenant_column,
        subject: subject_column,
        category: category_column,
        soft_delete: soft_delete_column,
    };
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| manage_table(client, tbl, category, roles, anonymize))
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn unmanage(tbl: Option<RegClass>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.unmanage()")?;
    let oid = required(tbl, "tbl")?.oid();
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let table = Managed::load(client, oid)?;
            check_rights(
                client,
                oid,
                &table.display_name,
                &["SELECT", "DELETE"],
                "unmanaging",
            )?;
            refuse_if_held(client, &table)?;
            let gone = client
                .update(
                    "DELETE FROM retention.managed_tables WHERE tbl = $1 RETURNING 1",
                    None,
                    &[oid.into()],
                )?
                .len();
            if gone == 0 {
                RegClass(oid).table(client)?;
                return Err(RetentionError::NotManaged(relation_name(client, oid)?));
            }
            crate::engine::guard::remove(client, &table.display_name)?;
            crate::engine::category_lock::remove(client, &table.display_name)?;
            if crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
                client.update(
                    "DELETE FROM retention.partition_retirement WHERE tbl = $1",
                    None,
                    &[oid.into()],
                )?;
            }
            crate::engine::guard::invalidate(client)?;
            Ok(())
        })
    })?;
    Ok(())
}
