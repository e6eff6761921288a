//! Crash safety against a real server (invariant 2: every removed row has exactly one log
//! entry, written in the same transaction; a crash mid-batch leaves neither).
//!
//! The worker purges a large table in batches of 500 while the test crashes the server under
//! it: first by SIGKILLing the worker (the postmaster then stops every process, reinitializes
//! and runs crash recovery), then by SIGKILLing the whole server (postmaster and children, a
//! power cut), after which the test starts it again. Each crash hits a batch at its most
//! fragile point: the test locks the deletion log against inserts (LOCK TABLE … IN SHARE MODE;
//! the worker gives way on the extension's own locks, but waits for table locks), so the
//! batch has deleted its 500 rows (seen with pgrowlocks) but not yet logged them when the
//! crash comes.
//! After recovery those rows must be back and unlogged, the rows missing from the table must
//! be exactly the rows logged, each once, the hash chain intact, and the worker must come back
//! on its own, mark the interrupted run failed and finish the table.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::time::{Duration, Instant};

const CONF: &[&str] = &[
    "pg_retention.database = 'app'",
    "pg_retention.naptime = 1",
    "pg_retention.batch_size = 500",
];

/// The extension's locks (src/holds.rs): object locks on (pg_extension, "RETN", key); key 1 is
/// the hold lock a purge batch takes (shared) before it selects rows.
const LOCK_OBJECT: i64 = 0x5245_544e;
const HOLD_LOCK: i32 = 1;
const BATCH_SIZE: usize = 500;

/// The message the first cycle of a new worker stamps on runs a previous worker left running.
const INTERRUPTED: &str = "the worker stopped before the run finished";

fn setup(name: &str) -> (Cluster, Client) {
    let cluster = Cluster::start(name, CONF);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "SELECT retention.define_category('conversations', '1 year');
         CREATE TABLE big (id bigint PRIMARY KEY, tenant text NOT NULL, created_at timestamptz NOT NULL);
         CREATE INDEX ON big (created_at);",
    )
    .unwrap();
    (cluster, db)
}

/// Inserts rows `from..=to`, all expired (two years old and more).
fn load(db: &mut Client, from: i64, to: i64) {
    db.execute(
        "INSERT INTO big
         SELECT i, 't' || i % 7, now() - interval '2 years' - i * interval '1 second'
           FROM generate_series($1::bigint, $2::bigint) i",
        &[&from, &to],
    )
    .unwrap();
}

/// A purge batch caught in flight: the worker's pid, the batch's transaction id and the run.
#[derive(Debug, Clone)]
struct InFlight {
    pid: i32,
    xid: String,
    run_id: i64,
}

/// The worker's pid, transaction id and running run, when it holds (or, with `granted`
/// false, waits for) lock `key` of the extension and has written in its transaction.
/// The worker's pid, transaction id and run while it has a transaction id and a lock in
/// pg_locks matching `lock` (over alias `l`), during a run it is recording.
fn worker_with_lock_sql(lock: &str) -> String {
    format!(
        "SELECT a.pid, a.backend_xid::text, r.id
           FROM pg_catalog.pg_stat_activity a
           JOIN retention.runs r ON r.pid = a.pid AND r.status = 'running' AND r.trigger = 'worker'
          WHERE a.backend_type = 'pg_retention worker' AND a.backend_xid IS NOT NULL
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND {lock})"
    )
}

