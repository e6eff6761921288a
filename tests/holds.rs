//! Legal holds, soft deletes and customer requests against a real server: holds placed while
//! purges run never lose a row; the log tells a project's whole story; queued deletions run
//! on release; LISTEN receives hold notifications.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// Rows of `tenant` still present once `place_hold` has returned must all survive every
/// purge that follows, whether the purge was already running or not.
fn race_rounds(cluster: &Cluster, rounds: usize, rows: i64, use_worker: bool, app_deletes: bool) {
    let mut db = cluster.connect("app");
    for round in 0..rounds {
        let tenant = format!("r{round}");
        db.execute(
            "INSERT INTO messages (tenant, created_at)
             SELECT $1, now() - interval '2 years' FROM generate_series(1, $2::bigint)",
            &[&tenant, &rows],
        )
        .unwrap();
        let purger = if use_worker {
            None
        } else {
            let mut c = cluster.connect("app");
            Some(std::thread::spawn(move || {
                c.batch_execute("SELECT * FROM retention.run()").unwrap();
            }))
        };
        // The application deletes the round's rows in a loop, ten at a time, until refused.
        let application = app_deletes.then(|| {
            let mut c = cluster.connect("app");
            let tenant = tenant.clone();
            std::thread::spawn(move || loop {
                match c.execute(
                    "DELETE FROM messages WHERE id IN
                       (SELECT id FROM messages WHERE tenant = $1 ORDER BY id DESC LIMIT 10)",
                    &[&tenant],
                ) {
                    Ok(0) => return None,
                    Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                    Err(e) => return e.code().map(|c| c.code().to_string()),
                }
            })
        });
        // Place the hold at a varying moment of the purge: for the worker, once it has started
        // on this round's rows (so the hold lands between its batches).
        if use_worker {
            let mut watcher = cluster.connect("app");
            wait_for(
                Duration::from_secs(10),
                "the worker to start on the round",
                || {
                    count(
                        &mut watcher,
                        &format!("SELECT count(*) FROM messages WHERE tenant = '{tenant}'"),
                    ) < rows
                },
            );
        }
        std::thread::sleep(Duration::from_micros((round as u64 * 7919) % 15_000));
        db.query_one(
            "SELECT retention.place_hold('race', tenant => $1, notify => false)",
            &[&tenant],
        )
        .unwrap();
        let after_hold = count(
            &mut db,
            &format!("SELECT count(*) FROM messages WHERE tenant = '{tenant}'"),
        );
        if let Some(p) = purger {
            p.join().unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        if let Some(a) = application {
            let refused = a.join().unwrap();
            if after_hold > 0 {
                assert_eq!(refused.as_deref(), Some("55006"), "round {round}");
            }
        }
        db.batch_execute("SELECT * FROM retention.run()").unwrap();
        let at_end = count(
            &mut db,
            &format!("SELECT count(*) FROM messages WHERE tenant = '{tenant}'"),
        );
        assert_eq!(
            at_end, after_hold,
            "round {round}: a held row was deleted after its hold committed"
        );
        let logged_after = count(
            &mut db,
            &format!(
                "SELECT count(*) FROM retention.deletion_log l
                  WHERE l.tenant = '{tenant}'
                    AND EXISTS (SELECT 1 FROM messages m WHERE m.id = (l.row_key->>'id')::bigint)"
            ),
        );
        assert_eq!(
            logged_after, 0,
            "round {round}: a logged row is still present"
        );
    }
}

fn race_cluster(name: &str) -> Cluster {
    let cluster = Cluster::start(
        name,
        &[
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
            "pg_retention.batch_size = 50",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SEED_CATEGORIES).unwrap();
    db.batch_execute(
        "CREATE TABLE messages (id bigserial PRIMARY KEY, tenant text NOT NULL, created_at timestamptz NOT NULL);
         CREATE INDEX ON messages (created_at);
         SELECT retention.manage('messages', 'conversations', created_column => 'created_at', tenant_column => 'tenant');",
    )
    .unwrap();
    cluster
}

#[test]
fn hold_placed_during_a_session_purge_never_loses_a_row() {
    let cluster = race_cluster("race-run");
    race_rounds(&cluster, 300, 400, false, false);
}

#[test]
fn hold_placed_during_worker_batches_never_loses_a_row() {
    let cluster = race_cluster("race-worker");
    race_rounds(&cluster, 40, 2000, true, false);
    let mut db = cluster.connect("app");
    assert!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.runs WHERE trigger = 'worker' AND rows_acted > 0"
        ) > 0
    );
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
}

