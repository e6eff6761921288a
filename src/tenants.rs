//! Per-customer policy: tenant overrides of a category's period
//! (`retention.set_tenant_policy`, `retention.clear_tenant_policy`) and tenant events that start
//! event clocks (`retention.record_event`, `retention.cancel_event`).

use crate::catalog::{self, check_interval};
use crate::error::{required, RetentionError, SqlResult};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

fn check_tenant(tenant: Option<&str>) -> Result<&str, RetentionError> {
    let tenant = required(tenant, "tenant")?;
    if tenant.is_empty() {
        return Err(RetentionError::InvalidValue(
            "tenant must not be empty".into(),
        ));
    }
    Ok(tenant)
}

#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant_policy(
    tenant: Option<&str>,
    category: Option<&str>,
    retain_for: Option<Interval>,
    soft_delete_window: default!(Option<Interval>, "NULL"),
) -> SqlResult<()> {
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
    let retain_for = required(retain_for, "retain_for")?;
    check_interval("retain_for", &retain_for)?;
    if let Some(window) = &soft_delete_window {
        check_interval("soft_delete_window", window)?;
    }
    Spi::connect_mut(|client| -> Result<(), RetentionError> {
        catalog::load(client, category)?;
        let args: [DatumWithOid; 4] = [
            tenant.into(),
            category.into(),
            retain_for.into(),
            soft_delete_window.into(),
        ];
        client.update(
            "INSERT INTO retention.tenant_policies (tenant, category, retain_for, soft_delete_window)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, category) DO UPDATE SET
                 retain_for = excluded.retain_for,
                 soft_delete_window = excluded.soft_delete_window,
                 updated_at = now(), updated_by = current_user",
            None,
            &args,
        )?;
        Ok(())
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
fn clear_tenant_policy(tenant: Option<&str>, category: Option<&str>) -> SqlResult<()> {
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
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
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
fn record_event(
    tenant: Option<&str>,
    event: Option<&str>,
    occurred_at: default!(Option<TimestampWithTimeZone>, "now()"),
) -> SqlResult<()> {
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
    let occurred_at = required(occurred_at, "occurred_at")?;
    Spi::connect_mut(|client| -> Result<(), RetentionError> {
        let known = client
            .select(
                "SELECT 1 FROM retention.categories WHERE clock = 'event' AND event = $1",
                Some(1),
                &[event.into()],
            )?
            .len()
            > 0;
        if !known {
            return Err(RetentionError::UnknownEvent(event.into()));
        }
        client.update(
            "INSERT INTO retention.tenant_events (tenant, event, occurred_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, event) DO UPDATE SET occurred_at = excluded.occurred_at,
                 recorded_at = now(), recorded_by = current_user",
            None,
            &[tenant.into(), event.into(), occurred_at.into()],
        )?;
        Ok(())
    })?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
fn cancel_event(tenant: Option<&str>, event: Option<&str>) -> SqlResult<()> {
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
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
    })?;
    Ok(())
}
