//! The SQL surface of category lock (engine/category_lock.rs).

use crate::engine::category_lock::*;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::prelude::*;

/// `retention.lock_category(name)`: locks a category (the built-in `deletion_log` included).
/// Locking a locked category changes nothing; there is no unlock.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn lock_category(name: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.lock_category()")?;
    let name = required(name, "name")?;
    if name.trim().is_empty() {
        return Err(RetentionError::InvalidValue("name must not be empty".into()).into());
    }
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            crate::engine::catalog::load(client, name)?;
            client.update(
                "INSERT INTO retention.category_locks (category, locked_by) VALUES ($1, $2)
                 ON CONFLICT (category) DO NOTHING",
                None,
                &[name.into(), crate::pg::identity::caller_name().into()],
            )?;
            sync(client)
        })
    })?;
    Ok(())
}
