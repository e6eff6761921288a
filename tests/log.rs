//! The deletion log against a real server: the hash chain under concurrent writers, the log's
//! own retention, pg_dump/pg_restore of configuration and log, and re-applying deletions after
//! restoring a backup taken before them.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const SETUP: &str = "
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination', soft_delete_window => '30 days');
    CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, created_at timestamptz NOT NULL, category text);
    CREATE INDEX ON conversations (created_at);
    CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
    SELECT retention.manage('conversations', 'conversations', created_column => 'created_at', tenant_column => 'tenant', category_column => 'category');
    SELECT retention.manage('projects', 'projects', tenant_column => 'tenant', soft_delete_column => 'deleted_at');
    INSERT INTO conversations SELECT i, 't' || i % 4, now() - i * interval '1 day', NULL FROM generate_series(1, 2000) i;
    INSERT INTO projects SELECT i, 't' || i % 4, NULL FROM generate_series(1, 40) i;
    SELECT retention.set_tenant_policy('t1', 'conversations', '2 years');
    SELECT retention.record_event('t2', 'termination', now() - interval '100 days');
    SELECT retention.place_hold('subpoena', tenant => 't3');
";

fn dump(cluster: &Cluster, db: &str, file: &std::path::Path) {
    let status = Command::new(pg_bin().join("pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-Fc",
            "-f",
        ])
        .arg(file)
        .arg(db)
        .status()
        .unwrap();
    assert!(status.success(), "pg_dump failed");
}

