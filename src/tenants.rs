//! Per-customer policy: tenant overrides of a category's period
//! (`retention.set_tenant_policy`, `retention.clear_tenant_policy`) and tenant events that start
//! event clocks (`retention.record_event`, `retention.cancel_event`).

use crate::catalog::{self, check_interval};
use crate::error::{required, RetentionError, SqlResult};
use crate::managed::Managed;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

fn check_tenant(tenant: Option<&str>) -> Result<&str, RetentionError> {
    let tenant = required(tenant, "tenant")?;
    if tenant.trim().is_empty() {
        return Err(RetentionError::InvalidValue(
            "tenant must not be empty".into(),
        ));
    }
    Ok(tenant)
}

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
    crate::runs::require_primary("retention.set_tenant_policy()")?;
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
    let retain_for = required(retain_for, "retain_for")?;
    check_interval("retain_for", &retain_for)?;
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let windows = crate::windows::parse(client, soft_delete_window, soft_delete_windows)?;
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

/// Inserts or replaces one tenant override. A schema older than 0.6.0 has no per-path
/// windows: it stores the one window, and refuses the others.
fn store_override(
    client: &mut pgrx::spi::SpiClient,
    tenant: &str,
    category: &str,
    retain_for: Interval,
    windows: &crate::windows::Windows,
) -> Result<(), RetentionError> {
    let per_path = crate::schema_version::at_least(crate::schema_version::GOVERNANCE)?;
    if !per_path && (windows.expired.is_some() || windows.customer_request.is_some()) {
        crate::schema_version::require_current()?;
    }
    let (columns, values, updates) = if per_path {
        (
            ", window_expired, window_customer_request",
            ", $6, $7",
            "window_expired = excluded.window_expired,
             window_customer_request = excluded.window_customer_request,",
        )
    } else {
        ("", "", "")
    };
    let args: [DatumWithOid; 7] = [
        tenant.into(),
        category.into(),
        retain_for.into(),
        windows.any.into(),
        crate::identity::caller_name().into(),
        windows.expired.into(),
        windows.customer_request.into(),
    ];
    client.update(
        &format!(
            "INSERT INTO retention.tenant_policies
                 (tenant, category, retain_for, soft_delete_window, updated_by{columns})
             VALUES ($1, $2, $3, $4, $5{values})
             ON CONFLICT (tenant, category) DO UPDATE SET
                 retain_for = excluded.retain_for,
                 soft_delete_window = excluded.soft_delete_window, {updates}
                 updated_at = now(), updated_by = excluded.updated_by"
        ),
        None,
        &args[..if per_path { 7 } else { 5 }],
    )?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clear_tenant_policy(tenant: Option<&str>, category: Option<&str>) -> SqlResult<()> {
    crate::runs::require_primary("retention.clear_tenant_policy()")?;
    let tenant = check_tenant(tenant)?;
    let category = required(category, "category")?;
    crate::identity::as_extension(|| {
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
    crate::runs::require_primary("retention.record_event()")?;
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
    let occurred_at = required(occurred_at, "occurred_at")?;
    crate::identity::as_extension(|| {
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
                    crate::identity::caller_name().into(),
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
    crate::runs::require_primary("retention.cancel_event()")?;
    let tenant = check_tenant(tenant)?;
    let event = required(event, "event")?;
    crate::identity::as_extension(|| {
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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn tenant_policies_and_events() {
        Spi::run("SELECT retention.define_category('conversations', '1 year'); SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination')").unwrap();
        Spi::run("SELECT retention.set_tenant_policy('acme', 'conversations', '30 days')").unwrap();
        Spi::run(
            "SELECT retention.set_tenant_policy('acme', 'conversations', '60 days', '7 days')",
        )
        .unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.tenant_policies WHERE tenant = 'acme' AND retain_for = '60 days' AND soft_delete_window = '7 days'"), 1);
        Spi::run("SELECT retention.clear_tenant_policy('acme', 'conversations')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.tenant_policies"), 0);
        Spi::run("SELECT retention.record_event('acme', 'termination', '2026-01-01')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.tenant_events WHERE tenant = 'acme' AND occurred_at = '2026-01-01'"), 1);
        Spi::run("SELECT retention.cancel_event('acme', 'termination')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.tenant_events"), 0);
    }

    #[pg_test]
    fn tenant_functions_reject_bad_input() {
        Spi::run("SELECT retention.define_category('conversations', '1 year')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.set_tenant_policy('acme', 'nope', '1 day')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.set_tenant_policy('acme', 'conversations', '-1 day')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.set_tenant_policy('', 'conversations', '1 day')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.set_tenant_policy(NULL, 'conversations', '1 day')"),
            "22004"
        );
        // A window where a table reached by the override has no soft-delete column.
        Spi::run(
            "CREATE TABLE tickets (id int PRIMARY KEY, tenant text, created_at timestamptz);
             SELECT retention.manage('tickets', 'conversations', created_column => 'created_at',
                                     tenant_column => 'tenant')",
        )
        .unwrap();
        assert_eq!(
            sqlstate(
                "SELECT retention.set_tenant_policy('acme', 'conversations', '90 days', '30 days')"
            ),
            "55000"
        );
        Spi::run("SELECT retention.set_tenant_policy('acme', 'conversations', '90 days')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.tenant_policies"), 1);
        Spi::run("SELECT retention.clear_tenant_policy('acme', 'conversations')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.clear_tenant_policy('acme', 'conversations')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.record_event('acme', 'termination')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.cancel_event('acme', 'termination')"),
            "42704"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.tenant_policies")
                + int("SELECT count(*) FROM retention.tenant_events"),
            0
        );
    }
}
