//! Whole-partition retention (issue 14) against a real server: a table partitioned by month
//! over 24 months, with the exceptions only a row-level policy knows (a tenant's two-year
//! contract, a legal hold on one subject, rows tagged with a longer category). Exactly the
//! partitions whose rows are all due and unheld are retired whole; the others are purged row
//! by row; every removed row has exactly one log entry and the chain holds. A crash during a
//! retirement leaves the partition attached and whole, and the next cycle retires it.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::time::{Duration, Instant};

/// 24 monthly partitions (`events_k` holds month k before this one, k = 0..23) and a DEFAULT
/// partition. Every month has 30 rows of acme and initech; even months also 10 of globex,
/// whose contract keeps events 2 years. Month 15 holds subject `held` (on hold), month 17
/// rows tagged `evidence` (3 years). Month 12 is left empty (its rows would be due or not
/// depending on the day of the month the test runs).
const SCHEMA: &str = "
    SELECT retention.define_category('events', '1 year');
    SELECT retention.define_category('evidence', '3 years');
    CREATE TABLE events (id bigint NOT NULL, tenant text NOT NULL, subject text,
                         created_at timestamptz NOT NULL, category text,
                         PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
    DO $$
    DECLARE
        this_month timestamptz := date_trunc('month', now());
    BEGIN
        FOR k IN 0..23 LOOP
            EXECUTE format('CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           k, this_month - make_interval(months => k),
                           this_month - make_interval(months => k - 1));
        END LOOP;
    END $$;
    CREATE TABLE events_default PARTITION OF events DEFAULT;
    CREATE INDEX ON events (created_at);
    INSERT INTO events
    SELECT k * 1000 + i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'initech' END, 's' || i % 5,
           date_trunc('month', now()) - make_interval(months => k) + interval '1 day'
             + i * interval '1 minute', NULL
      FROM generate_series(0, 23) k, generate_series(1, 30) i WHERE k <> 12;
    INSERT INTO events
    SELECT k * 1000 + 100 + i, 'globex', 's' || i % 5,
           date_trunc('month', now()) - make_interval(months => k) + interval '2 days', NULL
      FROM generate_series(0, 23, 2) k, generate_series(1, 10) i WHERE k <> 12;
    UPDATE events SET subject = 'held' WHERE id = 15001;
    SELECT retention.manage('events', 'events', created_column => 'created_at',
                            tenant_column => 'tenant', subject_column => 'subject',
                            category_column => 'category');
    SELECT retention.tag('events', 'evidence',
                         ARRAY[['17002', (SELECT created_at::text FROM events WHERE id = 17002)]]);
    SELECT retention.set_tenant_policy('globex', 'events', '2 years');
    SELECT retention.place_hold('Case 7', subject => 'held', notify => false);
    CREATE TABLE loaded AS SELECT id, tenant, subject, category FROM events;
";

fn partitions(db: &mut Client) -> Vec<String> {
    db.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'events'::regclass ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Every row loaded and gone has exactly one log entry, no present row has one, and the chain
/// is intact.
fn assert_logged_exactly(db: &mut Client) {
    let gone_unlogged = count(
        db,
        "SELECT count(*) FROM loaded o
          WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.id)
            AND (SELECT count(*) FROM retention.deletion_log l
                  WHERE l.table_name = 'public.events' AND (l.row_key ->> 'id')::bigint = o.id) <> 1",
    );
    assert_eq!(gone_unlogged, 0, "removed rows without exactly one entry");
    let present_logged = count(
        db,
        "SELECT count(*) FROM retention.deletion_log l
          WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = (l.row_key ->> 'id')::bigint)",
    );
    assert_eq!(present_logged, 0, "entries for rows still present");
    assert_eq!(count(db, "SELECT coalesce(retention.verify_log(), 0)"), 0);
}