/// Issue 13: a hold placed while the worker purges and the application deletes in a loop
/// loses nothing, from either side.
#[test]
fn hold_placed_while_the_worker_and_the_application_delete_never_loses_a_row() {
    let cluster = race_cluster("race-app");
    race_rounds(&cluster, 20, 2000, true, true);
}

/// A transaction that places a hold and then runs a cycle itself (as a test wrapped in one
/// transaction does) while the worker cycles: the worker gives way instead of deadlocking.
#[test]
fn a_transaction_holding_a_hold_can_run_while_the_worker_cycles() {
    let cluster = race_cluster("hold-then-run");
    let mut db = cluster.connect("app");
    // Due rows under a hold: every worker cycle runs batches (and takes the hold lock).
    db.batch_execute(
        "SELECT retention.place_hold('kept', tenant => 'kept');
         INSERT INTO messages (tenant, created_at)
         SELECT 'kept', now() - interval '2 years' FROM generate_series(1, 30)",
    )
    .unwrap();
    for round in 0..2 {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute(&format!(
            "SELECT retention.place_hold('round {round}', tenant => 'other');
             SELECT pg_sleep(3);"
        ))
        .unwrap();
        // The worker's cycle met the hold lock during the sleep, more than deadlock_timeout
        // (1 s) before this call: a waiting worker would make this call the deadlock victim.
        tx.batch_execute("SELECT * FROM retention.run()")
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        tx.commit().unwrap();
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM messages"), 30);
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention.holds"), 3);
    assert!(cluster
        .server_log()
        .contains("gave way to another transaction holding the hold or deletion-log lock"));
}

const PROJECTS: &str = "
    SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination',
                                     soft_delete_window => '30 days');
    CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, name text, deleted_at timestamptz);
    SELECT retention.manage('projects', 'projects', tenant_column => 'tenant', soft_delete_column => 'deleted_at');
    INSERT INTO projects VALUES (1, 'acme', 'apollo', NULL), (2, 'acme', 'gemini', NULL), (3, 'globex', 'mercury', NULL);
";

#[test]
fn a_customer_deleted_project_tells_its_whole_story() {
    let cluster = Cluster::start("story", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(PROJECTS).unwrap();

    let n = |db: &mut postgres::Client, sql: &str| db.query_one(sql, &[]).unwrap().get::<_, i64>(0);
    assert_eq!(
        n(
            &mut db,
            "SELECT retention.request_delete('projects', ARRAY[1])"
        ),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 1 AND deleted_at IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        n(&mut db, "SELECT retention.restore('projects', ARRAY[1])"),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 1 AND deleted_at IS NULL"
        ),
        1
    );
    assert_eq!(
        n(
            &mut db,
            "SELECT retention.request_delete('projects', ARRAY[1])"
        ),
        1
    );
    // Nothing is hard-deleted inside the window.
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM projects WHERE id = 1"),
        1
    );
    // The window passes (the test moves the stamp back instead of waiting 30 days).
    db.batch_execute("UPDATE projects SET deleted_at = now() - interval '31 days' WHERE id = 1")
        .unwrap();
    let err = db
        .query_one("SELECT retention.restore('projects', ARRAY[1])", &[])
        .unwrap_err();
    assert_eq!(
        err.code().unwrap().code(),
        "55000",
        "restore after the window: {err}"
    );
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM projects WHERE id = 1"),
        0
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM projects"), 2);

    let story: Vec<(String, String)> = db
        .query(
            "SELECT action, reason FROM retention.deletion_log WHERE row_key = '{\"id\": 1}' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        ("soft_delete", "customer_request"),
        ("restore", "customer_request"),
        ("soft_delete", "customer_request"),
        // The hard delete finishing the customer's soft delete keeps the customer's reason.
        ("hard_delete", "customer_request"),
    ]
    .iter()
    .map(|(a, r)| (a.to_string(), r.to_string()))
    .collect();
    assert_eq!(story, expected);
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
}

