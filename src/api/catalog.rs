//! The SQL surface of catalog (engine/catalog.rs).

use crate::engine::catalog::*;
use crate::engine::managed::Managed;
use crate::engine::period::check_interval;
use crate::engine::windows::{self};
use crate::error::{required, RetentionError, SqlResult};
use pgrx::prelude::*;

/// `retention.define_category` as defined up to 0.5.0 (no per-path windows, no review): the
/// SQL definition a database keeps until `ALTER EXTENSION pg_retention UPDATE` calls this
/// symbol. No SQL is generated.
#[allow(clippy::too_many_arguments)] // the SQL signature, one argument per option
#[pg_extern(sql = false, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn define_category(
    name: Option<&str>,
    retain_for: Option<Interval>,
    clock: Option<&str>,
    action: Option<&str>,
    soft_delete_window: Option<Interval>,
    event: Option<&str>,
    erasure_exempt: Option<bool>,
    description: Option<&str>,
) -> SqlResult<()> {
    define_category_with_governance(
        name,
        retain_for,
        clock,
        action,
        soft_delete_window,
        event,
        erasure_exempt,
        description,
        None,
        None,
        None,
    )
}

#[allow(clippy::too_many_arguments)] // the SQL signature, one argument per option
#[pg_extern(name = "define_category", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn define_category_with_governance(
    name: Option<&str>,
    retain_for: Option<Interval>,
    clock: default!(Option<&str>, "'created'"),
    action: default!(Option<&str>, "'delete'"),
    soft_delete_window: default!(Option<Interval>, "NULL"),
    event: default!(Option<&str>, "NULL"),
    erasure_exempt: default!(Option<bool>, "false"),
    description: default!(Option<&str>, "NULL"),
    soft_delete_windows: default!(Option<pgrx::JsonB>, "NULL"),
    review: default!(Option<&str>, "NULL"),
    auto_approve_after: default!(Option<Interval>, "NULL"),
) -> SqlResult<()> {
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
