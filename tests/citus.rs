//! Citus distributed tables (README "Citus"), against a coordinator and two worker nodes on
//! loopback, each with `shared_preload_libraries = 'citus,pg_retention'`.
//!
//! Runs only when the server has the citus extension (its share directory holds
//! `citus.control`); otherwise each test prints `citus tests skipped: citus not installed` and
//! passes. CI has no Citus: run these by hand with a server that has it, e.g.
//! `PG_BIN=/path/to/bin cargo test --test citus -- --nocapture`.

mod common;

use common::*;
use postgres::Client;
use std::collections::HashSet;
use std::time::Duration;

/// A coordinator and two worker nodes, Citus set up, pg_retention created on the coordinator
/// (Citus propagates it to the workers) and its worker disabled until a test enables it.
struct Citus {
    coordinator: Cluster,
    workers: Vec<Cluster>,
}

impl Citus {
    fn start(name: &str, conf: &[&str]) -> Option<Citus> {
        if !has_extension("citus") {
            println!("citus tests skipped: citus not installed");
            return None;
        }
        let mut lines = vec![
            "shared_preload_libraries = 'citus,pg_retention'",
            "pg_retention.naptime = 1",
            "citus.recover_2pc_interval = '1s'",
            "max_prepared_transactions = 100",
        ];
        lines.extend_from_slice(conf);
        let coordinator = Cluster::start(
            &format!("{name}-coordinator"),
            &[&lines[..], &["pg_retention.enabled = off"]].concat(),
        );
        let workers: Vec<Cluster> = (1..=2)
            .map(|n| Cluster::start(&format!("{name}-worker{n}"), &lines))
            .collect();
        for node in std::iter::once(&coordinator).chain(&workers) {
            node.connect("postgres")
                .batch_execute("CREATE EXTENSION citus")
                .unwrap();
        }
        let mut c = coordinator.connect("postgres");
        c.execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&i32::from(coordinator.port)],
        )
        .unwrap();
        for worker in &workers {
            c.execute(
                "SELECT citus_add_node('127.0.0.1', $1)",
                &[&i32::from(worker.port)],
            )
            .unwrap();
        }
        c.batch_execute("CREATE EXTENSION pg_retention").unwrap();
        Some(Citus {
            coordinator,
            workers,
        })
    }

    fn connect(&self) -> Client {
        self.coordinator.connect("postgres")
    }

    /// Turns the coordinator's purger on (or off).
    fn purging(&self, on: bool) {
        let mut c = self.connect();
        c.batch_execute(&format!("ALTER SYSTEM SET pg_retention.enabled = {on}"))
            .unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
    }
}

/// `events` (32 shards by tenant, `rows` rows, one row a day back over two years per tenant
/// cycle, 20 tenants, 400 subjects) and its co-located parent-bound child `messages` (one per
/// tenth event, its foreign key indexed as a DBA would), under a 1-year category, a 2-year override for t1, a hold on tenant t2 and one
/// on subject u7.
const SCHEMA: &str = "
    CREATE TABLE events (tenant text NOT NULL, id bigint NOT NULL, subject text NOT NULL,
                         created_at timestamptz NOT NULL, body text, PRIMARY KEY (tenant, id));
    SELECT create_distributed_table('events', 'tenant', shard_count => 32);
    CREATE TABLE messages (tenant text NOT NULL, id bigint NOT NULL, event_id bigint NOT NULL,
                           PRIMARY KEY (tenant, id),
                           FOREIGN KEY (tenant, event_id) REFERENCES events (tenant, id));
    CREATE INDEX ON messages (tenant, event_id);
    SELECT create_distributed_table('messages', 'tenant', colocate_with => 'events');
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('event_messages', '0', clock => 'parent');
    SELECT retention.set_tenant_policy('t1', 'conversations', '2 years');
    SELECT retention.manage('events', 'conversations', created_column => 'created_at',
                            tenant_column => 'tenant', subject_column => 'subject');
    SELECT retention.manage('messages', 'event_messages', tenant_column => 'tenant');
    SELECT retention.place_hold('litigation: t2', tenant => 't2', notify => false);
    SELECT retention.place_hold('subpoena: u7', subject => 'u7', notify => false);";