#[test]
fn queued_deletion_runs_when_the_hold_is_released_and_listeners_hear_of_holds() {
    // The queued deletion runs at the first cycle after the release (no grace).
    let cluster = Cluster::start(
        "queue",
        &[
            "pg_retention.enabled = off",
            "pg_retention.hold_release_grace = 0",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(PROJECTS).unwrap();
    let mut listener = cluster.connect("app");
    listener.batch_execute("LISTEN retention_hold").unwrap();

    let hold: i64 = db
        .query_one(
            "SELECT retention.place_hold('subpoena 42', tenant => 'acme')",
            &[],
        )
        .unwrap()
        .get(0);
    let heard: Vec<String> = listener
        .notifications()
        .timeout_iter(Duration::from_secs(5))
        .take(1)
        .map(|n| Ok(n.payload().to_string()))
        .collect()
        .unwrap();
    assert_eq!(heard.len(), 1, "LISTEN retention_hold hears the placement");
    let payload: serde_json::Value = serde_json::from_str(&heard[0]).unwrap();
    assert_eq!(payload["hold_id"], hold);
    assert_eq!(payload["action"], "placed");
    assert_eq!(payload["tenant"], "acme");

    // A customer deletion of a held row is queued, not executed.
    assert_eq!(
        db.query_one(
            "SELECT retention.request_delete('projects', ARRAY[2, 3])",
            &[]
        )
        .unwrap()
        .get::<_, i64>(0),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 2 AND deleted_at IS NULL"
        ),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 3 AND deleted_at IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.queued_deletions WHERE row_key = '{\"id\": 2}'"
        ),
        1
    );

    // A hold without notification writes nothing and sends nothing.
    db.query_one(
        "SELECT retention.place_hold('gag order', tenant => 'globex', notify => false)",
        &[],
    )
    .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.notifications"),
        1
    );

    db.execute("SELECT retention.release_hold($1, 'case closed')", &[&hold])
        .unwrap();
    // The next purge cycle (the worker's, or this one) executes the queued deletion.
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.queued_deletions"),
        1
    );
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 2 AND deleted_at IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.queued_deletions"),
        0
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE row_key = '{\"id\": 2}' AND action = 'soft_delete' AND reason = 'customer_request'"),
        1
    );
    let released: Vec<String> = listener
        .notifications()
        .timeout_iter(Duration::from_secs(5))
        .take(1)
        .map(|n| Ok(n.payload().to_string()))
        .collect()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&released[0]).unwrap();
    assert_eq!(payload["action"], "released");
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.notifications"),
        2
    );
    let stamped = count(&mut db, &format!(
        "SELECT count(*) FROM retention.holds WHERE id = {hold} AND released_by = current_user AND release_note = 'case closed'"));
    assert_eq!(stamped, 1);
}

