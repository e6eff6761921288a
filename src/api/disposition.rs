//! The SQL surface of disposition (engine/disposition.rs).

use crate::engine::disposition::*;
use crate::engine::period::check_interval;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn approve_disposition(
    batch_id: Option<i64>,
    note: default!(Option<&str>, "NULL"),
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.approve_disposition()")?;
    let batch_id = required(batch_id, "batch_id")?;
    crate::pg::identity::as_extension(|| decide(batch_id, "approved", note, None))?;
    Ok(())
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reject_disposition(
    batch_id: Option<i64>,
    note: Option<&str>,
    keep_for: Option<Interval>,
) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.reject_disposition()")?;
    let batch_id = required(batch_id, "batch_id")?;
    let note = required(note, "note")?;
    if note.trim().is_empty() {
        return Err(RetentionError::InvalidValue(
            "a rejection needs a note: why the rows stay".into(),
        )
        .into());
    }
    let keep_for = required(keep_for, "keep_for")?;
    check_interval("keep_for", &keep_for)?;
    if keep_for.months() == 0 && keep_for.days() == 0 && keep_for.micros() == 0 {
        return Err(
            RetentionError::InvalidValue("keep_for must be longer than zero".into()).into(),
        );
    }
    crate::pg::identity::as_extension(|| decide(batch_id, "rejected", Some(note), Some(keep_for)))?;
    Ok(())
}