fn load(c: &mut Client, rows: i64) {
    c.batch_execute(SCHEMA).unwrap();
    c.batch_execute(&format!(
        "INSERT INTO events
         SELECT 't' || (i % 20), i, 'u' || (i % 400),
                now() - interval '6 hours' - (i % 730) * interval '1 day', 'body'
           FROM generate_series(1, {rows}) i;
         INSERT INTO messages SELECT tenant, id, id FROM events WHERE id % 10 = 0;"
    ))
    .unwrap();
}

/// Rows the policy makes due: older than a year, not t1's (2 years: none is that old), not
/// held (tenant t2, subject u7).
fn due_ids(rows: i64) -> HashSet<i64> {
    (1..=rows)
        .filter(|i| i % 730 >= 365 && i % 20 != 1 && i % 20 != 2 && i % 400 != 7)
        .collect()
}

/// The event ids still present, and those the log records (each once), for table `table`.
fn present_and_logged(c: &mut Client, table: &str) -> (HashSet<i64>, Vec<i64>) {
    let present = c
        .query(&format!("SELECT id FROM {table}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let logged = c
        .query(
            "SELECT (row_key ->> 'id')::bigint FROM retention.deletion_log WHERE table_name = $1",
            &[&format!("public.{table}")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    (present, logged)
}

/// Asserts that exactly `removed` left `table` (of `all`), each with one log entry.
fn assert_removed_and_logged(
    c: &mut Client,
    table: &str,
    all: &HashSet<i64>,
    removed: &HashSet<i64>,
) {
    let (present, logged) = present_and_logged(c, table);
    let gone: HashSet<i64> = all.difference(&present).copied().collect();
    assert_eq!(&gone, removed, "rows gone from {table}");
    let once: HashSet<i64> = logged.iter().copied().collect();
    assert_eq!(once.len(), logged.len(), "a row of {table} logged twice");
    assert_eq!(once, gone, "log entries of {table} against rows gone");
}

fn unheld_due(c: &mut Client) -> i64 {
    count(
        c,
        "SELECT coalesce(sum(rows) FILTER (WHERE held_by IS NULL), 0)::bigint FROM retention.preview()",
    )
}

#[test]
fn the_worker_purges_a_distributed_table_and_requests_and_erasure_reach_every_shard() {
    let Some(citus) = Citus::start("citus-purge", &[]) else {
        return;
    };
    let mut c = citus.connect();
    // The table: 1M rows over 32 shards.
    let rows = 1_000_000;
    load(&mut c, rows);
    let all: HashSet<i64> = (1..=rows).collect();
    let due = due_ids(rows);
    // (preview()'s counts on a distributed table are checked by the smaller tests below: over
    // this table and its child it reads every row on the coordinator, for minutes.)

    citus.purging(true);
    wait_for(Duration::from_secs(600), "the purge of events", || {
        count(&mut c, "SELECT count(*) FROM events") == rows - due.len() as i64
    });
    citus.purging(false);
    assert_removed_and_logged(&mut c, "events", &all, &due);
    // The children of purged events went with them, logged as parent_deleted.
    let children: HashSet<i64> = all.iter().filter(|i| *i % 10 == 0).copied().collect();
    let children_due: HashSet<i64> = children.intersection(&due).copied().collect();
    assert_removed_and_logged(&mut c, "messages", &children, &children_due);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.messages' AND reason <> 'parent_deleted'"),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events WHERE tenant = 't2'"),
        rows / 20
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events WHERE subject = 'u7'"),
        rows / 400
    );
    let broken: Option<i64> = c
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get(0);
    assert_eq!(broken, None);
    // The worker nodes' purgers stay idle, and say so.
    for worker in &citus.workers {
        assert!(worker
            .server_log()
            .contains("idle on this Citus worker node"));
    }

    // request_delete across shards: two keys deleted, a held one queued.
    let n: i64 = c
        .query_one(
            "SELECT retention.request_delete('events', ARRAY[ARRAY['t3', '3'], ARRAY['t4', '4'], ARRAY['t2', '2']])",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events WHERE id IN (2, 3, 4)"),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM retention.deletion_queue WHERE done_at IS NULL AND row_key = '{\"id\": 2, \"tenant\": \"t2\"}'"),
        1
    );

    // An erasure of one subject reaches every shard (its rows are in every tenant but t2's
    // hold keeps none of them: u9's rows are tenant t9's).
    let subject_rows = count(&mut c, "SELECT count(*) FROM events WHERE subject = 'u9'");
    assert!(subject_rows > 0);
    c.batch_execute("SELECT retention.request_erasure('u9'); SELECT retention.verify_erasure(1);")
        .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM retention.erasure_requests WHERE status = 'completed'"
        ),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events WHERE subject = 'u9'"),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM retention.deletion_log WHERE action = 'erasure' AND table_name = 'public.events'"),
        subject_rows
    );
    let broken: Option<i64> = c
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get(0);
    assert_eq!(broken, None);

    // Anonymizing: each distribution-key value's rows are tested against their marks, read on
    // the coordinator. A second cycle anonymizes nothing again; a row the application wrote
    // new data into is anonymized once more. Tenant t2's rows are held.
    c.batch_execute(
        "CREATE TABLE profiles (tenant text NOT NULL, id bigint NOT NULL, email text,
                                created_at timestamptz NOT NULL, PRIMARY KEY (tenant, id));
         SELECT create_distributed_table('profiles', 'tenant', colocate_with => 'events');
         INSERT INTO profiles SELECT 't' || (i % 20), i, 'p' || i || '@example.com',
                                     now() - interval '3 years' FROM generate_series(1, 100) i;
         SELECT retention.define_category('profiles', '1 year', action => 'anonymize');
         SELECT retention.manage('profiles', 'profiles', created_column => 'created_at',
                                 tenant_column => 'tenant', anonymize => '{\"email\": null}');",
    )
    .unwrap();
    let cycle = |c: &mut Client| {
        count(
            c,
            "SELECT count(*) FROM retention.run('profiles') WHERE error IS NOT NULL",
        )
    };
    let logged = |c: &mut Client| {
        count(
            c,
            "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.profiles'",
        )
    };
    let previewed = |c: &mut Client| {
        count(
            c,
            "SELECT coalesce(sum(rows) FILTER (WHERE held_by IS NULL), 0)::bigint
               FROM retention.preview() WHERE table_name = 'public.profiles'",
        )
    };
    assert_eq!(previewed(&mut c), 95);
    assert_eq!(cycle(&mut c), 0);
    assert_eq!(count(&mut c, "SELECT count(email) FROM profiles"), 5);
    assert_eq!(logged(&mut c), 95);
    assert_eq!(previewed(&mut c), 0);
    assert_eq!(cycle(&mut c), 0);
    assert_eq!(logged(&mut c), 95);
    c.batch_execute("UPDATE profiles SET email = 'new@example.com' WHERE tenant = 't3' AND id = 3")
        .unwrap();
    assert_eq!(cycle(&mut c), 0);
    assert_eq!(logged(&mut c), 96);
    assert_eq!(count(&mut c, "SELECT count(email) FROM profiles"), 5);
}

