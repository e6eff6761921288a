//! Requests racing the application, with two real sessions: a row another transaction updates
//! while `request_delete`, `verify_erasure` or a cascade waits for its lock is still deleted,
//! with its log entry, and an erasure is completed only once the row is gone (issue 19).
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::time::Duration;

const SCHEMA: &str = "
    SELECT retention.define_category('c', '1 year');
    SELECT retention.define_category('history', '0', clock => 'parent');
    CREATE TABLE t (id bigint PRIMARY KEY, tenant text, author text,
                    created_at timestamptz NOT NULL DEFAULT now(), body text);
    SELECT retention.manage('t', 'c', created_column => 'created_at',
                            tenant_column => 'tenant', subject_column => 'author');
    CREATE TABLE notes (id bigint PRIMARY KEY, t_id bigint NOT NULL REFERENCES t, body text);
    SELECT retention.manage('notes', 'history');
    INSERT INTO t (id, tenant, author, body) VALUES
        (1, 'a', 'bob', 'x'), (2, 'a', 'bob', 'x'), (3, 'a', 'carol', 'x'), (4, 'b', 'dan', 'x');
    INSERT INTO notes VALUES (40, 4, 'x');";

/// Runs `request` in its own session while another session holds `update` uncommitted;
/// commits the update once the request waits for the row lock, and returns the request's
/// result (a bigint, or 0 for a void function).
fn race(cluster: &Cluster, update: &str, request: String) -> i64 {
    let mut writer = cluster.connect("app");
    writer.batch_execute("BEGIN").unwrap();
    writer.batch_execute(update).unwrap();
    let mut requester = cluster.connect("app");
    let pid: i32 = requester
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let waiting = std::thread::spawn(move || {
        let row = requester.query_one(&request, &[]).unwrap();
        row.try_get::<_, i64>(0).unwrap_or(0)
    });
    let mut watcher = cluster.connect("app");
    wait_for(
        Duration::from_secs(20),
        "the request to wait for the row lock",
        || {
            count(
                &mut watcher,
                &format!(
                    "SELECT count(*) FROM (SELECT pg_stat_clear_snapshot()) s, pg_stat_activity
                  WHERE pid = {pid} AND wait_event_type = 'Lock'"
                ),
            ) == 1
        },
    );
    writer.batch_execute("COMMIT").unwrap();
    waiting.join().unwrap()
}

fn app(cluster: &Cluster) -> Client {
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();
    db
}

#[test]
fn concurrent_updates_do_not_hide_rows_from_requests() {
    let mut cluster = Cluster::start("races", &["pg_retention.enabled = off"]);
    let mut db = app(&cluster);

    // request_delete: row 1 is being edited when the request arrives.
    let deleted = race(
        &cluster,
        "UPDATE t SET body = 'edited' WHERE id = 1",
        "SELECT retention.request_delete('t', ARRAY[1, 2])".into(),
    );
    assert_eq!(deleted, 2, "the request acts on both rows");
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM t WHERE id IN (1, 2)"),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.t' AND row_key IN ('{\"id\": 1}', '{\"id\": 2}')"),
        2
    );

    // A cascade: the child row is edited while its parent's deletion waits for it.
    let deleted = race(
        &cluster,
        "UPDATE notes SET body = 'edited' WHERE id = 40",
        "SELECT retention.request_delete('t', ARRAY[4])".into(),
    );
    assert_eq!(deleted, 1);
    assert_eq!(count(&mut db, "SELECT count(*) FROM t WHERE id = 4"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM notes"), 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.notes' AND reason = 'parent_deleted'"),
        1
    );

    // verify_erasure: carol's row is edited while the erasure waits for it.
    let request = count(&mut db, "SELECT retention.request_erasure('carol')");
    race(
        &cluster,
        "UPDATE t SET body = 'edited' WHERE id = 3",
        format!("SELECT 0::bigint FROM retention.verify_erasure({request})"),
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM t WHERE author = 'carol'"),
        0
    );
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.erasure_records WHERE id = {request} AND status = 'completed' AND rows_erased = 1")),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        5
    );
    assert!(db
        .query_one("SELECT retention.verify_log() IS NULL", &[])
        .unwrap()
        .get::<_, bool>(0));
    cluster.stop();
}
