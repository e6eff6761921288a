//! Per-customer policy: tenant overrides of a category's period
//! (`retention.set_tenant_policy`, `retention.clear_tenant_policy`) and tenant events that start
//! event clocks (`retention.record_event`, `retention.cancel_event`).

use crate::error::{required, RetentionError};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

pub fn check_tenant(tenant: Option<&str>) -> Result<&str, RetentionError> {
    let tenant = required(tenant, "tenant")?;
    if tenant.trim().is_empty() {
        return Err(RetentionError::InvalidValue(
            "tenant must not be empty".into(),
        ));
    }
    Ok(tenant)
}

/// Inserts or replaces one tenant override. A schema older than 0.6.0 has no per-path
/// windows: it stores the one window, and refuses the others.
pub fn store_override(
    client: &mut pgrx::spi::SpiClient,
    tenant: &str,
    category: &str,
    retain_for: Interval,
    windows: &crate::engine::windows::Windows,
) -> Result<(), RetentionError> {
    let per_path = crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)?;
    if !per_path && (windows.expired.is_some() || windows.customer_request.is_some()) {
        crate::pg::schema_version::require_current()?;
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
        crate::pg::identity::caller_name().into(),
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
