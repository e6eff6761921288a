//! Redaction on write against a real server: COPY from a client, concurrent writers and their
//! counts, the hold guard on the same table, and pg_dump/pg_restore of a redacted table (with a
//! locked category).
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use std::io::Write;
use std::process::Command;

const SETUP: &str = "
    CREATE TABLE tickets (id bigint PRIMARY KEY, tenant text NOT NULL, created_at timestamptz NOT NULL,
                          body text, meta jsonb);
    SELECT retention.redact('tickets', '{body,meta}');
    CREATE TABLE calls (id bigint, at date, transcript text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE calls_2026_01 PARTITION OF calls FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
    SELECT retention.redact('calls', '{transcript}', '{phone,custom}', '***', pattern => 'ACCT-[0-9]+');
    CREATE TABLE calls_2026_02 PARTITION OF calls FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
";

fn redactions(db: &mut postgres::Client) -> i64 {
    count(
        db,
        "SELECT coalesce(sum(redactions), 0)::bigint FROM retention.redaction_counts",
    )
}

#[test]
fn copy_from_a_client_and_concurrent_writers_are_redacted_and_counted() {
    let cluster = Cluster::start("redact-copy", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SETUP).unwrap();
    let mut copy = db
        .copy_in("COPY tickets (id, tenant, created_at, body) FROM STDIN")
        .unwrap();
    for id in 1..=500 {
        writeln!(
            copy,
            "{id}\tt1\t2026-01-01\tcard 4111-1111-1111-1111 for u{id}@example.com"
        )
        .unwrap();
    }
    copy.finish().unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM tickets WHERE body ~ '4111|@'"
        ),
        0
    );
    assert_eq!(redactions(&mut db), 1000);

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut db = cluster.connect("app");
            std::thread::spawn(move || {
                for i in 0..200 {
                    let id = 1000 + w * 1000 + i;
                    let sql = format!(
                        "INSERT INTO calls VALUES ({id}, '2026-0{}-10', 'ACCT-{id} call +1 415 555 2671')",
                        1 + i % 2
                    );
                    db.batch_execute(&sql).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM calls WHERE transcript = '*** call ***'"
        ),
        800
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT sum(redactions)::bigint FROM retention.redaction_counts WHERE table_name = 'public.calls'"
        ),
        1600
    );
}

#[test]
fn the_hold_guard_and_redaction_share_a_table() {
    let cluster = Cluster::start("redact-hold", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SETUP).unwrap();
    db.batch_execute(
        "SELECT retention.define_category('tickets', '1 day');
         SELECT retention.manage('tickets', 'tickets', created_column => 'created_at', tenant_column => 'tenant');
         INSERT INTO tickets VALUES (1, 'held', now() - interval '1 year', 'mail a@b.io', NULL),
                                    (2, 'free', now() - interval '1 year', 'mail c@d.io', NULL);
         SELECT retention.place_hold('litigation', tenant => 'held', notify => false);",
    )
    .unwrap();
    // The held row keeps its (redacted) content; a change to it is redacted too.
    assert_eq!(
        sqlstate_of(&mut db, "DELETE FROM tickets WHERE id = 1").as_deref(),
        Some("55006")
    );
    db.batch_execute("UPDATE tickets SET body = body || ' +44 20 7946 0958' WHERE id = 1")
        .unwrap();
    assert_eq!(
        digest(&mut db, "SELECT body FROM tickets WHERE id = 1"),
        digest(&mut db, "SELECT 'mail [redacted:email] [redacted:phone]'")
    );
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM tickets"), 1);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE row_key = '{\"id\": 2}'"
        ),
        1
    );
    // A frozen hold refuses every update, the redaction trigger's included.
    db.batch_execute(
        "SELECT retention.place_hold('freeze', tenant => 'held', notify => false, freeze => true)",
    )
    .unwrap();
    assert_eq!(
        sqlstate_of(&mut db, "UPDATE tickets SET body = 'x' WHERE id = 1").as_deref(),
        Some("55006")
    );
}

fn pg_tool(cluster: &Cluster, tool: &str, args: &[&str]) {
    let output = Command::new(pg_bin().join(tool))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn dump_and_restore_keep_rules_counts_and_triggers() {
    let cluster = Cluster::start("redact-dump", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SETUP).unwrap();
    db.batch_execute(
        "INSERT INTO tickets VALUES (1, 't', now(), 'a@b.io', '{\"n\": \"c@d.io\"}');
         INSERT INTO calls VALUES (1, '2026-01-05', 'ACCT-1');
         SELECT retention.define_category('tickets', '10 years');
         SELECT retention.manage('tickets', 'tickets', created_column => 'created_at');
         SELECT retention.lock_category('tickets');",
    )
    .unwrap();
    let file = cluster.dir.join("app.dump");
    let file = file.to_str().unwrap();
    pg_tool(&cluster, "pg_dump", &["-Fc", "-f", file, "app"]);
    cluster
        .connect("postgres")
        .batch_execute("CREATE DATABASE copy")
        .unwrap();
    pg_tool(
        &cluster,
        "pg_restore",
        &["--exit-on-error", "-d", "copy", file],
    );

    let mut copy = cluster.connect("copy");
    let rules = "SELECT tbl::text, columns, detectors, patterns, replacement FROM retention.redaction_rules ORDER BY 1";
    assert_eq!(digest(&mut copy, rules), digest(&mut db, rules));
    assert_eq!(redactions(&mut copy), 3);
    copy.batch_execute(
        "INSERT INTO tickets VALUES (2, 't', now(), 'e@f.io', NULL);
         INSERT INTO calls_2026_02 VALUES (2, '2026-02-05', 'ACCT-2 +1 415 555 2671');",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut copy,
            "SELECT count(*) FROM tickets WHERE body = '[redacted:email]'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut copy,
            "SELECT count(*) FROM calls WHERE transcript IN ('***', '*** ***')"
        ),
        2
    );
    assert_eq!(redactions(&mut copy), 6);
    assert_eq!(
        sqlstate_of(
            &mut copy,
            "DROP TRIGGER zz_retention_redact_count ON calls_2026_02"
        )
        .as_deref(),
        Some("2BP01")
    );
    // The lock and its guard came back too.
    assert_eq!(
        sqlstate_of(&mut copy, "DELETE FROM tickets WHERE id = 1").as_deref(),
        Some("55006")
    );
}
