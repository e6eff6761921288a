//! Acting as a table's owner. Every statement the extension runs against an application table
//! runs as that table's owner inside a security-restricted operation, with `search_path` pinned
//! to `pg_catalog, pg_temp` and `row_security` off: what VACUUM, ANALYZE and REFRESH
//! MATERIALIZED VIEW do (`SetUserIdAndSecContext(owner, … | SECURITY_RESTRICTED_OPERATION)` and
//! a GUC nest level, `NewGUCNestLevel` … `AtEOXact_GUC`). Code the owner controls (triggers,
//! rules, index expressions, CHECKs, generated columns, domains, casts, operators) then runs
//! with the owner's rights, never with the worker's superuser rights or a calling duty's.
//!
//! `row_security = off` makes a statement that row-level security would filter fail instead
//! (`42501`): a purge or an erasure never completes over rows it could not see.
//!
//! The switch is per statement, never per row; the extension's own bookkeeping (log, runs,
//! queue, marks) is written outside it.

use crate::error::RetentionError;
use crate::managed::Managed;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiTupleTable};

/// The identity and settings in force before [`AsOwner::enter`], restored when the guard drops,
/// also while an error unwinds through it.
struct AsOwner {
    user: pg_sys::Oid,
    context: i32,
    nest_level: i32,
}

impl AsOwner {
    fn enter(owner: pg_sys::Oid) -> AsOwner {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        // SAFETY: plain calls into the backend's identity and GUC machinery, undone in `drop`.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                owner,
                context | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
            let nest_level = pg_sys::NewGUCNestLevel();
            let guard = AsOwner {
                user,
                context,
                nest_level,
            };
            set(c"search_path", c"pg_catalog, pg_temp");
            set(c"row_security", c"off");
            guard
        }
    }
}

/// Sets a setting for the current GUC nest level only.
unsafe fn set(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    pg_sys::set_config_option(
        name.as_ptr(),
        value.as_ptr(),
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        // SAFETY: restores exactly what `enter` saved.
        unsafe {
            pg_sys::AtEOXact_GUC(false, self.nest_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Runs `f`, statements against `table`, as the table's owner (see the module docs).
pub fn as_owner<R>(table: &Managed, f: impl FnOnce() -> R) -> R {
    let _owner = AsOwner::enter(table.owner);
    f()
}

/// Runs a statement that may change `table` (or its parent-bound children), as its owner.
pub fn update<'conn>(
    client: &mut SpiClient<'conn>,
    table: &Managed,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    check_no_deferrable_triggers(client, table)?;
    Ok(as_owner(table, || client.update(sql, None, args))?)
}

/// Refuses a table with a deferrable trigger of its owner's: it could fire at commit, after
/// the statement has switched back from the owner's identity (to the worker's superuser).
/// Checked once per loaded table; the foreign keys' internal triggers run as their table's
/// owner anyway.
fn check_no_deferrable_triggers(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    if table.triggers_checked.get() {
        return Ok(());
    }
    let offender = client
        .select(
            "SELECT tgname::text FROM pg_catalog.pg_trigger
              WHERE tgrelid = $1 AND tgdeferrable AND NOT tgisinternal LIMIT 1",
            Some(1),
            &[table.oid.into()],
        )?
        .next()
        .map(|r| r.get::<String>(1))
        .transpose()?
        .flatten();
    match offender {
        Some(trigger) => Err(RetentionError::MissingColumnRole(
            format!(
                "trigger {trigger} on {} is deferrable: it would fire after the purge has left the table owner's identity",
                table.display_name
            ),
            "Make the trigger NOT DEFERRABLE.".into(),
        )),
        None => {
            table.triggers_checked.set(true);
            Ok(())
        }
    }
}

/// Runs a read-only statement over `table`, as its owner (works on a standby).
pub fn select<'conn>(
    client: &SpiClient<'conn>,
    table: &Managed,
    sql: &str,
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>, RetentionError> {
    Ok(as_owner(table, || client.select(sql, None, args))?)
}
