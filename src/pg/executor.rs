//! The one executor of statements against application tables. Each runs as the table's owner,
//! in a security-restricted operation with `search_path = pg_catalog, pg_temp` (identity.rs),
//! once the engine has checked that the table may be acted on (`Target::ready`). The switch is
//! per statement, never per row; the extension's own bookkeeping (log, runs, queue, marks) is
//! written outside it.

use crate::error::RetentionError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiTupleTable};

/// An application table a statement acts on, as the engine describes it.
pub trait Target {
    /// The role its statements run as: the table's owner.
    fn owner(&self) -> pg_sys::Oid;
    /// Checks, before a read, that the table's recorded shape is usable.
    fn ready_to_read(&self) -> Result<(), RetentionError>;
    /// Checks, before a change, that the purge may act on the table as its owner.
    fn ready_to_change(&self, client: &SpiClient) -> Result<(), RetentionError>;
}

/// Runs `f`, statements against `target`, as its owner (see the module docs).
pub fn as_owner<R>(target: &impl Target, f: impl FnOnce() -> R) -> R {
    crate::pg::identity::as_owner(target.owner(), f)
}

/// Runs a statement that may change `target` (or its parent-bound children), as its owner.
pub fn update<'conn>(
    client: &mut SpiClient<'conn>,
    target: &impl Target,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    target.ready_to_change(client)?;
    Ok(as_owner(target, || client.update(sql, None, args))?)
}

/// Runs a read-only statement over `target`, as its owner (works on a standby).
pub fn select<'conn>(
    client: &SpiClient<'conn>,
    target: &impl Target,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    target.ready_to_read()?;
    Ok(as_owner(target, || client.select(sql, None, args))?)
}

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
