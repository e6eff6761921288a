//! The background worker against a real server: it purges a seed-shaped schema on its own,
//! logs exactly one entry per deleted row, survives a broken table, and stops promptly.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use std::time::Duration;

const SCHEMA: &str = "
    CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, created_at timestamptz NOT NULL, body text);
    CREATE INDEX ON conversations (created_at);
    CREATE TABLE support_tickets (id bigint PRIMARY KEY, tenant text, last_activity_at timestamptz NOT NULL);
    CREATE INDEX ON support_tickets (last_activity_at);
    CREATE TABLE audit_logs (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, event text);
    CREATE INDEX ON audit_logs (created_at);
    SELECT retention.manage('conversations', 'conversations', created_column => 'created_at', tenant_column => 'tenant');
    SELECT retention.manage('support_tickets', 'support_records', activity_column => 'last_activity_at', tenant_column => 'tenant');
    SELECT retention.manage('audit_logs', 'audit_logs', created_column => 'created_at');
    -- i days old, for i = 1..1500: conversations older than 365 days, tickets older than
    -- 3 years and audit logs older than 7 years are due.
    INSERT INTO conversations SELECT i, 't' || i % 3, now() - i * interval '1 day', 'secret'
      FROM generate_series(1, 1500) i;
    INSERT INTO support_tickets SELECT i, 't' || i % 3, now() - i * interval '1 day'
      FROM generate_series(1, 1500) i;
    INSERT INTO audit_logs SELECT i, now() - i * interval '2 days', 'login'
      FROM generate_series(1, 1500) i;
";

#[test]
fn worker_purges_expired_rows_and_logs_each_once() {
    let mut cluster = Cluster::start(
        "worker",
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.batch_size = 200",
        ],
    );
    // The launcher waits quietly for a database that does not exist yet.
    std::thread::sleep(Duration::from_secs(2));
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    db.batch_execute(SCHEMA).unwrap();

    wait_for(
        Duration::from_secs(60),
        "the worker to purge all three tables",
        || {
            count(&mut db, "SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'") == 0
            && count(&mut db, "SELECT count(*) FROM support_tickets WHERE last_activity_at <= now() - interval '3 years'") == 0
            && count(&mut db, "SELECT count(*) FROM audit_logs WHERE created_at <= now() - interval '7 years'") == 0
        },
    );

    // Unexpired rows stay: conversations 1..=365 days old (1 year is 365 days from now),
    // tickets younger than 3 years, audit logs younger than 7 years.
    let kept = |db: &mut postgres::Client, t: &str| count(db, &format!("SELECT count(*) FROM {t}"));
    let expected_conversations = count(&mut db, "SELECT count(*) FROM generate_series(1, 1500) i WHERE now() - i * interval '1 day' > now() - interval '1 year'");
    let expected_tickets = count(&mut db, "SELECT count(*) FROM generate_series(1, 1500) i WHERE now() - i * interval '1 day' > now() - interval '3 years'");
    let expected_audit = count(&mut db, "SELECT count(*) FROM generate_series(1, 1500) i WHERE now() - i * interval '2 days' > now() - interval '7 years'");
    assert_eq!(kept(&mut db, "conversations"), expected_conversations);
    assert_eq!(kept(&mut db, "support_tickets"), expected_tickets);
    assert_eq!(kept(&mut db, "audit_logs"), expected_audit);

    // Exactly one log entry per deleted row, none for a kept row, never the content.
    for (table, ids) in [
        ("public.conversations", "conversations"),
        ("public.support_tickets", "support_tickets"),
        ("public.audit_logs", "audit_logs"),
    ] {
        let deleted = 1500 - kept(&mut db, ids);
        let logged = count(
            &mut db,
            &format!("SELECT count(*) FROM retention.deletion_log WHERE table_name = '{table}'"),
        );
        assert_eq!(logged, deleted, "{table}: one entry per deleted row");
        let distinct = count(&mut db, &format!("SELECT count(DISTINCT row_key) FROM retention.deletion_log WHERE table_name = '{table}'"));
        assert_eq!(distinct, deleted, "{table}: no row logged twice");
        let logged_but_present = count(&mut db, &format!(
            "SELECT count(*) FROM retention.deletion_log l JOIN {ids} t ON t.id = (l.row_key->>'id')::bigint WHERE l.table_name = '{table}'"));
        assert_eq!(logged_but_present, 0, "{table}: no entry for a kept row");
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE row_key::text LIKE '%secret%' OR action <> 'hard_delete' OR reason <> 'expired'"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.support_tickets' AND retain_for <> interval '3 years'"), 0);
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    assert!(count(&mut db, "SELECT count(*) FROM retention.runs WHERE trigger = 'worker' AND status = 'succeeded' AND rows_acted > 0") >= 1);

    // A fast shutdown is prompt, and nothing crashed.
    drop(db);
    let took = cluster.stop();
    assert!(
        took < Duration::from_secs(10),
        "fast shutdown took {took:?}"
    );
    let log = cluster.server_log();
    assert!(!log.contains("FATAL"), "server log has FATAL lines:\n{log}");
    assert!(
        !log.contains("terminated by signal"),
        "a process crashed:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("pg_retention") && l.contains("exited with exit code")),
        "a pg_retention worker exited abnormally:\n{log}"
    );
}