#[test]
fn killing_a_worker_node_mid_purge_loses_no_row_and_no_entry() {
    let Some(mut citus) = Citus::start(
        "citus-kill",
        &[
            "pg_retention.batch_size = 200",
            "pg_retention.max_rows_per_second = 2000",
        ],
    ) else {
        return;
    };
    let mut c = citus.connect();
    let rows = 40_000;
    load(&mut c, rows);
    let all: HashSet<i64> = (1..=rows).collect();
    let due = due_ids(rows);
    citus.purging(true);
    wait_for(Duration::from_secs(60), "the purge to start", || {
        count(&mut c, "SELECT count(*) FROM retention.deletion_log") > 2000
    });
    // A power cut of one worker node: every one of its processes at once.
    let worker = &mut citus.workers[1];
    let pids = worker.server_processes();
    worker.kill9_processes(&pids);
    std::thread::sleep(Duration::from_secs(3));
    worker.start_again();
    wait_for(
        Duration::from_secs(300),
        "the purge to finish after the node is back",
        || {
            unheld_due(&mut c) == 0
                && count(&mut c, "SELECT count(*) FROM events") == rows - due.len() as i64
        },
    );
    citus.purging(false);
    // The node was down mid-purge: a cycle failed on it, and a later one finished the work.
    assert!(
        count(
            &mut c,
            "SELECT count(*) FROM retention.runs WHERE error LIKE '%remote node%'"
        ) > 0
    );
    assert_removed_and_logged(&mut c, "events", &all, &due);
    let broken: Option<i64> = c
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get(0);
    assert_eq!(broken, None);
}

