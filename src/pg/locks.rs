//! The extension's own locks (object locks in the user lock method, which no role can take
//! through SQL), and how the background worker tries them instead of waiting.

use crate::error::RetentionError;
use pgrx::pg_sys;
use std::cell::Cell;

thread_local! {
    static YIELDING: Cell<bool> = const { Cell::new(false) };
    /// Set when a tried lock was taken by another transaction; cleared by `lock_was_busy`.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// How often, and how far apart, the worker tries a busy lock before it gives way.
const YIELD_TRIES: u32 = 10;
const YIELD_PAUSE_US: i64 = 20_000;

/// From now on, this process tries the extension's transaction-level locks and fails
/// with `LockBusy` instead of waiting (the background worker).
pub fn yield_locks() {
    YIELDING.with(|y| y.set(true));
}

/// Whether a lock was found busy since the last call (or `forget_busy`).
pub fn lock_was_busy() -> bool {
    BUSY.with(|b| b.replace(false))
}

/// Forgets an earlier busy lock, before a new transaction starts.
pub fn forget_busy() {
    BUSY.with(|b| b.set(false));
}

/// Object id of every lock the extension takes ("RETN"); see [`tag`].
const LOCK_OBJECT: u32 = 0x5245_544e;

/// The locks of the extension.
#[derive(Clone, Copy)]
pub enum LockKey {
    /// Shared by purge batches, exclusive for `place_hold`.
    Holds = 1,
    /// Exclusive while appending to the deletion log's hash chain.
    LogChain = 2,
    /// Held by the one purger (worker cycle or `retention.run`) of a database.
    Purger = 3,
}

impl LockKey {
    fn describe(self) -> &'static str {
        match self {
            LockKey::Holds => "hold",
            LockKey::LogChain => "deletion-log",
            LockKey::Purger => "purger",
        }
    }
}

/// The lock tag of `key` in this database: an object lock on (pg_extension, "RETN", key).
/// Advisory locks can be taken by any role, with no grant at all, and a role squatting on the
/// extension's keys stopped the worker. No SQL command takes object locks of this class but
/// `ALTER`/`DROP EXTENSION` (owner only, on the extension's own oid and sub-id 0): only the
/// extension's code takes these. `pg_locks` shows them as locktype `object`, classid 3079.
fn tag(key: LockKey) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: the backend's database id, set once at connection.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: pg_sys::ExtensionRelationId.to_u32(),
        locktag_field3: LOCK_OBJECT,
        locktag_field4: key as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        // The user lock method, as advisory locks: a session lock (the worker's purger lock)
        // survives the abort of a transaction, where the default method would drop it.
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Acquires `key` (waiting unless `dont_wait`); true when held.
fn acquire(key: LockKey, exclusive: bool, session: bool, dont_wait: bool) -> bool {
    let mode = if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    };
    // SAFETY: LockAcquire on a well-formed tag; released at transaction end, or by
    // `session_unlock` for a session lock.
    let result = unsafe { pg_sys::LockAcquire(&tag(key), mode as i32, session, dont_wait) };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Takes a transaction-level lock, waiting for it (in the worker: trying it, see
/// `yield_locks`).
pub fn take_lock(key: LockKey, exclusive: bool) -> Result<(), RetentionError> {
    if YIELDING.with(|y| y.get()) {
        // A few short tries: a hold being placed or a log append commits within milliseconds.
        for attempt in 0..YIELD_TRIES {
            if acquire(key, exclusive, false, true) {
                return Ok(());
            }
            if attempt + 1 < YIELD_TRIES {
                unsafe { pg_sys::pg_usleep(YIELD_PAUSE_US) };
                pg_sys::check_for_interrupts!();
            }
        }
        BUSY.with(|b| b.set(true));
        return Err(RetentionError::LockBusy(key.describe()));
    }
    acquire(key, exclusive, false, false);
    Ok(())
}

/// Tries to take a transaction-level lock (exclusive); true when taken.
pub fn try_xact_lock(key: LockKey) -> Result<bool, RetentionError> {
    Ok(acquire(key, true, false, true))
}

/// Tries to take a session-level lock (exclusive); true when taken.
pub fn try_session_lock(key: LockKey) -> Result<bool, RetentionError> {
    Ok(acquire(key, true, true, true))
}

/// Whether a session waits for the purger lock this process holds as a session lock: a
/// `retention.run()` asking to purge while the worker cycles. The worker gives way to it.
pub fn purger_wanted() -> bool {
    // SAFETY: asked only by the worker, during a cycle, while it holds this session lock.
    unsafe { pg_sys::LockHasWaiters(&tag(LockKey::Purger), pg_sys::ExclusiveLock as i32, true) }
}

/// Releases a session-level lock.
pub fn session_unlock(key: LockKey) -> Result<(), RetentionError> {
    // SAFETY: releases the session lock `try_session_lock` took on the same tag.
    unsafe { pg_sys::LockRelease(&tag(key), pg_sys::ExclusiveLock as i32, true) };
    Ok(())
}

/// Whether this backend is a hot standby (purges refuse to run there).
pub fn in_recovery() -> bool {
    unsafe { pg_sys::RecoveryInProgress() }
}
