//! Placing, releasing and reviewing legal holds (`retention.place_hold`, `release_hold`,
//! `review_hold`): each stamped with who did it, notified, and the guard kept in step with the
//! holds in force (guard.rs). What a hold covers is holds.rs.

use crate::engine::holds::{active_for, any_covers_sql, covers_sql, Hold};
use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::params::Params;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::Cell;

thread_local! {
    /// Set only while release_hold() or review_hold() stamps a hold (see `stamp`).
    static STAMPING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is inside release_hold() or review_hold() (see `stamp`).
pub fn is_stamping() -> bool {
    STAMPING.with(|s| s.get())
}

/// Runs `f` with hold stamping allowed; the flag is cleared even when `f` raises (pgrx
/// unwinds Rust frames on Postgres errors).
pub fn stamp<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STAMPING.with(|s| s.set(false));
        }
    }
    STAMPING.with(|s| s.set(true));
    let _reset = Reset;
    f()
}

/// A hold being placed: its reason, scopes and options, checked by the caller.
pub struct Placing<'a> {
    pub reason: &'a str,
    pub tenant: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub tbl: Option<pg_sys::Oid>,
    pub category: Option<&'a str>,
    pub notify: bool,
    pub freeze: bool,
}

/// Places a hold, stamped with the caller, once running purge batches have committed (later
/// batches see it); installs the guard where it now applies. Returns its id.
pub fn place(client: &mut SpiClient, hold: &Placing) -> Result<i64, RetentionError> {
    if let Some(category) = hold.category {
        crate::engine::catalog::load(client, category)?;
    }
    if hold.freeze {
        lock_frozen_tables(client, hold.tenant, hold.subject, hold.tbl, hold.category)?;
    }
    // Wait for running purge batches; later batches see this hold.
    take_lock(LockKey::Holds, true)?;
    crate::engine::guard::invalidate(client)?;
    let args: [pgrx::datum::DatumWithOid; 7] = [
        hold.reason.into(),
        hold.tenant.into(),
        hold.subject.into(),
        hold.tbl.into(),
        hold.category.into(),
        hold.notify.into(),
        crate::pg::identity::caller_name().into(),
    ];
    // The frozen column is named only when set: the library also places holds under an
    // older schema, before ALTER EXTENSION … UPDATE.
    let (column, value) = if hold.freeze {
        (", frozen", ", true")
    } else {
        ("", "")
    };
    let id = client
        .update(
            &format!(
                "INSERT INTO retention.holds
                     (reason, tenant, subject, tbl, category, notify, placed_by{column})
                 VALUES ($1, $2, $3, $4::oid::regclass, $5, $6, $7{value}) RETURNING id"
            ),
            None,
            &args,
        )?
        .first()
        .get_one::<i64>()?
        .unwrap_or_default();
    crate::engine::guard::sync(client)?;
    if hold.notify {
        send_notification(client, id, "placed")?;
    }
    Ok(id)
}

/// Writes the notification row and sends `pg_notify('retention_hold', payload)`.
pub fn send_notification(
    client: &mut SpiClient,
    hold_id: i64,
    action: &str,
) -> Result<(), RetentionError> {
    client.update(
        "WITH payload AS (
             SELECT jsonb_build_object('action', $2::text, 'hold_id', h.id, 'reason', h.reason,
                        'tenant', h.tenant, 'subject', h.subject, 'table', h.tbl::text,
                        'category', h.category, 'at', now()) AS p
               FROM retention.holds h WHERE h.id = $1),
         saved AS (
             INSERT INTO retention.notifications (channel, hold_id, payload)
             SELECT 'retention_hold', $1, p FROM payload RETURNING payload)
         SELECT pg_catalog.pg_notify('retention_hold', payload::text) FROM saved",
        None,
        &[hold_id.into(), action.into()],
    )?;
    Ok(())
}

