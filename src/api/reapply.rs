//! The SQL surface of reapply (engine/reapply.rs).

use crate::engine::cascade::check_can_purge;
use crate::engine::managed::Managed;
use crate::engine::reapply::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::locks::{take_lock, LockKey};
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reapply_deletions(since: Option<TimestampWithTimeZone>) -> SqlResult<i64> {
    let since = required(since, "since")?;
    check_can_purge()?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let future = client
                .select("SELECT $1 > pg_catalog.now()", Some(1), &[since.into()])?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            if future {
                return Err(RetentionError::InvalidValue(
                    "since must not be in the future".into(),
                ));
            }
            // One purger at a time, as run(): its anonymizations must not race the worker's.
            take_lock(LockKey::Purger, true)?;
            let mut total = 0;
            for table in Managed::load_all(client)? {
                total += reapply_table(client, &table, since)?;
            }
            Ok(total)
        })
    })?)
}