#[test]
fn worker_survives_a_broken_table() {
    let cluster = Cluster::start(
        "broken",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    db.batch_execute(
        "CREATE TABLE a_broken (id int PRIMARY KEY, created_at timestamptz NOT NULL, body text);
         SELECT retention.manage('a_broken', 'conversations', created_column => 'created_at');
         INSERT INTO a_broken SELECT i, now() - interval '2 years', 'x' FROM generate_series(1, 10) i;
         -- The purge statement will fail: the application's trigger refuses every delete.
         -- (Renaming the clock column, as 0.3.0 tested, is now refused by the extension.)
         CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'a_broken keeps rows whatever their created_at'; END $$;
         CREATE TRIGGER refuse_delete BEFORE DELETE ON a_broken
           FOR EACH ROW EXECUTE FUNCTION refuse_delete();
         CREATE TABLE b_fine (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         SELECT retention.manage('b_fine', 'conversations', created_column => 'created_at');",
    )
    .unwrap();
    let worker_pid = || -> Option<i32> {
        let mut c = cluster.connect("app");
        c.query_opt(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_retention worker'",
            &[],
        )
        .unwrap()
        .map(|r| r.get(0))
    };
    wait_for(Duration::from_secs(20), "the worker to start", || {
        worker_pid().is_some()
    });
    let pid = worker_pid();
    db.batch_execute(
        "INSERT INTO b_fine SELECT i, now() - interval '2 years' FROM generate_series(1, 50) i",
    )
    .unwrap();

    wait_for(
        Duration::from_secs(30),
        "the fine table to be purged",
        || count(&mut db, "SELECT count(*) FROM b_fine") == 0,
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM a_broken"),
        10,
        "the broken table is untouched"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.b_fine'"
        ),
        50
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.a_broken'"
        ),
        0
    );
    let error: String = db
        .query_one(
            "SELECT error FROM retention.runs WHERE status = 'failed' AND error LIKE '%a_broken%' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(error.contains("created_at"), "the run records why: {error}");
    let status_error: Option<String> = db
        .query_one(
            "SELECT last_error FROM retention.status WHERE table_name = 'public.a_broken'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(status_error.is_some(), "retention.status shows the error");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(worker_pid(), pid, "the same worker keeps running");
}

#[test]
fn two_purgers_never_work_on_one_database_at_once() {
    let cluster = Cluster::start(
        "one-purger",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    wait_for(Duration::from_secs(20), "the worker's first cycle", || {
        count(
            &mut db,
            "SELECT count(*) FROM retention.runs WHERE trigger = 'worker'",
        ) > 0
    });
    // A session purging in an open transaction holds the database's purger lock ...
    let mut session = cluster.connect("app");
    let mut tx = session.transaction().unwrap();
    tx.batch_execute("SELECT * FROM retention.run()").unwrap();
    let before = count(
        &mut db,
        "SELECT max(id) FROM retention.runs WHERE trigger = 'worker'",
    );
    std::thread::sleep(Duration::from_secs(3));
    // ... so the worker, whose naptime is 1 s, skips its cycles meanwhile.
    assert_eq!(
        count(
            &mut db,
            "SELECT max(id) FROM retention.runs WHERE trigger = 'worker'"
        ),
        before,
        "the worker purged while a session was purging"
    );
    tx.commit().unwrap();
    wait_for(Duration::from_secs(20), "the worker to resume", || {
        count(
            &mut db,
            "SELECT max(id) FROM retention.runs WHERE trigger = 'worker'",
        ) > before
    });
}

/// `retention.run()` called while the worker is in a throttled cycle takes over after the
/// worker's current batch (or throttle pause), instead of waiting for the whole cycle; every
/// row is still logged exactly once.
#[test]
fn run_takes_over_from_a_throttled_worker() {
    let cluster = Cluster::start(
        "takeover",
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.batch_size = 10",
            // 5,000 rows at 20 rows/s: the worker's cycle would take four minutes.
            "pg_retention.max_rows_per_second = 20",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    db.batch_execute(
        "CREATE TABLE backlog (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         CREATE INDEX ON backlog (created_at);
         INSERT INTO backlog SELECT i, now() - interval '2 years' FROM generate_series(1, 5000) i;
         SELECT retention.manage('backlog', 'conversations', created_column => 'created_at');",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the worker to start on the backlog",
        || count(&mut db, "SELECT count(*) FROM backlog") < 5000,
    );
    // retention.progress shows the worker on the backlog: rows done, the planner's estimate of
    // what its step has left, and its throttle pauses.
    wait_for(
        Duration::from_secs(30),
        "the worker's progress line",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM retention.progress
              WHERE purger = 'worker' AND table_name = 'public.backlog' AND step = 1
                AND steps = 1 AND rows_done > 0 AND rows_remaining_estimate > 0
                AND rows_per_second > 0 AND table_started_at <= now()",
            ) == 1
        },
    );
    wait_for(Duration::from_secs(30), "a throttle pause", || {
        count(
            &mut db,
            "SELECT count(*) FROM retention.progress WHERE throttled",
        ) == 1
    });
    let by_run: i64 = db
        .query_one(
            "SELECT sum(hard_deleted)::bigint FROM retention.run() WHERE table_name = 'public.backlog'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        by_run > 4000,
        "run() purged the backlog itself ({by_run} rows)"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM backlog"), 0);
    assert!(cluster
        .server_log()
        .contains("gave way to retention.run() in this database"));
    assert_eq!(
        count(
            &mut db,
            "SELECT count(DISTINCT row_key) FROM retention.deletion_log WHERE table_name = 'public.backlog'"
        ),
        5000
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.backlog'"
        ),
        5000
    );
}

/// The adaptive throttle (the default): while another session runs a statement, the worker
/// pauses (`retention.progress.throttled`) and acts in batches of at most 100 rows; once that
/// statement ends it returns to full batches. Every row still gets exactly one log entry.
#[test]
fn the_adaptive_throttle_backs_off_while_another_session_works() {
    let cluster = Cluster::start(
        "adaptive",
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.throttle = adaptive",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    // Foreground work: a session running a statement (a long sleep, cancelled below).
    let mut busy = cluster.connect("app");
    let foreground = std::thread::spawn(move || {
        let _ = busy.batch_execute("SELECT pg_sleep(300) /* foreground */");
    });
    wait_for(
        Duration::from_secs(30),
        "the foreground statement to run",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM pg_stat_activity
              WHERE state = 'active' AND query LIKE '%/* foreground */' AND pid <> pg_backend_pid()",
            ) == 1
        },
    );
    db.batch_execute(
        "CREATE TABLE backlog (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         CREATE INDEX ON backlog (created_at);
         INSERT INTO backlog SELECT i, now() - interval '2 years' - i * interval '1 second'
           FROM generate_series(1, 30000) i;
         SELECT retention.manage('backlog', 'conversations', created_column => 'created_at');",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the worker to pause for the busy session",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM retention.progress WHERE purger = 'worker' AND throttled",
            ) == 1
        },
    );
    let seen = count(
        &mut db,
        "SELECT coalesce(max(id), 0) FROM retention.deletion_log",
    );
    wait_for(
        Duration::from_secs(60),
        "a few hundred rows purged while busy",
        || count(&mut db, "SELECT count(*) FROM retention.deletion_log") >= seen + 300,
    );
    // Each batch is one transaction: its entries share logged_at.
    let busy_batch = format!(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM retention.deletion_log
                              WHERE id > {seen} GROUP BY logged_at) b"
    );
    assert!(
        count(&mut db, &busy_batch) <= 100,
        "batches while another session works are at most 100 rows"
    );
    db.batch_execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE state = 'active' AND query LIKE '%/* foreground */' AND pid <> pg_backend_pid()",
    )
    .unwrap();
    foreground.join().unwrap();
    let done = count(
        &mut db,
        "SELECT coalesce(max(id), 0) FROM retention.deletion_log",
    );
    wait_for(Duration::from_secs(120), "the backlog to be purged", || {
        count(&mut db, "SELECT count(*) FROM backlog") == 0
    });
    assert_eq!(
        count(
            &mut db,
            &format!(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM retention.deletion_log
                                      WHERE id > {done} GROUP BY logged_at) b"
            )
        ),
        1000,
        "full batches again once the other session is done"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(DISTINCT row_key) FROM retention.deletion_log
              WHERE table_name = 'public.backlog'"
        ),
        30000
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        30000
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.runs WHERE status = 'failed'"
        ),
        0
    );
}