/// Retention wins over deletion (issue 13): while a hold covers rows, neither the policy admin
/// (with the README's grants) nor the table's owner can remove them or move them out of the
/// hold, and an application deleting in a loop stops at the hold.
#[test]
fn no_path_escapes_a_hold() {
    // The worker is turned on once the hold is placed (see below).
    let cluster = Cluster::start(
        "escapes",
        &[
            "pg_retention.enabled = off",
            "pg_retention.database = 'app'",
            "pg_retention.naptime = 1",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN; CREATE ROLE owner LOGIN;
         SELECT retention.grant_policy_admin('admin');
         SELECT retention.define_category('c', '1 day');
         SELECT retention.define_category('short', '1 hour');
         CREATE TABLE public.items (id int PRIMARY KEY, tenant text, cat text,
                                    created_at timestamptz NOT NULL, body text);
         ALTER TABLE public.items OWNER TO owner;
         GRANT SELECT, UPDATE, DELETE ON public.items TO admin;
         INSERT INTO public.items SELECT i, CASE WHEN i <= 500 THEN 'held' ELSE 'free' END, NULL,
                                         now() - interval '2 days', 'x'
           FROM generate_series(1, 1000) i;",
    )
    .unwrap();
    let connect = |role: &str| {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(cluster.port)
            .user(role)
            .dbname("app")
            .connect(postgres::NoTls)
            .unwrap()
    };
    let mut admin = connect("admin");
    admin
        .batch_execute(
            "SELECT retention.manage('public.items', 'c', created_column => 'created_at',
                                     tenant_column => 'tenant', category_column => 'cat')",
        )
        .unwrap();
    // The application deletes 'held' rows ten at a time while legal places the hold.
    let mut app = connect("owner");
    let deleting = std::thread::spawn(move || {
        let mut refused = None;
        for _ in 0..100 {
            if let Err(e) = app.batch_execute(
                "DELETE FROM public.items WHERE id IN
                   (SELECT id FROM public.items WHERE tenant = 'held' ORDER BY id LIMIT 10)",
            ) {
                refused = e.code().map(|c| c.code().to_string());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        refused
    });
    std::thread::sleep(Duration::from_millis(20));
    db.batch_execute("SELECT retention.place_hold('subpoena', tenant => 'held', notify => false)")
        .unwrap();
    let held = count(
        &mut db,
        "SELECT count(*) FROM public.items WHERE tenant = 'held'",
    );
    let refused = deleting.join().unwrap();
    assert!(
        held > 0,
        "the hold came after every held row was gone; rerun"
    );
    assert_eq!(refused.as_deref(), Some("55006"));
    let mut owner = connect("owner");
    for (who, sql, expected) in [
        (
            "admin",
            "SELECT retention.unmanage('public.items')",
            "55006",
        ),
        // Managing it again, with fewer scope columns, needs unmanage() first.
        (
            "admin",
            "SELECT retention.manage('public.items', 'c', created_column => 'created_at')",
            "42710",
        ),
        (
            "admin",
            "UPDATE public.items SET cat = 'short' WHERE tenant = 'held'",
            "55006",
        ),
        (
            "admin",
            "UPDATE public.items SET tenant = 'free' WHERE tenant = 'held'",
            "55006",
        ),
        (
            "admin",
            "DELETE FROM public.items WHERE tenant = 'held'",
            "55006",
        ),
        ("owner", "TRUNCATE public.items", "55006"),
        ("owner", "DROP TABLE public.items", "55006"),
        (
            "owner",
            "DROP TRIGGER retention_hold_guard ON public.items",
            "55006",
        ),
        (
            "owner",
            "ALTER TABLE public.items DISABLE TRIGGER ALL",
            "55006",
        ),
        (
            "owner",
            "ALTER TABLE public.items DROP COLUMN tenant CASCADE",
            "2BP01",
        ),
        (
            "owner",
            "ALTER TABLE public.items RENAME COLUMN tenant TO customer",
            "2BP01",
        ),
        (
            "owner",
            "ALTER TABLE public.items ALTER COLUMN tenant TYPE text USING 'free'",
            "0A000",
        ),
        (
            "owner",
            "ALTER TABLE public.items ALTER COLUMN created_at TYPE timestamptz USING now()",
            "0A000",
        ),
        ("superuser", "DELETE FROM public.items", "55006"),
        (
            "superuser",
            "SET session_replication_role = replica; DELETE FROM public.items",
            "55006",
        ),
    ] {
        let client = match who {
            "admin" => &mut admin,
            "owner" => &mut owner,
            _ => &mut db,
        };
        let state = match client.batch_execute(sql) {
            Ok(()) => "00000".to_string(),
            Err(e) => e.code().map(|c| c.code().to_string()).unwrap_or_default(),
        };
        assert_eq!(state, expected, "{who}: {sql}");
    }
    db.batch_execute("RESET session_replication_role").unwrap();
    // The worker and run() pass.
    db.batch_execute("ALTER SYSTEM SET pg_retention.enabled = on")
        .unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(Duration::from_secs(30), "a worker cycle", || {
        count(
            &mut db,
            "SELECT count(*) FROM retention.runs WHERE trigger = 'worker' AND status = 'succeeded'",
        ) > 0
    });
    admin
        .batch_execute("SELECT * FROM retention.run()")
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM public.items WHERE tenant = 'held'"
        ),
        held
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM public.items WHERE tenant = 'free'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE tenant = 'held'"
        ),
        0
    );

    // Legal releases the hold with a grace of three seconds: it frees every held row, and
    // within the grace the worker, run() and a customer deletion leave them alone.
    db.batch_execute("SET pg_retention.hold_release_grace = '3s'")
        .unwrap();
    db.batch_execute("SELECT retention.release_hold(max(id), 'settled') FROM retention.holds")
        .unwrap();
    let freed = count(
        &mut db,
        "SELECT rows_freed FROM retention.holds ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(freed, held);
    let first: i32 = db
        .query_one("SELECT min(id) FROM public.items", &[])
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "SELECT * FROM retention.run(); SELECT retention.request_delete('public.items', ARRAY[{first}])"
        ))
        .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM public.items"), held);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.queued_deletions"),
        1
    );
    // After the grace, the normal paths proceed: the queued deletion and expiry, each logged once.
    // (The cycle marks the queue after its tables: wait for both, not for the rows alone.)
    wait_for(
        Duration::from_secs(30),
        "the rows and the queued deletion to go after the grace",
        || {
            count(&mut db, "SELECT count(*) FROM public.items") == 0
                && count(&mut db, "SELECT count(*) FROM retention.queued_deletions") == 0
        },
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE tenant = 'held'"
        ),
        held
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(DISTINCT row_key) FROM retention.deletion_log WHERE tenant = 'held'"
        ),
        held
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.queued_deletions"),
        0
    );
}
