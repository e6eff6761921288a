//! The SQL surface of holds (engine/holds.rs).

use crate::engine::holding::*;
use crate::error::{required, RetentionError, SqlResult};
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::regclass::RegClass;

use pgrx::prelude::*;

/// Whether this backend is inside release_hold() or review_hold(): the holds guard trigger
/// allows stamping a hold only then. Nothing in SQL can set it.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn hold_stamping() -> bool {
    is_stamping()
}

/// `retention.hold_lock()`: the hold lock, exclusive, for the trigger that guards holds
/// inserted directly (they wait for running purge batches, as `place_hold` does).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn hold_lock() -> SqlResult<()> {
    take_lock(LockKey::Holds, true)?;
    Ok(Spi::connect(crate::engine::guard::invalidate)?)
}

/// `retention.place_hold` as defined up to 0.3.0 (no `freeze`): the SQL definition a database
/// keeps until `ALTER EXTENSION pg_retention UPDATE` calls this symbol. No SQL is generated.
#[pg_extern(sql = false, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn place_hold(
    reason: Option<&str>,
    tenant: Option<&str>,
    subject: Option<&str>,
    tbl: Option<RegClass>,
    category: Option<&str>,
    notify: Option<bool>,
) -> SqlResult<i64> {
    place_hold_with_freeze(reason, tenant, subject, tbl, category, notify, Some(false))
}

#[pg_extern(name = "place_hold", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn place_hold_with_freeze(
    reason: Option<&str>,
    tenant: default!(Option<&str>, "NULL"),
    subject: default!(Option<&str>, "NULL"),
    tbl: default!(Option<RegClass>, "NULL"),
    category: default!(Option<&str>, "NULL"),
    notify: default!(Option<bool>, "true"),
    freeze: default!(Option<bool>, "false"),
) -> SqlResult<i64> {
    crate::pg::preconditions::require_primary("retention.place_hold()")?;
    let reason = required(reason, "reason")?;
    if reason.trim().is_empty() {
        return Err(RetentionError::InvalidValue("a hold needs a reason".into()).into());
    }
    if tenant.is_none() && subject.is_none() && tbl.is_none() && category.is_none() {
        return Err(RetentionError::InvalidValue(
            "a hold needs at least one scope (tenant, subject, tbl or category); to hold a whole table, pass tbl".into(),
        )
        .into());
    }
    let notify_customer = required(notify, "notify")?;
    let freeze = required(freeze, "freeze")?;
    if freeze && !crate::pg::schema_version::at_least(crate::pg::schema_version::HOLD_FREEZE)? {
        crate::pg::schema_version::require_current()?;
    }
    if tenant == Some("") || subject == Some("") {
        return Err(RetentionError::InvalidValue(
            "a hold's tenant and subject scopes must not be empty".into(),
        )
        .into());
    }
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let placing = Placing {
                reason,
                tenant,
                subject,
                tbl: tbl.map(|t| t.table(client)).transpose()?,
                category,
                notify: notify_customer,
                freeze,
            };
            place(client, &placing)
        })
    })?)
}

/// Releases a hold and records how many rows it frees (`holds.rows_freed`): rows it covered
/// that no other hold keeps. They stay out of the extension's purges and deletions for
/// `pg_retention.hold_release_grace` more (stamped as `grace_until`), so that a release never
/// unleashes an immediate purge of everything the hold kept.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_hold(hold_id: Option<i64>, note: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.release_hold()")?;
    let hold_id = required(hold_id, "hold_id")?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let notify_customer = lock_active(client, hold_id)?;
            let grace = release_grace(client)?;
            let freed = freed_by(client, hold_id)?;
            let caller = crate::pg::identity::caller_name();
            let with_grace =
                crate::pg::schema_version::at_least(crate::pg::schema_version::HOLD_FREEZE)?;
            stamp(|| {
                if with_grace {
                    client.update(
                        "UPDATE retention.holds SET released_at = now(), released_by = $3,
                            release_note = $2, rows_freed = $4,
                            grace_until = now() + $5
                          WHERE id = $1",
                        None,
                        &[
                            hold_id.into(),
                            note.into(),
                            caller.into(),
                            freed.into(),
                            grace.into(),
                        ],
                    )
                } else {
                    client.update(
                        "UPDATE retention.holds SET released_at = now(), released_by = $3,
                            release_note = $2 WHERE id = $1",
                        None,
                        &[hold_id.into(), note.into(), caller.into()],
                    )
                }
            })?;
            crate::engine::guard::invalidate(client)?;
            crate::engine::guard::sync(client)?;
            if notify_customer {
                send_notification(client, hold_id, "released")?;
            }
            Ok(())
        })
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn review_hold(hold_id: Option<i64>, note: Option<&str>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.review_hold()")?;
    let hold_id = required(hold_id, "hold_id")?;
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            lock_active(client, hold_id)?;
            stamp(|| {
                client.update(
                    "UPDATE retention.holds SET reviewed_at = now(), reviewed_by = $3,
                        review_note = $2 WHERE id = $1",
                    None,
                    &[
                        hold_id.into(),
                        note.into(),
                        crate::pg::identity::caller_name().into(),
                    ],
                )
            })?;
            Ok(())
        })
    })?;
    Ok(())
}
