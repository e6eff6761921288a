//! The background worker: a launcher (connected to no database) that starts one purger per
//! database listed in `pg_retention.database` once that database exists, and the purger, which
//! runs a cycle every `pg_retention.naptime` seconds while the extension is installed.
//!
//! Both start only after recovery has finished: on a standby nothing runs; after promotion the
//! postmaster starts them.

mod purger;
mod throttle;

use crate::pg::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::ffi::CStr;
use std::time::Duration;

/// Registers the launcher; only from shared_preload_libraries, never during binary upgrade.
pub fn init() {
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress || pg_sys::IsBinaryUpgrade {
            return;
        }
    }
    BackgroundWorkerBuilder::new("pg_retention launcher")
        .set_type("pg_retention launcher")
        .set_library("pg_retention")
        .set_function("pg_retention_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Whether database `name` exists. The launcher has no database, so it reads the shared
/// catalog pg_database with a plain heap scan (as the autovacuum launcher does).
fn database_exists(name: &str) -> bool {
    BackgroundWorker::transaction(|| unsafe {
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as _);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        let mut found = false;
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
            if CStr::from_ptr((*form).datname.data.as_ptr()).to_bytes() == name.as_bytes() {
                found = true;
                break;
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
        found
    })
}

fn launch(database: &str) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("pg_retention worker {database}"))
        .set_type("pg_retention worker")
        .set_library("pg_retention")
        .set_function("pg_retention_worker_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_extra(database)
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_retention_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    let mut workers: HashMap<String, DynamicBackgroundWorker> = HashMap::new();
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        for database in gucs::databases() {
            let running = matches!(
                workers.get(&database).map(|w| w.pid()),
                Some(Ok(_)) | Some(Err(BackgroundWorkerStatus::NotYetStarted))
            );
            if !running && database_exists(&database) {
                match launch(&database) {
                    Some(worker) => {
                        workers.insert(database, worker);
                    }
                    None => {
                        log!("pg_retention: no background worker slot free for database {database}")
                    }
                }
            }
        }
        let nap = Duration::from_secs(gucs::NAPTIME.get().clamp(1, 5) as u64);
        if !BackgroundWorker::wait_latch(Some(nap)) {
            break;
        }
    }
}
