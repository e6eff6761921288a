//! Settings (`pg_retention.*`). Documented in the README's settings table.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::CString;

/// Databases the worker purges: a comma-separated list (postmaster start only).
pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
/// Seconds between two purge cycles.
pub static NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(60);
/// Rows acted on per batch (one transaction each in the worker).
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// Whether the worker purges at all.
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Upper bound on the worker's purge rate; 0 means unlimited. Under the adaptive throttle
/// (the default) it is a cap on top of it.
pub static MAX_ROWS_PER_SECOND: GucSetting<i32> = GucSetting::<i32>::new(0);

/// How the worker paces its batches.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Throttle {
    /// Full speed while no other session is working, backing off while one is (see
    /// worker/throttle.rs); `max_rows_per_second`, when set, caps it.
    #[name = c"adaptive"]
    Adaptive,
    /// `max_rows_per_second` alone.
    #[name = c"fixed"]
    Fixed,
}

/// The worker's throttle mode.
pub static THROTTLE: GucSetting<Throttle> = GucSetting::<Throttle>::new(Throttle::Adaptive);
/// The shortest period, in days, the deletion log may keep its entries (postgresql.conf only:
/// a DBA's decision, not a policy admin's).
pub static LOG_FLOOR_DAYS: GucSetting<i32> = GucSetting::<i32>::new(365);
/// How long a released hold keeps what it held from the extension's own paths (purge, customer
/// deletion, erasure): a release does not unleash an immediate purge of everything it kept.
/// Stamped on the hold at its release (`holds.grace_until`); 0 frees rows at once.
pub static HOLD_RELEASE_GRACE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"7 days"));
/// Days of retention.runs history kept.
pub static RUN_HISTORY_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);

/// Defines every setting (from `_PG_init`) and reserves the prefix.
pub fn init() {
    define_worker_settings();
    define_policy_settings();
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_retention".as_ptr()) };
}

/// The background worker's settings: where, how often, how much, how fast.
fn define_worker_settings() {
    GucRegistry::define_string_guc(
        c"pg_retention.database",
        c"Databases where the pg_retention worker purges (comma-separated).",
        c"One worker runs per listed database; it waits until the database and the extension exist.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.naptime",
        c"Seconds between two purge cycles of the worker.",
        c"",
        &NAPTIME,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"pg_retention.batch_size",
        c"Rows acted on per batch; each worker batch is its own transaction.",
        c"",
        &BATCH_SIZE,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_retention.enabled",
        c"Whether the background worker purges.",
        c"retention.run() works regardless.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_retention.throttle",
        c"How the worker paces its batches: adaptive (backs off while other sessions work) or fixed.",
        c"fixed paces by pg_retention.max_rows_per_second alone; under adaptive that setting is a cap.",
        &THROTTLE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.max_rows_per_second",
        c"Upper bound on the worker's purge rate (0 = unlimited).",
        c"",
        &MAX_ROWS_PER_SECOND,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// The settings that bound the policy and its history.
fn define_policy_settings() {
    GucRegistry::define_int_guc(
        c"pg_retention.run_history_days",
        c"Days of retention.runs history kept; older runs are pruned by each cycle.",
        c"",
        &RUN_HISTORY_DAYS,
        1,
        36_500,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_retention.log_floor_days",
        c"Shortest period, in days, the deletion_log category may be given.",
        c"Shortening the log's period also needs the legal duty.",
        &LOG_FLOOR_DAYS,
        0,
        36_500,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pg_retention.hold_release_grace",
        c"How long a released hold still keeps its rows from the extension's purges and deletions.",
        c"An interval ('7 days', '12h', or seconds), stamped on the hold when it is released; 0 frees the rows at once.",
        &HOLD_RELEASE_GRACE,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// `pg_retention.hold_release_grace` as interval text (checked where it is used).
pub fn hold_release_grace() -> String {
    HOLD_RELEASE_GRACE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "7 days".into())
}

/// The worker's databases, parsed from `pg_retention.database`.
pub fn databases() -> Vec<String> {
    DATABASE
        .get()
        .map(|s| {
            s.to_string_lossy()
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default()
}