#[test]
fn exactly_the_wholly_due_partitions_are_retired() {
    let cluster = Cluster::start("partitions", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();
    let before = partitions(&mut db);
    assert_eq!(before.len(), 25);

    // preview() names the partitions a cycle would retire whole (their rows are also in the
    // table's hard_delete lines).
    let previewed: Vec<String> = db
        .query(
            "SELECT table_name FROM retention.preview() WHERE action = 'retire_partition' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        previewed,
        [
            "public.events_13",
            "public.events_19",
            "public.events_21",
            "public.events_23"
        ]
    );

    // run(dry_run => true) names them too, one NOTICE each, and changes nothing.
    let (mut dry, notices) = cluster.connect_with_notices("app");
    dry.batch_execute("SELECT * FROM retention.run(dry_run => true)")
        .unwrap();
    let mut named: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.contains("would be retired whole"))
        .map(|n| n.split_whitespace().nth(3).unwrap_or_default().to_string())
        .collect();
    named.sort();
    assert_eq!(named, previewed);
    assert_eq!(partitions(&mut db).len(), 25);
    db.batch_execute("SELECT * FROM retention.run()").unwrap();

    // Retired whole: months 13, 19, 21 and 23 (odd: no globex rows; not 15: a held row;
    // not 17: a tagged row). Every other partition stays, the empty and DEFAULT ones too.
    let after = partitions(&mut db);
    let retired: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert_eq!(
        retired,
        ["events_13", "events_19", "events_21", "events_23"]
    );
    for gone in ["events_13", "events_19", "events_21", "events_23"] {
        assert_eq!(
            count(
                &mut db,
                &format!("SELECT count(*) FROM pg_class WHERE relname = '{gone}'")
            ),
            0,
            "{gone} is dropped, not left detached"
        );
    }
    // Row by row elsewhere: held, tagged and globex rows survive; every other old row is gone.
    let left =
        |db: &mut Client, sql: &str| count(db, &format!("SELECT count(*) FROM events WHERE {sql}"));
    assert_eq!(left(&mut db, "id = 15001"), 1, "the held row");
    assert_eq!(left(&mut db, "id = 17002"), 1, "the tagged row");
    assert_eq!(
        left(&mut db, "tenant = 'globex'"),
        11 * 10,
        "globex's two-year contract"
    );
    assert_eq!(
        left(
            &mut db,
            "created_at < now() - interval '1 year' AND tenant <> 'globex'"
        ),
        2
    );
    assert_eq!(
        left(&mut db, "id < 12000"),
        12 * 30 + 6 * 10,
        "the last 12 months"
    );
    assert_logged_exactly(&mut db);
    // The run records what it retired; the log tells the same rows apart by run.
    assert_eq!(
        count(
            &mut db,
            "SELECT sum((p ->> 'rows')::bigint)::bigint FROM retention.runs r,
                    jsonb_array_elements(r.details) d, jsonb_array_elements(d -> 'retired_partitions') p"
        ),
        4 * 30
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE reason = 'expired' AND action = 'hard_delete'"),
        4 * 30 + 5 * 30 + 29 + 29
    );
}

#[test]
fn retirement_options_detach_move_and_off() {
    let cluster = Cluster::start("partitions-options", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();
    db.batch_execute(
        "CREATE SCHEMA archive;
         SELECT retention.set_partition_retirement('events', 'move', 'archive');
         SELECT * FROM retention.run();",
    )
    .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'archive' AND c.relname IN ('events_13', 'events_19', 'events_21', 'events_23')
                           AND NOT c.relispartition"),
        4
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM archive.events_13"), 30);
    assert_logged_exactly(&mut db);
    // off: rows go one by one and every partition stays attached.
    db.batch_execute(
        "SELECT retention.set_partition_retirement('events', 'off');
         INSERT INTO events SELECT 99000 + i, 'acme', 's', now() - interval '30 months', NULL
           FROM generate_series(1, 5) i;",
    )
    .unwrap();
    let before = partitions(&mut db);
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(partitions(&mut db), before);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM events WHERE id > 99000"),
        0
    );
    for (sql, state) in [
        (
            "SELECT retention.set_partition_retirement('events', 'move')",
            "22023",
        ),
        (
            "SELECT retention.set_partition_retirement('events', 'move', 'nowhere')",
            "3F000",
        ),
        (
            "SELECT retention.set_partition_retirement('events', 'shred')",
            "22023",
        ),
        (
            "SELECT retention.set_partition_retirement('loaded', 'drop')",
            "42704",
        ),
    ] {
        assert_eq!(sqlstate_of(&mut db, sql).as_deref(), Some(state), "{sql}");
    }
}

#[test]
fn a_crash_during_a_retirement_leaves_the_partition_whole() {
    let mut cluster = Cluster::start(
        "partitions-crash",
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.enabled = off",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();
    // The worker's retirement will wait for the log: it has locked events_13 and read it.
    let mut gate = cluster.connect("app");
    gate.batch_execute("BEGIN; LOCK TABLE retention.deletion_log IN SHARE MODE")
        .unwrap();
    db.batch_execute("ALTER SYSTEM SET pg_retention.enabled = on")
        .unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    let started = Instant::now();
    while count(
        &mut db,
        "SELECT count(*) FROM pg_locks p JOIN pg_locks w ON w.pid = p.pid
          WHERE p.relation = 'events_13'::regclass AND p.mode = 'ExclusiveLock' AND p.granted
            AND w.relation = 'retention.deletion_log'::regclass AND NOT w.granted",
    ) == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no retirement came to wait for the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Written now, read at the restart: the worker comes back idle until the test looks.
    db.batch_execute("ALTER SYSTEM SET pg_retention.enabled = off")
        .unwrap();
    cluster.kill9_postmaster();
    drop(gate);
    cluster.start_again();
    let mut db = cluster.wait_connect("app", Duration::from_secs(60));
    // Whole and attached, with no entry, or gone with all of them: here caught before the log.
    let attached = partitions(&mut db).contains(&"events_13".to_string());
    let rows = if attached {
        count(&mut db, "SELECT count(*) FROM events_13")
    } else {
        0
    };
    let logged = count(&mut db, "SELECT count(*) FROM retention.deletion_log");
    assert!(
        (attached && rows == 30 && logged == 0) || (!attached && logged >= 30),
        "attached {attached}, {rows} rows, {logged} entries"
    );
    assert_logged_exactly(&mut db);
    // The worker comes back and retires it.
    db.batch_execute("ALTER SYSTEM SET pg_retention.enabled = on")
        .unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(
        Duration::from_secs(60),
        "the worker to retire events_13",
        || !partitions(&mut db).contains(&"events_13".to_string()),
    );
    wait_for(
        Duration::from_secs(60),
        "the worker to finish the cycle",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM retention.runs WHERE status = 'succeeded'",
            ) > 0
        },
    );
    assert_logged_exactly(&mut db);
}

