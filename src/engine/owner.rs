//! When the purge may act on a managed table as its owner: the engine's side of the one
//! executor (pg/executor.rs), which runs every statement against an application table.

use crate::engine::managed::Managed;
use crate::error::RetentionError;
use crate::pg::executor::{first_name, Target};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

impl Target for Managed {
    fn owner(&self) -> pg_sys::Oid {
        self.owner
    }

    fn ready_to_read(&self) -> Result<(), RetentionError> {
        self.check_shape()
    }

    fn ready_to_change(&self, client: &SpiClient) -> Result<(), RetentionError> {
        verify(client, self)?;
        if self.distribution.is_some() {
            crate::pg::citus::coordinate(client)?;
        }
        Ok(())
    }
}

/// Checks, once per loaded table, that the purge may act on it as its owner:
/// - no rule rewrites its DELETEs or UPDATEs (the log would record what did not happen);
/// - no deferrable trigger of the owner's could fire at commit, after the statement has left
///   the owner's identity (the foreign keys' internal triggers run as their owner anyway);
/// - the role that managed it still owns it or holds the privileges managing it needed
///   (rights revoked, owner changed: the table is skipped, its error recorded).
fn verify(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    if table.verified.get() {
        return Ok(());
    }
    table.check_shape()?;
    let refuse = |what: String, hint: &str| {
        Err(RetentionError::UnsafeTarget(
            format!(
                "{what} on {}: the purge cannot act on it safely",
                table.display_name
            ),
            hint.into(),
        ))
    };
    if let Some(rule) = first_name(client, RULES, table.oid)? {
        return refuse(
            format!("rule {rule} rewrites DELETE or UPDATE"),
            "Drop the rule.",
        );
    }
    if let Some(trigger) = first_name(client, DEFERRABLE_TRIGGERS, table.oid)? {
        return refuse(
            format!("trigger {trigger} is deferrable"),
            "Make the trigger NOT DEFERRABLE.",
        );
    }
    let manager = client
        .select(
            "SELECT to_regrole(managed_by::text) FROM retention.managed_tables WHERE tbl = $1",
            Some(1),
            &[table.oid.into()],
        )?
        .first()
        .get_one::<pg_sys::Oid>()?
        .unwrap_or(pg_sys::InvalidOid);
    let category = crate::engine::catalog::load(client, &table.category)?;
    crate::engine::managed::check_rights_of(
        client,
        manager,
        table.oid,
        &table.display_name,
        &crate::engine::managed::managing_needs(&category),
        "the role that managed it no longer may purge",
    )?;
    table.verified.set(true);
    Ok(())
}

const RULES: &str = "SELECT rulename::text FROM pg_catalog.pg_rewrite
                      WHERE ev_class = $1 AND ev_type IN ('3', '4') LIMIT 1";
const DEFERRABLE_TRIGGERS: &str = "SELECT tgname::text FROM pg_catalog.pg_trigger
                                    WHERE tgrelid = $1 AND tgdeferrable AND NOT tgisinternal
                                    LIMIT 1";
