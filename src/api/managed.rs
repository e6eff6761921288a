//! The SQL surface of managed (engine/managed.rs).

use crate::engine::managed::*;
use crate::engine::managing::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::call::{void, Args, V1};
use crate::pg::regclass::{relation_name, RegClass};
use pgrx::pg_sys;
use pgrx::prelude::*;

// `retention.manage` has 9 arguments: its entry point is written by hand (pg/call.rs) and reads
// them into one `ManageRequest`. The SQL is the text pgrx generated for 0.6.0, Rust types in
// comments included, so that the function stays the same object.
extension_sql!(
    r#"
CREATE  FUNCTION "manage"(
	"tbl" regclass, /* Option < RegClass > */
	"category" TEXT, /* Option < & str > */
	"created_column" TEXT DEFAULT NULL, /* Option < & str > */
	"activity_column" TEXT DEFAULT NULL, /* Option < & str > */
	"tenant_column" TEXT DEFAULT NULL, /* Option < & str > */
	"subject_column" TEXT DEFAULT NULL, /* Option < & str > */
	"category_column" TEXT DEFAULT NULL, /* Option < & str > */
	"soft_delete_column" TEXT DEFAULT NULL, /* Option < & str > */
	"anonymize" jsonb DEFAULT NULL /* Option < pgrx :: JsonB > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'manage_wrapper';
"#,
    name = "manage",
);

/// One `retention.manage` call, as the caller gave it (NULL: None).
struct ManageRequest<'a> {
    tbl: Option<RegClass>,
    category: Option<&'a str>,
    roles: Roles<'a>,
    anonymize: Option<pgrx::JsonB>,
}

impl<'a> ManageRequest<'a> {
    /// Reads the arguments in the order of the SQL signature above.
    ///
    /// # Safety
    /// `args` are a call of `retention.manage`.
    unsafe fn read(args: &Args<'a>) -> Self {
        // SAFETY: each type is the one of that argument in the SQL signature.
        unsafe {
            ManageRequest {
                tbl: args.get(0),
                category: args.get(1),
                roles: Roles {
                    created: args.get(2),
                    activity: args.get(3),
                    tenant: args.get(4),
                    subject: args.get(5),
                    category: args.get(6),
                    soft_delete: args.get(7),
                },
                anonymize: args.get(8),
            }
        }
    }
}

/// `retention.manage` (the SQL above).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn manage_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls it with the call of the SQL function declared above.
    let request = unsafe { ManageRequest::read(&Args::new(fcinfo)) };
    void(manage(request))
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_manage_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// Puts a table under retention.
fn manage(request: ManageRequest<'_>) -> SqlResult<()> {
    let ManageRequest {
        tbl,
        category,
        roles,
        anonymize,
    } = request;
    crate::pg::preconditions::require_primary("retention.manage()")?;
    let tbl = required(tbl, "tbl")?;
    let category = required(category, "category")?;
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
