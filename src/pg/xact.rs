//! Isolating a unit of work: in an internal subtransaction, so that one failing table rolls
//! back only its own changes (the PL/pgSQL EXCEPTION-block pattern), or, in a background
//! worker, in a transaction of its own.

use crate::error::RetentionError;
use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;

/// Where a piece of work was last done: (local transaction id, subtransaction id or 0).
pub type Mark = Cell<Option<(u32, u32)>>;

/// True the first time it is asked with `mark` in the current transaction (with `per_subxact`,
/// in the current subtransaction), false after that until the next one: for work done once
/// per transaction, such as taking a lock held until its end or setting a transaction-local
/// setting.
pub fn first_in_transaction(mark: &Mark, per_subxact: bool) -> bool {
    // SAFETY: MyProc is this backend's PGPROC; the subtransaction id is this backend's.
    let now = unsafe {
        let sub = if per_subxact {
            pg_sys::GetCurrentSubTransactionId()
        } else {
            0
        };
        ((*pg_sys::MyProc).lxid, sub)
    };
    mark.replace(Some(now)) != Some(now)
}

/// Runs `f` in a subtransaction: committed when it returns `Ok`, rolled back when it returns
/// `Err` (and the error returned inside `Ok`), rolled back when it raises (and the error's
/// message returned as `Err`). Either way a failure leaves nothing of its work behind.
pub fn isolate<R, E>(f: impl FnOnce() -> Result<R, E>) -> Result<Result<R, E>, String> {
    // SAFETY: the sequence below is the one PL/pgSQL uses for exception blocks; memory context
    // and resource owner are restored on both paths.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        PgTryBuilder::new(AssertUnwindSafe(move || {
            let result = f();
            if result.is_ok() {
                pg_sys::ReleaseCurrentSubTransaction();
            } else {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            Ok(result)
        }))
        .catch_others(move |error| {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            Err(message(&error))
        })
        .execute()
    }
}

/// [`isolate`] with both failures as one error message: a unit of work that either happens
/// whole or leaves nothing behind.
pub fn attempt<R, E: std::fmt::Display>(f: impl FnOnce() -> Result<R, E>) -> Result<R, String> {
    match isolate(f) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(e.to_string()),
        Err(message) => Err(message),
    }
}

/// Runs `f` in its own transaction: committed when it returns Ok, aborted (and the error
/// returned) when it returns Err or raises.
///
/// The transaction is a transaction block, as a client's `BEGIN … COMMIT` is: an extension
/// that distributes statements over other servers (Citus) then treats it as one coordinated
/// transaction, rather than committing each statement on its server as it runs (which would
/// leave rows deleted on a worker node with their log entries rolled back on the coordinator).
pub fn own_transaction<R>(f: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, String> {
    crate::pg::locks::forget_busy();
    // SAFETY: the sequence postgres.c runs for `BEGIN` and the statements that follow it.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::BeginTransactionBlock();
        pg_sys::CommitTransactionCommand();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = PgTryBuilder::new(AssertUnwindSafe(move || f().map_err(|e| e.to_string())))
        .catch_others(|e| Err(message(&e)))
        .execute();
    unsafe {
        match &result {
            Ok(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::EndTransactionBlock(false);
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortOutOfAnyTransaction(),
        }
    }
    result
}

/// The message of a caught error.
pub fn message(error: &pg_sys::panic::CaughtError) -> String {
    match error {
        pg_sys::panic::CaughtError::PostgresError(e)
        | pg_sys::panic::CaughtError::ErrorReport(e)
        | pg_sys::panic::CaughtError::RustPanic { ereport: e, .. } => e.message().to_string(),
    }
}
