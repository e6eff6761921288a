//! Streaming replication for real, on loopback: a standby made with `pg_basebackup -R` from a
//! primary whose worker is off (so expired rows stay). On the standby nothing purges: no
//! pg_retention worker runs and `retention.run()` refuses (25006) while the expired rows
//! replicated from the primary stay. Once promoted, its worker starts and purges them,
//! logging each exactly once.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::time::{Duration, Instant};

const LOADED: i64 = 3000;

/// Rows 1..=`to` from `from` on: odd keys expired (two years old), even keys recent.
fn load(db: &mut Client, from: i64, to: i64) {
    db.execute(
        "INSERT INTO messages
         SELECT i, 't' || i % 3,
                CASE WHEN i % 2 = 1 THEN now() - interval '2 years' ELSE now() - interval '1 day' END
           FROM generate_series($1::bigint, $2::bigint) i",
        &[&from, &to],
    )
    .unwrap();
}

fn expired(db: &mut Client) -> i64 {
    count(
        db,
        "SELECT count(*) FROM messages WHERE created_at <= now() - interval '1 year'",
    )
}

/// A primary (worker off) with table `messages` managed and loaded with `LOADED` rows, half of
/// them expired, and a streaming standby (worker on) that has replayed them all: half before
/// the base backup, half streamed after it.
fn primary_and_standby(name: &str) -> (Cluster, Client, Cluster, Client) {
    let primary = Cluster::start(
        &format!("{name}-primary"),
        &[
            "wal_level = replica",
            "max_wal_senders = 4",
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            // The primary keeps its expired rows: only the promoted standby may purge them.
            "pg_retention.enabled = off",
        ],
    );
    let mut db = primary.database_with_extension("app");
    // initdb -A trust (scripts/cluster.sh) admits replication connections over loopback.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_catalog.pg_hba_file_rules
              WHERE type = 'host' AND 'replication' = ANY(database) AND 'all' = ANY(user_name)
                AND address = '127.0.0.1' AND netmask = '255.255.255.255'
                AND auth_method = 'trust' AND error IS NULL"
        ),
        1,
        "pg_hba.conf has `host replication all 127.0.0.1/32 trust`"
    );
    db.batch_execute(
        "SELECT retention.define_category('conversations', '1 year');
         CREATE TABLE messages (id bigint PRIMARY KEY, tenant text NOT NULL, created_at timestamptz NOT NULL);
         CREATE INDEX ON messages (created_at);
         SELECT retention.manage('messages', 'conversations', created_column => 'created_at',
                                 tenant_column => 'tenant');",
    )
    .unwrap();
    load(&mut db, 1, LOADED / 2);

    let standby = primary.standby(
        &format!("{name}-standby"),
        &[
            "hot_standby = on",
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.enabled = on",
        ],
    );
    // Rows written after the base backup arrive by streaming.
    load(&mut db, LOADED / 2 + 1, LOADED);
    let mut replica = standby.connect("app");
    assert!(replica
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .unwrap()
        .get::<_, bool>(0));
    wait_for(
        Duration::from_secs(30),
        "the standby to stream from the primary",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM pg_catalog.pg_stat_replication WHERE state = 'streaming'",
            ) == 1
        },
    );
    wait_for(
        Duration::from_secs(30),
        "the standby to replay the rows streamed after the base backup",
        || count(&mut replica, "SELECT count(*) FROM messages") == LOADED,
    );
    assert_eq!(expired(&mut replica), LOADED / 2);
    (primary, db, standby, replica)
}