fn restore(cluster: &Cluster, db: &str, file: &std::path::Path) {
    cluster
        .connect("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let output = Command::new(pg_bin().join("pg_restore"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "--exit-on-error",
            "-d",
            db,
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pg_restore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const RETENTION_STATE: [&str; 9] = [
    "SELECT name, retain_for, clock, action, soft_delete_window, event, erasure_exempt FROM retention.categories ORDER BY name",
    "SELECT tbl::text, category, created_column, tenant_column, soft_delete_column, key_columns FROM retention.managed_tables ORDER BY 1",
    "SELECT tenant, category, retain_for FROM retention.tenant_policies ORDER BY 1, 2",
    "SELECT tenant, event, occurred_at FROM retention.tenant_events ORDER BY 1, 2",
    "SELECT id, reason, tenant, placed_at, released_at FROM retention.holds ORDER BY id",
    "SELECT id, payload FROM retention.notifications ORDER BY id",
    "SELECT tbl::text, row_key, done_at FROM retention.deletion_queue ORDER BY 1, 2",
    "SELECT * FROM retention.deletion_log ORDER BY id",
    "SELECT * FROM retention.log_anchor ORDER BY last_id",
];

#[test]
fn dump_and_restore_keep_configuration_and_log_then_deletions_are_reapplied() {
    let cluster = Cluster::start("dump", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SETUP).unwrap();
    // A changed period of the built-in deletion_log category is configuration too.
    db.batch_execute("SELECT retention.define_category('deletion_log', '10 years')")
        .unwrap();
    db.batch_execute("SELECT retention.request_delete('projects', ARRAY[3])")
        .unwrap(); // t3: queued under the hold
    let backup = cluster.dir.join("before.dump");
    dump(&cluster, "app", &backup);
    let backup_taken: std::time::SystemTime = db
        .query_one("SELECT now()::timestamptz", &[])
        .unwrap()
        .get(0);
    let log_at_backup = count(
        &mut db,
        "SELECT coalesce(max(id), 0) FROM retention.deletion_log",
    );

    // Round trip: everything pg_retention knows survives pg_dump / pg_restore.
    restore(&cluster, "copy", &backup);
    let mut copy = cluster.connect("copy");
    for sql in RETENTION_STATE {
        assert_eq!(
            digest(&mut db, sql),
            digest(&mut copy, sql),
            "differs after restore: {sql}"
        );
    }
    assert!(copy
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    // The restored copy works: it purges like the original would.
    assert!(
        count(
            &mut copy,
            "SELECT sum(hard_deleted + soft_deleted)::bigint FROM retention.run()"
        ) > 0
    );

    // Purges happen after the backup ...
    db.batch_execute("SELECT * FROM retention.run(); SELECT retention.request_delete('conversations', ARRAY[5, 6])").unwrap();
    let after = "SELECT id, deleted_at IS NOT NULL FROM projects UNION ALL SELECT id, false FROM conversations ORDER BY 1, 2";
    assert!(count(&mut db, "SELECT count(*) FROM retention.deletion_log") > log_at_backup);

    // ... then disaster: the database is restored from the old backup, plus the current log.
    restore(&cluster, "restored", &backup);
    let mut restored = cluster.connect("restored");
    let mut newer = Vec::new();
    db.copy_out(&*format!("COPY (SELECT * FROM retention.deletion_log WHERE id > {log_at_backup} ORDER BY id) TO STDOUT"))
        .unwrap()
        .read_to_end(&mut newer)
        .unwrap();
    let mut writer = restored
        .copy_in("COPY retention.deletion_log FROM STDIN")
        .unwrap();
    std::io::Write::write_all(&mut writer, &newer).unwrap();
    writer.finish().unwrap();
    assert_ne!(
        digest(&mut db, after),
        digest(&mut restored, after),
        "the old backup brought rows back"
    );

    let reapplied: i64 = restored
        .query_one("SELECT retention.reapply_deletions($1)", &[&backup_taken])
        .unwrap()
        .get(0);
    assert!(reapplied > 0);
    assert_eq!(
        digest(&mut db, after),
        digest(&mut restored, after),
        "nothing deleted came back"
    );
    assert_eq!(
        count(
            &mut restored,
            "SELECT count(*) FROM retention.deletion_log WHERE reason = 'reapplied'"
        ),
        reapplied
    );
    assert!(restored
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    // Held rows were never deleted, so nothing of t3 is re-deleted.
    assert_eq!(count(&mut restored, "SELECT count(*) FROM retention.deletion_log WHERE reason = 'reapplied' AND tenant = 't3'"), 0);
}

use std::io::Read;

#[test]
fn the_chain_holds_with_concurrent_writers_and_trims_itself() {
    let cluster = Cluster::start(
        "chain",
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.batch_size = 100",
            // The log's own retention is tested with a one-second period.
            "pg_retention.log_floor_days = 0",
            // The released hold of SETUP frees its rows at once.
            "pg_retention.hold_release_grace = 0",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SETUP).unwrap();
    db.batch_execute("SELECT retention.release_hold(1, 'not needed')")
        .unwrap();
    db.batch_execute(
        "INSERT INTO conversations SELECT i, 't0', now() - interval '3 years', NULL FROM generate_series(10001, 30000) i",
    )
    .unwrap();
    // Sessions delete on customer request while the worker purges.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mut c = cluster.connect("app");
            std::thread::spawn(move || {
                for i in 0..60 {
                    let id = 100 + w * 60 + i;
                    c.execute(
                        "SELECT retention.request_delete('conversations', ARRAY[$1::bigint])",
                        &[&(id as i64)],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    wait_for(Duration::from_secs(60), "the worker to purge", || {
        count(
            &mut db,
            "SELECT count(*) FROM conversations WHERE id > 10000",
        ) == 0
    });
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM (SELECT id - lag(id) OVER (ORDER BY id) AS step FROM retention.deletion_log) s WHERE step <> 1"),
        0,
        "entries are numbered without gaps"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE reason = 'customer_request'"
        ),
        180
    );

    // The log's own retention: entries older than its period leave, once, behind an anchor.
    let before = count(&mut db, "SELECT count(*) FROM retention.deletion_log");
    db.batch_execute("SELECT retention.define_category('deletion_log', '1 second')")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // At most 10,000 entries go per cycle: wait for the cycles that trim them all.
    wait_for(
        Duration::from_secs(30),
        "the worker to trim the log",
        || {
            count(
                &mut db,
                "SELECT coalesce(sum(trimmed_entries), 0)::bigint FROM retention.log_anchor",
            ) >= before
        },
    );
    let trimmed = count(
        &mut db,
        "SELECT sum(trimmed_entries)::bigint FROM retention.log_anchor",
    );
    assert!(
        trimmed >= before,
        "every old entry left: {trimmed} of {before}"
    );
    db.batch_execute("SELECT retention.define_category('deletion_log', '7 years'); SELECT retention.request_delete('conversations', ARRAY[10])").unwrap();
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    assert_eq!(
        count(&mut db, "SELECT min(id) FROM retention.deletion_log"),
        count(&mut db, "SELECT max(last_id) + 1 FROM retention.log_anchor"),
        "the chain continues from the anchor"
    );
}
