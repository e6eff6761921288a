//! Where retention state may change: on a primary, under the current schema, in a READ
//! COMMITTED transaction. Every function that changes it checks first.

use crate::error::RetentionError;
use crate::pg::locks::in_recovery;
use pgrx::pg_sys;

/// Refuses a change of retention state on a standby (25006), where it could only fail later
/// with an internal error.
pub fn require_primary(function: &str) -> Result<(), RetentionError> {
    if in_recovery() {
        return Err(RetentionError::InRecovery(format!(
            "{function} cannot run on a standby: run it on the primary"
        )));
    }
    Ok(())
}

/// Refuses purging where it cannot be done safely: on a standby (25006), under a schema
/// older than the library (55000), in a REPEATABLE READ or SERIALIZABLE transaction (25001).
pub fn check_can_purge() -> Result<(), RetentionError> {
    if in_recovery() {
        return Err(RetentionError::InRecovery(
            "rows cannot be purged on a standby: run it on the primary".into(),
        ));
    }
    crate::pg::schema_version::require_current()?;
    // The hold check relies on a fresh snapshot per statement (see holds.rs).
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(RetentionError::WrongIsolation(
            "purging needs a READ COMMITTED transaction (the hold check reads holds with a fresh snapshot per statement)".into(),
        ));
    }
    Ok(())
}