/// Polls until the worker is inside a purge batch: it holds the hold lock in shared mode (the
/// first thing a batch takes) and has a transaction id, during a run it is recording.
fn batch_in_flight(db: &mut Client, timeout: Duration) -> InFlight {
    let started = Instant::now();
    loop {
        let row = db
            .query_opt(
                &worker_with_lock_sql(&format!(
                    "l.locktype = 'object' AND l.granted
                     AND l.classid = 'pg_catalog.pg_extension'::regclass
                     AND l.objid = {LOCK_OBJECT} AND l.objsubid = {HOLD_LOCK}"
                )),
                &[],
            )
            .unwrap();
        if let Some(row) = row {
            return InFlight {
                pid: row.get(0),
                xid: row.get(1),
                run_id: row.get(2),
            };
        }
        assert!(
            started.elapsed() < timeout,
            "the worker was not seen inside a purge batch within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A batch caught between its two halves, and the keys of the rows it has deleted.
struct Caught {
    batch: InFlight,
    deleted_keys: Vec<i64>,
}

/// Locks the deletion log against inserts, waits until a worker batch has deleted its rows and
/// waits for that lock, then crashes the server with `crash` (which must leave it up again).
/// `prepare` runs before the batch is caught, to keep slow work out of the way.
fn crash_between_delete_and_log<P>(
    cluster: &mut Cluster,
    prepare: impl FnOnce(&Cluster) -> P,
    crash: impl FnOnce(&mut Cluster, &InFlight, P),
) -> Caught {
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS pgrowlocks")
        .unwrap();
    // Let the worker get going first (after a restart it may still be starting).
    batch_in_flight(&mut db, Duration::from_secs(60));
    let prepared = prepare(cluster);
    let mut gate = cluster.connect("app");
    gate.batch_execute("BEGIN; LOCK TABLE retention.deletion_log IN SHARE MODE")
        .unwrap();
    let started = Instant::now();
    let batch = loop {
        if let Some(row) = db
            .query_opt(
                &worker_with_lock_sql(
                    "l.locktype = 'relation' AND NOT l.granted
                     AND l.relation = 'retention.deletion_log'::regclass",
                ),
                &[],
            )
            .unwrap()
        {
            break InFlight {
                pid: row.get(0),
                xid: row.get(1),
                run_id: row.get(2),
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no worker batch came to wait for the locked deletion log"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The rows the waiting batch has deleted, uncommitted: locked by its transaction.
    let deleted_keys: Vec<i64> = db
        .query_one(
            "SELECT coalesce(array_agg(b.id ORDER BY b.id), '{}')
               FROM big b JOIN public.pgrowlocks('big') p ON p.locked_row = b.ctid
              WHERE $1 = ANY(p.pids)",
            &[&batch.pid],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        deleted_keys.len(),
        BATCH_SIZE,
        "the caught batch has deleted a full batch of rows"
    );
    crash(cluster, &batch, prepared);
    drop(gate);
    drop(db);
    Caught {
        batch,
        deleted_keys,
    }
}

/// After recovery: the caught batch left no trace. None of its rows was logged by its run;
/// each is present and unlogged, or (already purged again by the restarted worker) absent and
/// logged once by a later run.
fn assert_batch_undone(db: &mut Client, caught: &Caught) {
    let keys = &caught.deleted_keys;
    let logged_by_crashed_run = count_with(
        db,
        "SELECT count(*) FROM retention.deletion_log
          WHERE table_name = 'public.big' AND run_id = $1
            AND (row_key ->> 'id')::bigint = ANY($2)",
        &[&caught.batch.run_id, keys],
    );
    assert_eq!(logged_by_crashed_run, 0, "the crashed batch logged rows");
    let inconsistent = count_with(
        db,
        "SELECT count(*) FROM unnest($1::bigint[]) k
          WHERE EXISTS (SELECT 1 FROM big WHERE id = k)
              = EXISTS (SELECT 1 FROM retention.deletion_log
                         WHERE table_name = 'public.big' AND row_key = jsonb_build_object('id', k))",
        &[keys],
    );
    assert_eq!(
        inconsistent, 0,
        "a row of the crashed batch is both present and logged, or neither"
    );
    let restored = count_with(db, "SELECT count(*) FROM big WHERE id = ANY($1)", &[keys]);
    eprintln!(
        "crashed batch (run {}, xid {}): {restored} of its {} rows present after recovery, the rest purged again",
        caught.batch.run_id,
        caught.batch.xid,
        keys.len()
    );
}

fn count_with(db: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> i64 {
    db.query_one(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Invariant 2 on table `big` loaded with keys 1..=`loaded`, from one snapshot; with
/// `verify_chain`, the hash chain too (slow: see `audit_removals`).
fn assert_exact(db: &mut Client, loaded: i64, verify_chain: bool, when: &str) -> RemovalAudit {
    let audit = audit_removals(db, "big", "id", loaded, "hard_delete", verify_chain);
    assert!(
        audit.is_exact(),
        "{when}: removed rows and log entries differ: {audit:?}"
    );
    audit
}

/// After a crash: the worker comes back on its own (a new pid), marks the runs the crash
/// interrupted as failed, and finishes the table; the log still matches exactly.
fn assert_resumes(cluster: &Cluster, hits: &[InFlight], loaded: i64, verify_chain: bool) {
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    let killed: Vec<i32> = hits.iter().map(|h| h.pid).collect();
    wait_for(Duration::from_secs(30), "a new worker", || {
        worker_pids(&mut db).iter().any(|p| !killed.contains(p))
    });
    for hit in hits {
        wait_for(
            Duration::from_secs(30),
            &format!("run {} to be marked failed", hit.run_id),
            || {
                count(
                    &mut db,
                    &format!(
                        "SELECT count(*) FROM retention.runs
                          WHERE id = {} AND pid = {} AND status = 'failed'
                            AND error = '{INTERRUPTED}' AND finished_at IS NOT NULL",
                        hit.run_id, hit.pid
                    ),
                ) == 1
            },
        );
    }
    wait_for(
        Duration::from_secs(90),
        "the restarted worker to purge the table",
        || count(&mut db, "SELECT count(*) FROM big") == 0,
    );
    let audit = assert_exact(&mut db, loaded, verify_chain, "after the table was purged");
    assert_eq!(audit.removed, loaded);
    assert!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.runs
              WHERE trigger = 'worker' AND status = 'succeeded' AND rows_acted > 0"
        ) >= 1,
        "a run after the crash finished the work"
    );
}

#[test]
fn a_crash_mid_batch_leaves_neither_the_removal_nor_its_log_entry() {
    let (mut cluster, mut db) = setup("crash");

    // (a) SIGKILL the worker in the middle of a batch: the postmaster treats it as a crash,
    // stops every process, reinitializes shared memory and replays WAL.
    const FIRST: i64 = 60_000;
    load(&mut db, 1, FIRST);
    db.batch_execute(
        "SELECT retention.manage('big', 'conversations', created_column => 'created_at',
                                 tenant_column => 'tenant')",
    )
    .unwrap();
    drop(db);
    let caught = crash_between_delete_and_log(
        &mut cluster,
        |_| (),
        |_, batch, ()| {
            kill9(&[batch.pid]);
            // Reaped by the postmaster, which then refuses connections until it has recovered.
            wait_gone(&[batch.pid], Duration::from_secs(30));
        },
    );
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    assert!(
        cluster.server_log().contains(&format!(
            "(PID {}) was terminated by signal 9",
            caught.batch.pid
        )),
        "the postmaster saw the worker crash"
    );
    let audit = assert_exact(&mut db, FIRST, true, "after the worker was killed");
    assert!(audit.removed < FIRST, "rows were left to resume: {audit:?}");
    assert_batch_undone(&mut db, &caught);
    // (The chain is verified after the next crash, which covers these entries too.)
    assert_resumes(&cluster, &[caught.batch], FIRST, false);

    // (b) SIGKILL the whole server (the postmaster, from postmaster.pid, and every process it
    // started) in the middle of a batch, then start it again.
    const SECOND: i64 = 40_000;
    load(&mut db, FIRST + 1, FIRST + SECOND);
    drop(db);
    let caught = crash_between_delete_and_log(
        &mut cluster,
        |cluster| cluster.server_processes(),
        |cluster, batch, processes| {
            assert!(
                processes.contains(&batch.pid),
                "{batch:?} runs under {processes:?}"
            );
            cluster.kill9_processes(&processes);
            cluster.start_again();
        },
    );
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    let audit = assert_exact(&mut db, FIRST + SECOND, true, "after the server was killed");
    assert!(
        audit.removed >= FIRST && audit.removed < FIRST + SECOND,
        "rows were left to resume: {audit:?}"
    );
    assert_batch_undone(&mut db, &caught);
    assert_resumes(&cluster, &[caught.batch], FIRST + SECOND, true);
}

/// A worker must not outlive its postmaster: like every Postgres process it has to notice
/// the postmaster's death and exit (between batches at the latest), so the server can be
/// started again at once and the restarted worker resumes the purge. A worker that keeps
/// purging blocks the restart (its shared memory is still attached) until its cycle ends.
#[test]
fn the_worker_exits_when_the_postmaster_is_killed() {
    let (mut cluster, mut db) = setup("orphan");
    const LOADED: i64 = 150_000;
    load(&mut db, 1, LOADED);
    db.batch_execute(
        "SELECT retention.manage('big', 'conversations', created_column => 'created_at',
                                 tenant_column => 'tenant')",
    )
    .unwrap();
    let hit = batch_in_flight(&mut db, Duration::from_secs(60));
    drop(db);
    let children = cluster.kill9_postmaster();
    assert!(children.contains(&hit.pid));
    let killed_at = Instant::now();
    let grace = Duration::from_secs(5);
    while alive(hit.pid) && killed_at.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(50));
    }
    let orphan_outlived_grace = alive(hit.pid);
    if orphan_outlived_grace {
        // Clean up so the rest of the test can still check the restart.
        kill9(&[hit.pid]);
    }
    wait_gone(&children, Duration::from_secs(30));

    cluster.start_again();
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    let audit = assert_exact(&mut db, LOADED, false, "after the postmaster was killed");
    assert!(
        !orphan_outlived_grace,
        "BUG: the pg_retention worker (pid {}) kept running more than {grace:?} after its \
         postmaster was SIGKILLed (it purges batch after batch without checking for \
         postmaster death; the server cannot start again until it exits). Audit: {audit:?}",
        hit.pid
    );
    assert!(
        audit.removed < LOADED,
        "rows were left to resume: {audit:?}"
    );
    assert_resumes(&cluster, &[hit], LOADED, true);
}
