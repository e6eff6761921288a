//! Whose rights a statement runs with. Two switches share one guard:
//!
//! - [`as_owner`]: statements against an application table run as the table's owner inside a
//!   security-restricted operation, with `search_path = pg_catalog, pg_temp` and `row_security
//!   = off`: what VACUUM, ANALYZE and REFRESH MATERIALIZED VIEW do
//!   (`SetUserIdAndSecContext(owner, … | SECURITY_RESTRICTED_OPERATION)` and a GUC nest level).
//!   Code the owner controls (triggers, index expressions, CHECKs, generated columns, domains,
//!   casts, operators) runs with the owner's rights, never with the worker's or a duty's.
//!   `row_security = off` makes a statement that row-level security would filter fail (`42501`)
//!   instead of skipping rows.
//! - [`as_extension`]: the SQL functions write the extension's own tables under the
//!   extension owner's identity (functions are the only door: no duty has write privileges on
//!   them). The caller, whose duty PostgreSQL checked through `EXECUTE`, is kept for the stamps
//!   ([`caller_name`]) and the rights checks ([`caller_oid`]).
//!
//! The guard restores the previous identity and settings when it drops, also while an error
//! unwinds through it.

use crate::error::RetentionError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// The role that called the SQL function now running under the extension's identity.
    static CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The identity and settings in force before [`Identity::enter`].
struct Identity {
    user: pg_sys::Oid,
    context: i32,
    nest_level: i32,
}

impl Identity {
    fn enter(user: pg_sys::Oid, context_bits: u32) -> Identity {
        let (mut saved_user, mut context) = (pg_sys::InvalidOid, 0);
        // SAFETY: plain calls into the backend's identity and GUC machinery, undone in `drop`.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut context);
            pg_sys::SetUserIdAndSecContext(user, context | context_bits as i32);
            let guard = Identity {
                user: saved_user,
                context,
                nest_level: pg_sys::NewGUCNestLevel(),
            };
            set(c"search_path", c"pg_catalog, pg_temp");
            if context_bits & pg_sys::SECURITY_RESTRICTED_OPERATION != 0 {
                set(c"row_security", c"off");
            }
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

impl Drop for Identity {
    fn drop(&mut self) {
        // SAFETY: restores exactly what `enter` saved.
        unsafe {
            pg_sys::AtEOXact_GUC(false, self.nest_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Runs `f` as `owner`, the owner of the application table `f` works on (see the module docs).
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let _identity = Identity::enter(owner, pg_sys::SECURITY_RESTRICTED_OPERATION);
    f()
}

/// Runs `f`, the body of a SQL function, as the extension's owner; [`caller_oid`] names the
/// calling role meanwhile (the outermost caller, when one retention function reaches
/// another).
pub fn as_extension<R>(f: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, RetentionError> {
    // Read-only: reading functions (preview, metrics) also run on a standby.
    let owner = Spi::connect(|client| {
        client
            .select(
                "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_retention'",
                Some(1),
                &[],
            )?
            .first()
            .get_one::<pg_sys::Oid>()
    })?
    .unwrap_or(pg_sys::InvalidOid);
    let _caller = CallerGuard::enter(caller_oid());
    let _identity = Identity::enter(owner, pg_sys::SECURITY_LOCAL_USERID_CHANGE);
    f()
}

/// Sets [`CALLER`] and restores its previous value when dropped.
struct CallerGuard(Option<pg_sys::Oid>);

impl CallerGuard {
    fn enter(caller: pg_sys::Oid) -> CallerGuard {
        CallerGuard(CALLER.with(|c| c.replace(Some(caller))))
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        CALLER.with(|c| c.set(self.0));
    }
}

/// The role whose rights a function checks: the caller of the SQL function running under the
/// extension's identity, else the current user.
pub fn caller_oid() -> pg_sys::Oid {
    // SAFETY: reads the current user id.
    CALLER
        .with(|c| c.get())
        .unwrap_or_else(|| unsafe { pg_sys::GetUserId() })
}

/// The name of [`caller_oid`]: what the functions stamp in `placed_by`, `verified_by`, the
/// log's `actor`, … (bound as a parameter, never read back from the session).
pub fn caller_name() -> String {
    // SAFETY: a valid role oid; GetUserNameFromId returns a palloc'd C string.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(caller_oid(), false))
            .to_string_lossy()
            .into_owned()
    }
}
