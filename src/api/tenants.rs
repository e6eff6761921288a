//! The SQL surface of tenants (engine/tenants.rs).

use crate::engine::catalog;
use crate::engine::managed::Managed;
use crate::engine::period::check_interval;
use crate::engine::tenants::*;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::prelude::*;

/// `retention.set_tenant_policy` as defined up to 0.5.0 (one window): the SQL definition a
/// database keeps until `ALTER EXTENSION pg_retention UPDATE` calls this symbol. No SQL is
/// generated.
#[pg_extern(sql = false, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn set_tenant_policy(
    tenant: Option<&str>,
    category: Option<&str>,
    retain_for: Option<Interval>,
    soft_delete_window: Option<Interval>,
) -> SqlResult<()> {
    set_tenant_policy_with_windows(tenant, category, retain_for, soft_delete_window, None)
}

#[pg_extern(name = "set_tenant_policy", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn set_tenant_policy_with_windows(
    tenant: Option<&str>,
    category: Option<&str>,
    retain_for: Option<Interval>,
    soft_delete_window: default!(Option<Interval>, "NULL"),
    soft_delete_windows: default!(Option<pgrx::JsonB>, "NULL"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.set_tenant_policy()")?;
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
    let retain_for = required(retain_for, "retain_for")?;
    check_interval("retain_for", &retain_for)?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let windows =
                crate::engine::windows::parse(client, soft_delete_window, soft_delete_windows)?;
            let mut in_force = catalog::load(client, category)?;
            // A window needs a soft-delete column on every table this override reaches.
            if windows.any_path() {
                in_force.windows = windows.over(&in_force.windows);
                for table in Managed::load_all(client)? {
                    if table.tenant_column.is_some() && table.uses_category(client, category)? {
                        table.check_category(client, &in_force)?;
                    }
                }
            }
            store_override(client, tenant, category, retain_for, &windows)?;
            Ok(())
        })
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clear_tenant_policy(tenant: Option<&str>, category: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.clear_tenant_policy()")?;
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let gone = client
                .update(
                    "DELETE FROM retention.tenant_policies WHERE tenant = $1 AND category = $2
                 RETURNING 1",
                    None,
                    &[tenant.into(), category.into()],
                )?
                .len();
            if gone == 0 {
                return Err(RetentionError::UnknownTenantPolicy(
                    tenant.into(),
                    category.into(),
                ));
            }
            Ok(())
        })
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn record_event(
    tenant: Option<&str>,
    event: Option<&str>,
    occurred_at: default!(Option<TimestampWithTimeZone>, "now()"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.record_event()")?;
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
    let occurred_at = required(occurred_at, "occurred_at")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let finite = client
                .select(
                    "SELECT isfinite($1::timestamptz)",
                    Some(1),
                    &[occurred_at.into()],
                )?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            if !finite {
                return Err(RetentionError::InvalidValue(
                    "occurred_at must be a finite time".into(),
                ));
            }
            let known = !client
                .select(
                    "SELECT 1 FROM retention.categories WHERE clock = 'event' AND event = $1",
                    Some(1),
                    &[event.into()],
                )?
                .is_empty();
            if !known {
                return Err(RetentionError::UnknownEvent(event.into()));
            }
            client.update(
                "INSERT INTO retention.tenant_events (tenant, event, occurred_at, recorded_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, event) DO UPDATE SET occurred_at = excluded.occurred_at,
                 recorded_at = now(), recorded_by = excluded.recorded_by",
                None,
                &[
                    tenant.into(),
                    event.into(),
                    occurred_at.into(),
                    crate::pg::identity::caller_name().into(),
                ],
            )?;
            Ok(())
        })
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn cancel_event(tenant: Option<&str>, event: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.cancel_event()")?;
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let gone = client
            .update(
                "DELETE FROM retention.tenant_events WHERE tenant = $1 AND event = $2 RETURNING 1",
                None,
                &[tenant.into(), event.into()],
            )?
            .len();
            if gone == 0 {
                return Err(RetentionError::EventNotRecorded(
                    tenant.into(),
                    event.into(),
                ));
            }
            Ok(())
        })
    })?;
    Ok(())
}