#[test]
fn a_partition_holding_a_held_row_is_neither_dropped_truncated_nor_detached() {
    let cluster = Cluster::start("partitions-guard", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();
    db.batch_execute("CREATE ROLE app LOGIN; ALTER TABLE events OWNER TO app;")
        .unwrap();
    for p in 0..24 {
        db.batch_execute(&format!("ALTER TABLE events_{p} OWNER TO app"))
            .unwrap();
    }
    let mut owner = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user("app")
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap();
    // events_15 holds the row on hold: no role removes it by DDL, a superuser included.
    for client in [&mut owner, &mut db] {
        for sql in [
            "DROP TABLE events_15",
            "TRUNCATE events_15",
            "ALTER TABLE events DETACH PARTITION events_15",
        ] {
            assert_eq!(sqlstate_of(client, sql).as_deref(), Some("55006"), "{sql}");
        }
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM events_15"), 30);
    // A partition with no held row is the owner's to drop, as before.
    assert_eq!(sqlstate_of(&mut owner, "DROP TABLE events_14"), None);
    assert_eq!(sqlstate_of(&mut owner, "TRUNCATE events_16"), None);
    // Once the hold is released, events_15 can go too.
    db.batch_execute(
        "SET pg_retention.hold_release_grace = 0; SELECT retention.release_hold(1, 'settled');",
    )
    .unwrap();
    assert_eq!(sqlstate_of(&mut owner, "DROP TABLE events_15"), None);
}

/// A partition set made and maintained by pg_partman (when the server has it; otherwise the
/// test says so and passes): pg_retention retires its wholly due partitions and purges the
/// others row by row, and pg_partman's maintenance goes on after it (its premade future
/// partitions and its DEFAULT partition stay, empty).
#[test]
fn a_pg_partman_partition_set_is_retired_and_still_maintained() {
    if !has_extension("pg_partman") {
        println!("pg_partman test skipped: pg_partman not installed");
        return;
    }
    let cluster = Cluster::start("partman", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE SCHEMA partman;
         CREATE EXTENSION pg_partman SCHEMA partman;
         SELECT retention.define_category('events', '1 year');
         CREATE TABLE events (id bigint NOT NULL, tenant text NOT NULL,
                              created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at))
             PARTITION BY RANGE (created_at);
         CREATE INDEX ON events (created_at);
         SELECT partman.create_parent('public.events', 'created_at', '1 month', p_premake => 3,
             p_start_partition => (date_trunc('month', now()) - interval '24 months')::text);
         INSERT INTO events
         SELECT i, 't' || i % 3, date_trunc('month', now()) - make_interval(months => (i % 24)::int)
                  + interval '1 day' + i * interval '1 second'
           FROM generate_series(1, 2400) i;
         SELECT retention.manage('events', 'events', created_column => 'created_at',
                                 tenant_column => 'tenant');
         CREATE TABLE loaded AS SELECT id, tenant, NULL::text AS subject, NULL::text AS category
           FROM events;",
    )
    .unwrap();
    // The partitions whose rows are all due, and those with rows left or none at all.
    let wholly_due = |db: &mut Client| -> Vec<String> {
        db.query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'events'::regclass
                AND EXISTS (SELECT 1 FROM events e WHERE e.tableoid = c.oid)
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tableoid = c.oid
                                   AND e.created_at > now() - interval '1 year')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let due = wholly_due(&mut db);
    assert!(due.len() >= 11, "{due:?}");
    let before = partitions(&mut db);
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    let after = partitions(&mut db);
    let expected: Vec<String> = before.into_iter().filter(|p| !due.contains(p)).collect();
    assert_eq!(
        after, expected,
        "exactly the wholly due partitions are gone"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM events WHERE created_at <= now() - interval '1 year'"
        ),
        0
    );
    assert_logged_exactly(&mut db);

    // pg_partman's maintenance runs on the set as before: it keeps its premade partitions
    // and makes none of the retired ones again.
    db.batch_execute("SELECT partman.run_maintenance('public.events')")
        .unwrap();
    let maintained = partitions(&mut db);
    assert!(
        maintained.iter().all(|p| !due.contains(p)),
        "{maintained:?}"
    );
    assert!(maintained.contains(&"events_default".to_string()));
    assert!(
        count(
            &mut db,
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'events'::regclass
                AND pg_get_expr(c.relpartbound, c.oid) LIKE '%' || to_char(date_trunc('month', now()) + interval '3 months', 'YYYY-MM-DD') || '%'"
        ) > 0,
        "the premade partition three months ahead exists"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM partman.part_config WHERE parent_table = 'public.events'"
        ),
        1
    );
}
