//! The one executor of statements against application tables: each runs as the table's owner
//! (see identity.rs), once a table has been checked to be one the purge can act on safely. The
//! switch is per statement, never per row; the extension's own bookkeeping (log, runs, queue,
//! marks) is written outside it.

use crate::error::RetentionError;
use crate::managed::Managed;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiTupleTable};

/// Runs `f`, statements against `table`, as the table's owner (see the module docs).
pub fn as_owner<R>(table: &Managed, f: impl FnOnce() -> R) -> R {
    crate::identity::as_owner(table.owner, f)
}

/// Runs a statement that may change `table` (or its parent-bound children), as its owner.
pub fn update<'conn>(
    client: &mut SpiClient<'conn>,
    table: &Managed,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    verify(client, table)?;
    Ok(as_owner(table, || client.update(sql, None, args))?)
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
        Err(RetentionError::MissingColumnRole(
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
    let category = crate::catalog::load(client, &table.category)?;
    crate::managed::check_rights_of(
        client,
        manager,
        table.oid,
        &table.display_name,
        &crate::managed::managing_needs(&category),
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

/// The first name a catalog query about relation `oid` returns (an offending object), if any.
pub fn first_name(
    client: &SpiClient,
    sql: &str,
    oid: pg_sys::Oid,
) -> Result<Option<String>, RetentionError> {
    Ok(client
        .select(sql, Some(1), &[oid.into()])?
        .next()
        .map(|r| r.get::<String>(1))
        .transpose()?
        .flatten())
}

/// Runs a read-only statement over `table`, as its owner (works on a standby).
pub fn select<'conn>(
    client: &SpiClient<'conn>,
    table: &Managed,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    table.check_shape()?;
    Ok(as_owner(table, || client.select(sql, None, args))?)
}
