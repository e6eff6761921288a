//! The SQL surface of catalog (engine/catalog.rs).

use crate::engine::catalog::*;
use crate::engine::managed::Managed;
use crate::engine::period::check_interval;
use crate::engine::windows::{self};
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::call::{void, Args, V1};
use pgrx::pg_sys;
use pgrx::prelude::*;

// `retention.define_category` has 11 arguments: its entry point is written by hand (pg/call.rs)
// and reads them into one `CategoryDefinition`. The SQL is the text pgrx generated for 0.6.0,
// Rust types in comments included, so that the function stays the same object.
extension_sql!(
    r#"
CREATE  FUNCTION "define_category"(
	"name" TEXT, /* Option < & str > */
	"retain_for" interval, /* Option < Interval > */
	"clock" TEXT DEFAULT 'created', /* Option < & str > */
	"action" TEXT DEFAULT 'delete', /* Option < & str > */
	"soft_delete_window" interval DEFAULT NULL, /* Option < Interval > */
	"event" TEXT DEFAULT NULL, /* Option < & str > */
	"erasure_exempt" bool DEFAULT false, /* Option < bool > */
	"description" TEXT DEFAULT NULL, /* Option < & str > */
	"soft_delete_windows" jsonb DEFAULT NULL, /* Option < pgrx :: JsonB > */
	"review" TEXT DEFAULT NULL, /* Option < & str > */
	"auto_approve_after" interval DEFAULT NULL /* Option < Interval > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'define_category_with_governance_wrapper';
"#,
    name = "define_category",
);

/// The options of one `retention.define_category` call, as the caller gave them (NULL: None).
struct CategoryDefinition<'a> {
    name: Option<&'a str>,
    retain_for: Option<Interval>,
    clock: Option<&'a str>,
    action: Option<&'a str>,
    soft_delete_window: Option<Interval>,
    event: Option<&'a str>,
    erasure_exempt: Option<bool>,
    description: Option<&'a str>,
    soft_delete_windows: Option<pgrx::JsonB>,
    review: Option<&'a str>,
    auto_approve_after: Option<Interval>,
}

impl<'a> CategoryDefinition<'a> {
    /// Reads the arguments in the order of the SQL signature above. A database not yet updated
    /// from 0.5.0 calls with the first 8; the options added since are then NULL.
    ///
    /// # Safety
    /// `args` are a call of `retention.define_category` (any of its versions).
    unsafe fn read(args: &Args<'a>) -> Self {
        // SAFETY: each type is the one of that argument in the SQL signature.
        unsafe {
            CategoryDefinition {
                name: args.get(0),
                retain_for: args.get(1),
                clock: args.get(2),
                action: args.get(3),
                soft_delete_window: args.get(4),
                event: args.get(5),
                erasure_exempt: args.get(6),
                description: args.get(7),
                soft_delete_windows: args.get(8),
                review: args.get(9),
                auto_approve_after: args.get(10),
            }
        }
    }
}

/// `retention.define_category` (the SQL above).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn define_category_with_governance_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls it with the call of the SQL function declared above.
    let definition = unsafe { CategoryDefinition::read(&Args::new(fcinfo)) };
    void(define_category(definition))
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_define_category_with_governance_wrapper(
) -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// `retention.define_category` as defined up to 0.5.0 (8 arguments: no per-path windows, no
/// review): the SQL definition a database keeps until `ALTER EXTENSION pg_retention UPDATE`
/// calls this symbol. No SQL declares it any more.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn define_category_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls it with a call of 0.5.0's define_category.
    let definition = unsafe { CategoryDefinition::read(&Args::new(fcinfo)) };
    void(define_category(definition))
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_define_category_wrapper() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// Creates or updates a category.
fn define_category(definition: CategoryDefinition<'_>) -> SqlResult<()> {
    let CategoryDefinition {
        name,
        retain_for,
        clock,
        action,
        soft_delete_window,
        event,
        erasure_exempt,
        description,
        soft_delete_windows,
        review,
        auto_approve_after,
    } = definition;
    crate::pg::preconditions::require_primary("retention.define_category()")?;
    let name = required(name, "name")?;
    if name.trim().is_empty() {
        return Err(RetentionError::InvalidValue("category name must not be empty".into()).into());
    }
    let retain_for = required(retain_for, "retain_for")?;
    check_interval("retain_for", &retain_for)?;
    let clock = Clock::parse(required(clock, "clock")?)?;
    let action = Action::parse(required(action, "action")?)?;
    check_event(clock, event)?;
    let erasure_exempt = required(erasure_exempt, "erasure_exempt")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let candidate = Category {
                name: name.to_string(),
                retain_for,
                clock,
                action,
                windows: windows::parse(client, soft_delete_window, soft_delete_windows)?,
                event: event.map(str::to_string),
                erasure_exempt,
                locked: false,
                review: review.map(str::to_string),
                auto_approve_after,
            };
            candidate.check(client)?;
            // A new clock must be computable on every table that already uses the category.
            for table in Managed::load_all(client)? {
                if table.uses_category(client, name)? {
                    table.check_category(client, &candidate)?;
                }
            }
            candidate.store(client, description)?;
            crate::engine::guard::invalidate(client)?;
            Ok(())
        })
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn drop_category(name: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.drop_category()")?;
    let name = required(name, "name")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            if name == BUILTIN {
                return Err(RetentionError::CategoryInUse(
                    name.to_string(),
                    "It is built in: the deletion log's own retention (redefine it to change it)."
                        .into(),
                ));
            }
            client
                .update(
                    "SELECT 1 FROM retention.category_definitions WHERE name = $1 FOR UPDATE",
                    Some(1),
                    &[name.into()],
                )?
                .next()
                .ok_or_else(|| RetentionError::UnknownCategory(name.to_string()))?;
            let users = client
                .select(
                    "SELECT string_agg(what, ', ') FROM (
                     SELECT 'default category of ' || tbl::text AS what
                       FROM retention.managed_tables WHERE category = $1
                     UNION ALL
                     SELECT 'policy of tenant ' || tenant
                       FROM retention.tenant_policies WHERE category = $1
                     UNION ALL
                     SELECT 'scope of legal hold ' || id
                       FROM retention.holds WHERE category = $1) u",
                    None,
                    &[name.into()],
                )?
                .first()
                .get_one::<String>()?;
            if let Some(users) = users {
                return Err(RetentionError::CategoryInUse(
                    name.to_string(),
                    format!("Used as {users}."),
                ));
            }
            for table in Managed::load_all(client)? {
                if table.uses_category(client, name)? {
                    return Err(RetentionError::CategoryInUse(
                        name.to_string(),
                        format!("Rows of {} are tagged with it.", table.display_name),
                    ));
                }
            }
            client.update(
                "DELETE FROM retention.category_definitions WHERE name = $1",
                None,
                &[name.into()],
            )?;
            crate::engine::guard::invalidate(client)?;
            Ok(())
        })
    })?;
    Ok(())
}