#[test]
fn a_standby_purges_nothing_until_promoted() {
    let (mut primary, db, standby, mut replica) = primary_and_standby("standby");
    let due = expired(&mut replica);

    // The worker is enabled on the standby, naptime 1 s: for three naptimes no worker (and no
    // launcher) may appear and no row may go, and run() refuses every time.
    let started = Instant::now();
    let mut polls = 0;
    while started.elapsed() < Duration::from_secs(3) || polls < 5 {
        assert_eq!(
            count(
                &mut replica,
                "SELECT count(*) FROM pg_catalog.pg_stat_activity
                  WHERE backend_type IN ('pg_retention worker', 'pg_retention launcher')"
            ),
            0,
            "a pg_retention process runs on the standby"
        );
        assert_eq!(
            sqlstate_of(&mut replica, "SELECT * FROM retention.run()").as_deref(),
            Some("25006"),
            "retention.run() on a standby"
        );
        assert_eq!(count(&mut replica, "SELECT count(*) FROM messages"), LOADED);
        polls += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let err = replica
        .query("SELECT * FROM retention.run()", &[])
        .unwrap_err();
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(
        message.contains("standby"),
        "run() says why it refuses: {message}"
    );
    for (call, what) in [
        ("SELECT * FROM retention.run('messages')", "run(tbl)"),
        (
            "SELECT retention.request_delete('messages', ARRAY[1])",
            "request_delete",
        ),
        // Every other change of retention state: 25006 too, never an internal error.
        (
            "SELECT retention.define_category('x', '1 day')",
            "define_category",
        ),
        (
            "SELECT retention.drop_category('conversations')",
            "drop_category",
        ),
        ("SELECT retention.unmanage('messages')", "unmanage"),
        (
            "SELECT retention.tag('messages', 'conversations', ARRAY[1])",
            "tag",
        ),
        (
            "SELECT retention.tag_where('messages', 'conversations', 'true')",
            "tag_where",
        ),
        (
            "SELECT retention.set_tenant_policy('t', 'conversations', '1 day')",
            "set_tenant_policy",
        ),
        (
            "SELECT retention.clear_tenant_policy('t', 'conversations')",
            "clear_tenant_policy",
        ),
        (
            "SELECT retention.record_event('t', 'termination')",
            "record_event",
        ),
        (
            "SELECT retention.cancel_event('t', 'termination')",
            "cancel_event",
        ),
        (
            "SELECT retention.place_hold('x', tenant => 't')",
            "place_hold",
        ),
        ("SELECT retention.release_hold(1, NULL)", "release_hold"),
        ("SELECT retention.review_hold(1, NULL)", "review_hold"),
        ("SELECT retention.request_erasure('s')", "request_erasure"),
        ("SELECT retention.verify_erasure(1)", "verify_erasure"),
    ] {
        assert_eq!(
            sqlstate_of(&mut replica, call).as_deref(),
            Some("25006"),
            "{what} on a standby"
        );
    }
    assert_eq!(
        count(&mut replica, "SELECT count(*) FROM retention.deletion_log"),
        0
    );
    assert_eq!(
        count(&mut replica, "SELECT count(*) FROM retention.runs"),
        0
    );

    // Fail over: the primary goes away, the standby is promoted. Its worker starts on its own
    // and purges the expired rows, each logged once.
    drop(db);
    primary.stop();
    standby.promote();
    let mut promoted = standby.wait_connect("app", Duration::from_secs(60));
    wait_for(
        Duration::from_secs(30),
        "a pg_retention worker on the promoted standby",
        || !worker_pids(&mut promoted).is_empty(),
    );
    wait_for(
        Duration::from_secs(60),
        "the promoted standby's worker to purge the expired rows",
        || expired(&mut promoted) == 0,
    );
    assert_eq!(
        count(&mut promoted, "SELECT count(*) FROM messages"),
        LOADED - due,
        "recent rows stay"
    );
    // Every odd key (expired) is gone and logged once; every even key is present, unlogged.
    let audit = audit_removals(&mut promoted, "messages", "id", LOADED, "hard_delete", true);
    assert!(audit.is_exact(), "{audit:?}");
    assert_eq!(audit.removed, due);
    assert_eq!(
        count(
            &mut promoted,
            "SELECT count(*) FROM retention.deletion_log
              WHERE (row_key ->> 'id')::bigint % 2 = 0 OR reason <> 'expired'
                 OR category <> 'conversations' OR run_id IS NULL"
        ),
        0
    );
    assert!(
        count(
            &mut promoted,
            "SELECT count(*) FROM retention.runs
              WHERE trigger = 'worker' AND status = 'succeeded' AND rows_acted > 0"
        ) >= 1
    );
}

/// What only reads works on a standby: a dry run counts the replicated expired rows and
/// `preview()` lists them, without a transaction id (which a standby cannot assign).
#[test]
fn dry_run_and_preview_work_on_a_standby() {
    let (_primary, _db, _standby, mut replica) = primary_and_standby("readonly");
    let due = expired(&mut replica);
    let mut failures = Vec::new();
    for (sql, what) in [
        (
            "SELECT sum(hard_deleted)::bigint FROM retention.run(dry_run => true)",
            "run(dry_run => true)",
        ),
        (
            "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by IS NULL",
            "preview()",
        ),
    ] {
        match replica.query_one(sql, &[]) {
            Ok(row) => assert_eq!(row.get::<_, Option<i64>>(0), Some(due), "{what}"),
            Err(e) => failures.push(format!(
                "{what} on a standby fails with {}: {}",
                e.code().map(|c| c.code()).unwrap_or("?"),
                e.as_db_error().map(|d| d.message()).unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "BUG: {failures:#?}");
    assert_eq!(count(&mut replica, "SELECT count(*) FROM messages"), LOADED);
}