/// The coordinator crashes mid-purge (every process at once): a batch's part on a worker node
/// may be prepared then, without its log entries committed. Citus's recovery rolls it back (no
/// record of it committed on the coordinator), and the purge finishes after the restart with
/// exactly one entry per row.
#[test]
fn killing_the_coordinator_mid_purge_loses_no_row_and_no_entry() {
    let Some(mut citus) = Citus::start(
        "citus-crash",
        &[
            "pg_retention.batch_size = 200",
            "pg_retention.max_rows_per_second = 2000",
        ],
    ) else {
        return;
    };
    let rows = 40_000;
    let due = due_ids(rows);
    {
        let mut c = citus.connect();
        load(&mut c, rows);
        citus.purging(true);
        wait_for(Duration::from_secs(60), "the purge to start", || {
            count(&mut c, "SELECT count(*) FROM retention.deletion_log") > 2000
        });
    }
    let pids = citus.coordinator.server_processes();
    citus.coordinator.kill9_processes(&pids);
    citus.coordinator.start_again();
    let mut c = citus
        .coordinator
        .wait_connect("postgres", Duration::from_secs(120));
    wait_for(
        Duration::from_secs(300),
        "the purge to finish after the restart",
        || {
            unheld_due(&mut c) == 0
                && count(&mut c, "SELECT count(*) FROM events") == rows - due.len() as i64
        },
    );
    citus.purging(false);
    let all: HashSet<i64> = (1..=rows).collect();
    assert_removed_and_logged(&mut c, "events", &all, &due);
    let broken: Option<i64> = c
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get(0);
    assert_eq!(broken, None);
}

#[test]
fn soft_deletes_tags_and_restores_reach_every_shard() {
    let Some(citus) = Citus::start("citus-soft", &[]) else {
        return;
    };
    let mut c = citus.connect();
    c.batch_execute(
        "CREATE TABLE notes (tenant text NOT NULL, id bigint NOT NULL, created_at timestamptz NOT NULL,
                             deleted_at timestamptz, category text, PRIMARY KEY (tenant, id));
         SELECT create_distributed_table('notes', 'tenant', shard_count => 8);
         INSERT INTO notes SELECT 't' || (i % 4), i, now() - interval '6 hours' - (i % 100) * interval '1 day',
                                  NULL, NULL FROM generate_series(1, 400) i;
         SELECT retention.define_category('notes', '30 days', soft_delete_window => '7 days');
         SELECT retention.define_category('keep', '10 years');
         SELECT retention.manage('notes', 'notes', created_column => 'created_at',
                                 tenant_column => 'tenant', soft_delete_column => 'deleted_at',
                                 category_column => 'category');",
    )
    .unwrap();
    // Two old rows tagged to be kept, in two shards.
    let tagged: i64 = c
        .query_one(
            "SELECT retention.tag('notes', 'keep', ARRAY[ARRAY['t1', '41'], ARRAY['t2', '42']])",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tagged, 2);
    c.batch_execute("SELECT * FROM retention.run()").unwrap();
    // Older than 30 days: i % 100 >= 30, 70 of every 100; the two tagged rows stay live.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM notes WHERE deleted_at IS NOT NULL"
        ),
        278
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM notes WHERE id IN (41, 42) AND deleted_at IS NULL"
        ),
        2
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM retention.deletion_log WHERE action = 'soft_delete'"
        ),
        278
    );
    // A restore within the window, across two shards, logged once per row.
    let restored: i64 = c
        .query_one(
            "SELECT retention.restore('notes', ARRAY[ARRAY['t3', '43'], ARRAY['t0', '44']])",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(restored, 2);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM notes WHERE id IN (43, 44) AND deleted_at IS NULL"
        ),
        2
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM retention.deletion_log WHERE action = 'restore'"
        ),
        2
    );
    let broken: Option<i64> = c
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get(0);
    assert_eq!(broken, None);
}