/// Before a frozen hold takes the hold lock: locks the managed tables it can cover against
/// writes (`SHARE ROW EXCLUSIVE`, the lock adding its trigger takes), in a fixed order. The
/// guard of an already guarded table takes the hold lock inside the application's write; adding
/// the freeze trigger after taking the hold lock would wait for that write while it waits for
/// the hold lock: a deadlock. Taking the table first, as the application does, avoids it.
pub fn lock_frozen_tables(
    client: &mut SpiClient,
    tenant: Option<&str>,
    subject: Option<&str>,
    tbl: Option<pg_sys::Oid>,
    category: Option<&str>,
) -> Result<(), RetentionError> {
    let tables: Vec<String> = client
        .select(
            "SELECT m.tbl::text FROM retention.managed_tables m
              WHERE ($1::oid IS NULL OR m.tbl = $1::oid::regclass)
                AND ($2::text IS NULL OR m.tenant_column IS NOT NULL)
                AND ($3::text IS NULL OR m.subject_column IS NOT NULL)
                AND ($4::text IS NULL OR m.category = $4 OR m.category_column IS NOT NULL)
              ORDER BY m.tbl::oid",
            None,
            &[tbl.into(), tenant.into(), subject.into(), category.into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    for table in tables {
        client.update(
            &format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
            None,
            &[],
        )?;
    }
    Ok(())
}

/// Locks a hold's row and checks it is active.
pub fn lock_active(client: &mut SpiClient, hold_id: i64) -> Result<bool, RetentionError> {
    let rows = client.update(
        "SELECT released_at IS NOT NULL, notify FROM retention.holds WHERE id = $1 FOR UPDATE",
        None,
        &[hold_id.into()],
    )?;
    let row = rows
        .into_iter()
        .next()
        .ok_or(RetentionError::UnknownHold(hold_id))?;
    if row.get::<bool>(1)?.unwrap_or(false) {
        return Err(RetentionError::HoldReleased(hold_id));
    }
    Ok(row.get::<bool>(2)?.unwrap_or(false))
}

/// `pg_retention.hold_release_grace` as an interval; 22023 unless it is one, and not negative.
pub fn release_grace(client: &SpiClient) -> Result<Interval, RetentionError> {
    let text = crate::pg::gucs::hold_release_grace();
    let bad = || {
        RetentionError::InvalidValue(format!(
            "pg_retention.hold_release_grace must be an interval of 0 or more, not \"{text}\""
        ))
    };
    let parsed =
        crate::pg::xact::isolate(|| -> Result<Option<(Interval, bool)>, RetentionError> {
            let row = client
                .select(
                    "SELECT $1::interval, $1::interval < interval '0'",
                    Some(1),
                    &[text.as_str().into()],
                )?
                .first();
            Ok(row.get::<Interval>(1)?.zip(row.get::<bool>(2)?))
        });
    match parsed {
        Ok(Ok(Some((grace, false)))) => Ok(grace),
        _ => Err(bad()),
    }
}

/// Rows hold `hold_id` covers that no other hold keeps: what its release frees. Counted in
/// each managed table it can cover, as the table's owner; a table that cannot be read (its
/// manager lost the rights) is left out of the count, not allowed to stop the release.
pub fn freed_by(client: &mut SpiClient, hold_id: i64) -> Result<i64, RetentionError> {
    let row = client
        .select(
            "SELECT id, tenant, subject, category, reason, false, NULL::timestamptz, tbl::oid
               FROM retention.holds WHERE id = $1",
            Some(1),
            &[hold_id.into()],
        )?
        .first();
    let scope = row.get::<pg_sys::Oid>(8)?;
    let hold = Hold {
        id: hold_id,
        reason: row.get::<String>(5)?.unwrap_or_default(),
        tenant: row.get::<String>(2)?,
        subject: row.get::<String>(3)?,
        category: row.get::<String>(4)?,
        frozen: false,
        grace_until: None,
    };
    let mut freed = 0;
    for table in Managed::load_all(client)? {
        if scope.is_some_and(|oid| oid != table.oid) {
            continue;
        }
        let others: Vec<Hold> = active_for(client, &table)?
            .into_iter()
            .filter(|h| h.id != hold_id)
            .collect();
        let mut params = Params::default();
        let category = table.category_sql(&mut params);
        let Some(covers) = covers_sql(&hold, &table, None, &category, &mut params) else {
            continue;
        };
        let kept_otherwise = any_covers_sql(&others, &table, None, &category, &mut params)
            .map(|other| format!("NOT {other}"));
        let sql = RowSet::of(&table)
            .filter(covers)
            .filters(kept_otherwise)
            .count();
        let counted = crate::pg::xact::isolate(|| -> Result<i64, RetentionError> {
            Ok(
                crate::pg::executor::select(client, &table, &sql, params.args())?
                    .first()
                    .get_one::<i64>()?
                    .unwrap_or(0),
            )
        });
        if let Ok(Ok(rows)) = counted {
            freed += rows;
        }
    }
    Ok(freed)
}
