//! The purger of one database: one cycle every `pg_retention.naptime` seconds (the engine's
//! cycle driver, each unit of work its own transaction), a failing table recorded and skipped,
//! prompt exit on SIGTERM.

use super::throttle::{self, Pacer, Settings};
use crate::engine::cycle::{drive, Isolation};
use crate::engine::managed::Managed;
use crate::engine::runs::{self, TableOutcome};
use crate::engine::vocabulary::Trigger;
use crate::error::RetentionError;
use crate::pg::gucs;
use crate::pg::locks::{
    in_recovery, purger_wanted, session_unlock, try_session_lock, yield_locks, LockKey,
};
use crate::pg::progress::Entry;
use crate::pg::schema_version;
use crate::pg::xact::own_transaction;
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Whether this database's pg_retention schema is installed and current. A schema left at a
/// previous version (the package was upgraded, `ALTER EXTENSION pg_retention UPDATE` not run
/// yet) pauses purging; the first pause is logged with what to do.
fn schema_ready(waiting_logged: &mut bool) -> bool {
    match own_transaction(schema_version::installed) {
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

/// Whether this database is on a Citus worker node, where the purger stays idle: the catalog,
/// holds and log live on the coordinator, whose purger purges the distributed tables' shards
/// (the extension is there only because Citus propagates `CREATE EXTENSION`). Said once in
/// the server log.
fn on_citus_worker(logged: &mut bool) -> bool {
    let worker =
        own_transaction(|| Spi::connect(crate::pg::citus::is_worker_node)).unwrap_or(false);
    if worker && !*logged {
        log!("pg_retention: idle on this Citus worker node: the coordinator purges distributed tables");
    }
    *logged = worker;
    worker
}

/// Sleeps `pause`, in slices of at most 100 ms so that a waiting `retention.run()` is noticed;
/// false when asked to stop, or to give way to `run()`.
fn sleep(pause: Duration, progress: &Entry) -> bool {
    let mut left = pause;
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
    !stopping() && !purger_wanted()
}

/// The sessions of the server doing foreground work now (the adaptive throttle's signal).
fn busy_sessions() -> i64 {
    own_transaction(|| Ok(Spi::get_one::<i64>(throttle::BUSY_SESSIONS)?))
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The worker's isolation: each unit of work a transaction of its own, committed when it
/// succeeds; the cycle ends on shutdown or when purging is disabled, gives way to a waiting
/// `retention.run()`, and is paced by the throttle (throttle.rs).
#[derive(Default)]
struct OwnTransactions {
    pacer: Pacer,
}

impl Isolation for OwnTransactions {
    fn unit<R>(&mut self, work: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, String> {
        own_transaction(work)
    }

    fn attempt<R>(
        &mut self,
        work: impl FnOnce() -> Result<R, RetentionError>,
    ) -> Result<R, String> {
        own_transaction(work)
    }

    fn table(
        &mut self,
        _name: &str,
        purge: impl FnOnce(&mut Self) -> TableOutcome,
    ) -> TableOutcome {
        purge(self)
    }

    fn is_worker(&self) -> bool {
        true
    }

    fn stopping(&mut self) -> bool {
        reload_if_asked();
        stopping()
    }

    fn disabled(&self) -> bool {
        !gucs::ENABLED.get()
    }

    fn give_way(&self) -> bool {
        purger_wanted()
    }

    fn batch_size(&self) -> i64 {
        self.pacer.batch_size(Settings::current())
    }

    fn pace(&mut self, rows: i64, spent: Duration, progress: &Entry) -> bool {
        let settings = Settings::current();
        let busy = self.pacer.wants_sample(settings).then(busy_sessions);
        sleep(self.pacer.pause(settings, rows, spent, busy), progress)
    }
}

/// Marks runs a previous worker left "running" as failed: they were cut short (crash, kill,
/// shutdown).
fn close_interrupted_runs() {
    let _ = own_transaction(|| {
        Spi::connect_mut(|client| runs::close_interrupted(client, Trigger::Worker))
    });
}

/// One purge cycle over every managed table of this database (engine/cycle.rs), under the
/// purger lock, recorded in retention.runs.
fn cycle(first: bool) {
    let locked = own_transaction(|| try_session_lock(LockKey::Purger));
    if locked != Ok(true) {
        return;
    }
    if first {
        close_interrupted_runs();
    }
    let started = own_transaction(|| {
        Spi::connect_mut(|client| {
            Ok((
                runs::start(client, Trigger::Worker)?,
                Managed::load_all(client)?,
            ))
        })
    });
    if let Ok((run_id, tables)) = started {
        let outcomes = drive(&mut OwnTransactions::default(), run_id, &tables);
        let stopped =
            stopping().then(|| "stopped by shutdown before the cycle finished".to_string());
        if let Err(e) =
            own_transaction(|| Spi::connect_mut(|c| runs::finish(c, run_id, &outcomes, stopped)))
        {
            log!("pg_retention: could not record run {run_id}: {e}");
        }
    }
    let _ = own_transaction(|| session_unlock(LockKey::Purger));
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
    let mut idle_logged = false;
    while !stopping() {
        reload_if_asked();
        if gucs::ENABLED.get()
            && !in_recovery()
            && schema_ready(&mut waiting_logged)
            && !on_citus_worker(&mut idle_logged)
        {
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
