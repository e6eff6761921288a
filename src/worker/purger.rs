//! The purger of one database: one cycle every `pg_retention.naptime` seconds, one transaction
//! per batch, a failing table recorded and skipped, prompt exit on SIGTERM.

use crate::cascade::take_cascaded;
use crate::error::RetentionError;
use crate::gucs;
use crate::holds::{
    forget_busy, in_recovery, lock_was_busy, purger_wanted, session_unlock, try_session_lock,
    yield_locks, LockKey,
};
use crate::managed::Managed;
use crate::purge;
use crate::runs::{self, TableOutcome};
use crate::schema_version;
use crate::subxact::message;
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

/// True once SIGTERM arrived (the pgrx flag clears when read; this one stays set). A worker
/// whose postmaster died exits at once, as every Postgres process does: its batch rolls back.
fn stopping() -> bool {
    // Orphaned: the postmaster died and this process was re-parented.
    if std::os::unix::process::parent_id() as i32 != unsafe { pg_sys::PostmasterPid } {
        unsafe { pg_sys::proc_exit(1) };
    }
    if BackgroundWorker::sigterm_received() {
        STOP.store(true, Ordering::SeqCst);
    }
    STOP.load(Ordering::SeqCst)
}

fn reload_if_asked() {
    if BackgroundWorker::sighup_received() {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

/// Runs `f` in its own transaction: committed when it returns Ok, aborted (and the error
/// returned) when it returns Err or raises.
fn in_transaction<R>(f: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, String> {
    forget_busy();
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
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
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
    }
    result
}

/// Whether this database's pg_retention schema is installed and current. A schema left at a
/// previous version (the package was upgraded, `ALTER EXTENSION pg_retention UPDATE` not run
/// yet) pauses purging; the first pause is logged with what to do.
fn schema_ready(waiting_logged: &mut bool) -> bool {
    match in_transaction(schema_version::installed) {
        Ok(Some(version)) if version == schema_version::LIBRARY => {
            *waiting_logged = false;
            true
        }
        Ok(Some(version)) => {
            if !*waiting_logged {
                log!(
                    "pg_retention: schema version {version} in this database, library {}: purging paused until ALTER EXTENSION pg_retention UPDATE",
                    schema_version::LIBRARY
                );
                *waiting_logged = true;
            }
            false
        }
        _ => false,
    }
}

/// Sleeps as long as `pg_retention.max_rows_per_second` asks after `rows` rows in `spent`,
/// in slices of at most 100 ms so that a waiting `retention.run()` is noticed; false when asked
/// to stop, or to give way to `run()`.
fn throttle(rows: i64, spent: Duration, progress: &crate::progress::Entry) -> bool {
    let limit = gucs::MAX_ROWS_PER_SECOND.get();
    if limit > 0 && rows > 0 {
        let budget = Duration::from_secs_f64(rows as f64 / limit as f64);
        let mut left = budget.saturating_sub(spent);
        progress.throttled(!left.is_zero());
        while !left.is_zero() && !purger_wanted() {
            let slice = left.min(Duration::from_millis(100));
            if !BackgroundWorker::wait_latch(Some(slice)) {
                STOP.store(true, Ordering::SeqCst);
                break;
            }
            left = left.saturating_sub(slice);
        }
        progress.throttled(false);
    }
    !stopping() && !purger_wanted()
}

/// Purges one table batch by batch; returns what was done (with the error, if one stopped it,
/// or `yielded` when it gave way to a transaction holding one of the extension's locks).
/// Rows cascades deleted from child tables in committed batches go to `cascaded`.
fn purge_table(
    table: &Managed,
    run_id: i64,
    cascaded: &mut Vec<(String, i64)>,
    progress: &mut crate::progress::Entry,
) -> TableOutcome {
    let mut outcome = TableOutcome::new(&table.display_name);
    let steps = match in_transaction(|| {
        Spi::connect(|client| runs::table_steps(client, table, crate::catalog::zero()))
    }) {
        Ok(steps) => steps,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    if let Err(e) = retire_partitions(table, &steps, run_id, &mut outcome) {
        outcome.error = Some(e);
        return outcome;
    }
    if outcome.yielded {
        return outcome;
    }
    progress.table(&table.display_name, steps.len());
    let batch_size = gucs::BATCH_SIZE.get() as i64;
    for (number, step) in steps.iter().enumerate() {
        let estimate = in_transaction(|| Spi::connect_mut(|c| purge::estimate(c, table, step)));
        progress.step(number + 1, estimate.unwrap_or(0));
        let act = step.act(table);
        loop {
            let started = Instant::now();
            let result = in_transaction(|| {
                Spi::connect_mut(|client| {
                    purge::batch(client, table, step, Some(run_id), batch_size)
                })
            });
            let children = take_cascaded();
            match result {
                Ok(rows) => {
                    cascaded.extend(children);
                    outcome.add(act, rows);
                    progress.rows(rows);
                    if purger_wanted() {
                        outcome.yielded = true;
                        return outcome;
                    }
                    if !throttle(rows, started.elapsed(), progress) || rows < batch_size {
                        break;
                    }
                }
                Err(_) if lock_was_busy() => {
                    outcome.yielded = true;
                    return outcome;
                }
                Err(e) => {
                    outcome.error = Some(e);
                    return outcome;
                }
            }
        }
        if stopping() {
            break;
        }
    }
    outcome
}

/// Retires the table's wholly due partitions, each in a transaction of its own (see
/// partitions.rs). A partition whose retirement fails (its parent's lock not granted in time)
/// is left to the row-by-row purge; giving way to a lock holder stops the table.
fn retire_partitions(
    table: &Managed,
    steps: &[crate::purge::Step],
    run_id: i64,
    outcome: &mut TableOutcome,
) -> Result<(), String> {
    let leaves =
        in_transaction(|| Spi::connect(|c| crate::partitions::candidates(c, table, steps)))?;
    for leaf in leaves {
        let retired = in_transaction(|| {
            Spi::connect_mut(|c| crate::partitions::retire(c, table, steps, &leaf, Some(run_id)))
        });
        match retired {
            Ok(retired) => outcome.add_retired(retired.into_iter().collect()),
            Err(_) if lock_was_busy() => {
                outcome.yielded = true;
                return Ok(());
            }
            Err(e) => log!(
                "pg_retention: partition {leaf} of {} not retired: {e}",
                table.display_name
            ),
        }
        if stopping() {
            break;
        }
    }
    Ok(())
}

/// One purge cycle over every managed table of this database.
fn cycle(first: bool) {
    let locked = in_transaction(|| try_session_lock(LockKey::Purger));
    if locked != Ok(true) {
        return;
    }
    if first {
        // Runs a previous worker left "running" were cut short (crash, kill, shutdown).
        let _ = in_transaction(|| {
            Spi::run(
                "UPDATE retention.runs r SET status = 'failed', finished_at = clock_timestamp(),
                        error = 'the worker stopped before the run finished',
                        rows_acted = (SELECT count(*) FROM retention.deletion_log l
                                       WHERE l.run_id = r.id)
                  WHERE status = 'running' AND trigger = 'worker'",
            )?;
            Ok(())
        });
    }
    let started = in_transaction(|| {
        Spi::connect_mut(|client| Ok((runs::start(client, "worker")?, Managed::load_all(client)?)))
    });
    if let Ok((run_id, tables)) = started {
        let mut progress = crate::progress::Entry::start(true);
        let mut outcomes = Vec::with_capacity(tables.len());
        let mut cascaded = Vec::new();
        for table in &tables {
            reload_if_asked();
            if stopping() || !gucs::ENABLED.get() {
                break;
            }
            outcomes.push(purge_table(table, run_id, &mut cascaded, &mut progress));
            if purger_wanted() {
                break;
            }
        }
        // A retention.run() waiting for this cycle takes over: it runs a whole cycle itself.
        let taken_over = purger_wanted();
        if taken_over {
            log!("pg_retention: gave way to retention.run() in this database; the next cycle continues");
        }
        let steps: [runs::CycleStep; 4] = [
            ("retention.disposition_queue", &|| {
                crate::disposition::refresh(run_id)
            }),
            ("retention.deletion_queue", &|| runs::process_queue(run_id)),
            ("retention.erasure_requests", &|| {
                runs::process_erasures(run_id)
            }),
            ("retention.deletion_log", &runs::trim_log),
        ];
        for (name, step) in steps {
            if stopping() || taken_over {
                break;
            }
            let result = in_transaction(step);
            let children = take_cascaded();
            match result {
                Ok(outcome) => {
                    cascaded.extend(children);
                    if outcome.total() > 0 {
                        outcomes.push(outcome);
                    }
                }
                Err(_) if lock_was_busy() => outcomes.push(TableOutcome {
                    yielded: true,
                    ..TableOutcome::new(name)
                }),
                Err(e) => outcomes.push(TableOutcome {
                    error: Some(e),
                    ..TableOutcome::new(name)
                }),
            }
        }
        runs::add_cascaded(&mut outcomes, cascaded);
        let yielded: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.yielded)
            .map(|o| o.table_name.as_str())
            .collect();
        if !yielded.is_empty() {
            log!(
                "pg_retention: gave way to another transaction holding the hold or deletion-log lock ({}); the next cycle continues",
                yielded.join(", ")
            );
        }
        let stopped =
            stopping().then(|| "stopped by shutdown before the cycle finished".to_string());
        if let Err(e) =
            in_transaction(|| Spi::connect_mut(|c| runs::finish(c, run_id, &outcomes, stopped)))
        {
            log!("pg_retention: could not record run {run_id}: {e}");
        }
    }
    let _ = in_transaction(|| session_unlock(LockKey::Purger));
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_retention_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    pin_search_path();
    yield_locks();
    let mut first = true;
    let mut waiting_logged = false;
    while !stopping() {
        reload_if_asked();
        if gucs::ENABLED.get() && !in_recovery() && schema_ready(&mut waiting_logged) {
            cycle(first);
            first = false;
        }
        if stopping() {
            break;
        }
        let nap = Duration::from_secs(gucs::NAPTIME.get().max(1) as u64);
        if !BackgroundWorker::wait_latch(Some(nap)) {
            break;
        }
    }
}

/// Pins the worker's session search_path to `pg_catalog, pg_temp`, whatever `ALTER DATABASE
/// … SET search_path` or `ALTER ROLE … SET` gave it: an object a database owner plants in
/// `public` (a `format()`, an operator) must never be found by the worker's statements.
fn pin_search_path() {
    // SAFETY: sets a session setting, as `SET search_path` would.
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            0,
            false,
        );
    }
}
