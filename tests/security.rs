//! The trust model under attack, as ordinary roles would try it (issue 12): code a table's owner
//! controls runs as that owner, never as the worker's superuser or a calling duty; a policy
//! admin cannot manage a table it has no rights on; the worker's statements never resolve a
//! name through a search_path someone else set.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::time::Duration;

fn as_role(cluster: &Cluster, role: &str) -> Client {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(role)
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap()
}

fn sqlstate(client: &mut Client, sql: &str) -> String {
    match client.batch_execute(sql) {
        Ok(()) => "00000".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| format!("{e}")),
    }
}

/// Mallory owns a table whose BEFORE DELETE trigger records who runs it and with which
/// search_path, then tries to make her role a superuser and to write a server file.
fn mallory_table(cluster: &Cluster, db: &mut Client, file: &str) {
    db.batch_execute(
        "CREATE ROLE mallory LOGIN;
         CREATE SCHEMA mallory AUTHORIZATION mallory;
         SELECT retention.define_category('c', '1 day');",
    )
    .unwrap();
    let mut mallory = as_role(cluster, "mallory");
    mallory
        .batch_execute(&format!(
            "CREATE TABLE mallory.seen (who text, path text, outcome text);
             CREATE TABLE mallory.loot (id int PRIMARY KEY, created_at timestamptz NOT NULL);
             CREATE FUNCTION mallory.payload() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 BEGIN
                     EXECUTE 'ALTER ROLE mallory SUPERUSER';
                     INSERT INTO mallory.seen VALUES (current_user, current_setting('search_path'), 'superuser');
                 EXCEPTION WHEN OTHERS THEN
                     INSERT INTO mallory.seen VALUES (current_user, current_setting('search_path'), SQLSTATE);
                 END;
                 BEGIN
                     EXECUTE 'COPY (SELECT 1) TO ''{file}''';
                     INSERT INTO mallory.seen VALUES (current_user, '', 'file written');
                 EXCEPTION WHEN OTHERS THEN NULL;
                 END;
                 RETURN OLD;
             END $$;
             CREATE TRIGGER payload BEFORE DELETE ON mallory.loot FOR EACH ROW EXECUTE FUNCTION mallory.payload();
             INSERT INTO mallory.loot SELECT i, now() - interval '2 days' FROM generate_series(1, 5) i;"
        ))
        .unwrap();
    db.batch_execute(
        "SELECT retention.manage('mallory.loot', 'c', created_column => 'created_at')",
    )
    .unwrap();
}

fn assert_no_escalation(db: &mut Client, file: &str) {
    assert!(
        !db.query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'",
            &[]
        )
        .unwrap()
        .get::<_, bool>(0),
        "the owner's trigger made her a superuser"
    );
    assert!(
        !std::path::Path::new(file).exists(),
        "the owner's trigger wrote {file}"
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM mallory.seen WHERE outcome IN ('superuser', 'file written')"
        ),
        0
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM mallory.seen WHERE who <> 'mallory' OR path <> 'pg_catalog, pg_temp'"),
        0,
        "the trigger ran as someone else, or with another search_path"
    );
}

#[test]
fn the_worker_runs_an_owners_trigger_as_the_owner() {
    let cluster = Cluster::start(
        "sec-worker",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    let file = format!("/tmp/pgr-pwned-worker-{}", cluster.port);
    let _ = std::fs::remove_file(&file);
    mallory_table(&cluster, &mut db, &file);
    // The trigger fails its escalation and lets the delete go on: the worker purges.
    wait_for(
        Duration::from_secs(60),
        "the worker to purge mallory.loot",
        || count(&mut db, "SELECT count(*) FROM mallory.loot") == 0,
    );
    assert_no_escalation(&mut db, &file);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.seen WHERE outcome = '42501'"
        ),
        5
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'mallory.loot'"
        ),
        5
    );
}

#[test]
fn run_by_a_superuser_runs_an_owners_trigger_as_the_owner() {
    let cluster = Cluster::start("sec-run", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    let file = format!("/tmp/pgr-pwned-run-{}", cluster.port);
    let _ = std::fs::remove_file(&file);
    mallory_table(&cluster, &mut db, &file);
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.loot"), 0);
    assert_no_escalation(&mut db, &file);
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.seen"), 5);
    // request_delete too: new rows, deleted on request.
    db.batch_execute(
        "INSERT INTO mallory.loot VALUES (10, now()), (11, now());
         SELECT retention.request_delete('mallory.loot', ARRAY[10, 11]);",
    )
    .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.loot"), 0);
    assert_no_escalation(&mut db, &file);
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.seen"), 7);
}

#[test]
fn a_policy_admin_cannot_manage_what_it_cannot_delete() {
    let cluster = Cluster::start("sec-manage", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN; CREATE ROLE victim;
         SELECT retention.grant_policy_admin('admin');
         SELECT retention.define_category('c', '1 day');
         SELECT retention.define_category('hidden', '1 day', action => 'anonymize');
         CREATE SCHEMA private AUTHORIZATION victim;
         CREATE TABLE private.payroll (id int PRIMARY KEY, created_at timestamptz NOT NULL, salary int);
         ALTER TABLE private.payroll OWNER TO victim;
         CREATE TABLE public.notes (id int PRIMARY KEY, created_at timestamptz NOT NULL, body text);
         ALTER TABLE public.notes OWNER TO victim;
         INSERT INTO private.payroll VALUES (1, now() - interval '2 days', 100);",
    )
    .unwrap();
    let payroll_oid: i64 = count(&mut db, "SELECT 'private.payroll'::regclass::oid::bigint");
    let mut admin = as_role(&cluster, "admin");
    // No rights on the table, no USAGE on its schema (reached by OID): refused.
    for sql in [
        format!("SELECT retention.manage({payroll_oid}::oid::regclass, 'c', created_column => 'created_at')"),
        "SELECT retention.manage('public.notes', 'c', created_column => 'created_at')".into(),
    ] {
        assert_eq!(sqlstate(&mut admin, &sql), "42501", "{sql}");
    }
    // System catalogs and the extension's own tables, by any name.
    for sql in [
        "SELECT retention.manage('pg_catalog.pg_authid', 'c')",
        "SELECT retention.manage('retention.log_anchor', 'c')",
        "SELECT retention.manage('pg_authid'::regclass::oid::regclass, 'c')",
    ] {
        assert_ne!(sqlstate(&mut admin, sql), "00000", "{sql}");
    }
    // DELETE alone is enough for a deleting category, not for an anonymizing one.
    db.batch_execute("GRANT SELECT, DELETE ON public.notes TO admin")
        .unwrap();
    assert_eq!(
        sqlstate(&mut admin, "SELECT retention.manage('public.notes', 'hidden', created_column => 'created_at', anonymize => '{\"body\": null}')"),
        "42501"
    );
    assert_eq!(
        sqlstate(
            &mut admin,
            "SELECT retention.manage('public.notes', 'c', created_column => 'created_at')"
        ),
        "00000"
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.managed_tables"),
        1
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM private.payroll"), 1);
}

#[test]
fn the_worker_ignores_a_planted_search_path() {
    let mut cluster = Cluster::start(
        "sec-path",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE SCHEMA evil;
         CREATE TABLE evil.calls (who text);
         GRANT ALL ON SCHEMA evil TO PUBLIC; GRANT ALL ON evil.calls TO PUBLIC;
         CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql VOLATILE AS
             $$ INSERT INTO evil.calls VALUES (current_user); SELECT pg_catalog.now() $$;
         CREATE FUNCTION evil.array_agg(anyelement) RETURNS anyarray LANGUAGE sql VOLATILE AS
             $$ INSERT INTO evil.calls VALUES (current_user); SELECT ARRAY[$1] $$;
         ALTER DATABASE app SET search_path = evil, pg_catalog, public;
         SELECT retention.define_category('c', '1 day');
         CREATE TABLE public.items (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         SELECT retention.manage('public.items', 'c', created_column => 'created_at');",
    )
    .unwrap();
    // The worker reads the database's settings when it connects: restart it.
    cluster.restart();
    let mut db = cluster.wait_connect("app", Duration::from_secs(30));
    db.batch_execute(
        "INSERT INTO public.items SELECT i, pg_catalog.now() - interval '2 days' FROM generate_series(1, 20) i",
    )
    .unwrap();
    wait_for(Duration::from_secs(60), "the worker to purge items", || {
        count(&mut db, "SELECT count(*) FROM public.items") == 0
    });
    assert_eq!(count(&mut db, "SELECT count(*) FROM evil.calls"), 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.items' AND row_key ? 'id'"),
        20
    );
}

#[test]
fn a_role_with_no_grants_cannot_stop_the_worker_with_advisory_locks() {
    let cluster = Cluster::start(
        "sec-locks",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE squatter LOGIN;
         SELECT retention.define_category('c', '1 day');
         CREATE TABLE items (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         SELECT retention.manage('items', 'c', created_column => 'created_at');",
    )
    .unwrap();
    // The squatter takes every advisory lock 0.2.0 used, session-level and exclusive, and
    // keeps them for the whole test.
    let mut squatter = as_role(&cluster, "squatter");
    squatter
        .batch_execute(
            "SELECT pg_advisory_lock(1380275278, k) FROM generate_series(0, 3) k;
             SELECT pg_advisory_lock(1380275278)",
        )
        .unwrap();
    db.batch_execute(
        "INSERT INTO items SELECT i, now() - interval '2 days' FROM generate_series(1, 50) i",
    )
    .unwrap();
    wait_for(Duration::from_secs(60), "the worker to purge items", || {
        count(&mut db, "SELECT count(*) FROM items") == 0
    });
    // A hold, run() and a customer deletion do not wait for the squatter either.
    db.batch_execute(
        "SET lock_timeout = '5s';
         SELECT retention.place_hold('subpoena', tenant => 'acme', notify => false);
         INSERT INTO items VALUES (100, now());
         SELECT retention.request_delete('items', ARRAY[100]);
         SELECT * FROM retention.run();",
    )
    .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM items"), 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        51
    );
    assert_eq!(
        count(
            &mut squatter,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ),
        5
    );
}

#[test]
fn a_deferrable_trigger_keeps_its_table_from_being_purged() {
    let cluster = Cluster::start("sec-deferred", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    let file = format!("/tmp/pgr-pwned-deferred-{}", cluster.port);
    let _ = std::fs::remove_file(&file);
    mallory_table(&cluster, &mut db, &file);
    // At commit, the purge is no longer the owner: such a trigger would run as the caller.
    as_role(&cluster, "mallory")
        .batch_execute(
            "CREATE CONSTRAINT TRIGGER later AFTER DELETE ON mallory.loot
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.payload();",
        )
        .unwrap();
    let error: Option<String> = db
        .query_one(
            "SELECT error FROM retention.run() WHERE table_name = 'mallory.loot'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(error.unwrap_or_default().contains("deferrable"));
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.loot"), 5);
    assert_no_escalation(&mut db, &file);
    assert_eq!(count(&mut db, "SELECT count(*) FROM mallory.seen"), 0);
}

/// Functions are the only door: no duty writes a retention table directly, and what the
/// functions write is stamped with the calling role.
#[test]
fn no_duty_writes_a_retention_table_except_through_a_function() {
    let cluster = Cluster::start("sec-doors", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN; CREATE ROLE counsel LOGIN;
         SELECT retention.grant_policy_admin('admin');
         SELECT retention.grant_legal('counsel');
         CREATE TABLE chats (id int PRIMARY KEY, tenant text, author text, created_at timestamptz NOT NULL);
         GRANT SELECT, DELETE ON chats TO admin;
         INSERT INTO chats VALUES (1, 'acme', 'bob', now() - interval '2 days'),
                                  (2, 'acme', 'eve', now());",
    )
    .unwrap();
    let mut admin = as_role(&cluster, "admin");
    let mut counsel = as_role(&cluster, "counsel");
    admin
        .batch_execute(
            "SELECT retention.define_category('c', '1 day');
             SELECT retention.manage('chats', 'c', created_column => 'created_at',
                                     tenant_column => 'tenant', subject_column => 'author');",
        )
        .unwrap();
    for sql in [
        "INSERT INTO retention.managed_tables (tbl, category, key_columns) VALUES ('pg_authid', 'c', '{oid}')",
        "UPDATE retention.managed_tables SET category = 'c'",
        "INSERT INTO retention.category_definitions (name, retain_for, clock, action) VALUES ('deletion_log', '0', 'created', 'delete')",
        "INSERT INTO retention.deletion_log (id, action, table_name, row_key, actor, hash) VALUES (1, 'hard_delete', 'x', '{}', 'x', '\\x00')",
        "DELETE FROM retention.log_anchor",
        "UPDATE retention.erasure_records SET status = 'completed'",
        "INSERT INTO retention.deletion_queue (tbl, row_key, reason) VALUES ('chats', '{\"id\": 2}', 'x')",
        "UPDATE retention.runs SET status = 'succeeded'",
    ] {
        assert_eq!(sqlstate(&mut admin, sql), "42501", "policy admin: {sql}");
    }
    for sql in [
        "INSERT INTO retention.holds (reason, tenant, placed_by, placed_at) VALUES ('forged', 'acme', 'ceo', now() - interval '1 year')",
        "UPDATE retention.holds SET released_at = now()",
        "INSERT INTO retention.notifications (hold_id, payload) VALUES (1, '{}')",
    ] {
        assert_eq!(sqlstate(&mut counsel, sql), "42501", "legal: {sql}");
    }
    // The functions still work for their duties, and stamp the caller.
    counsel
        .batch_execute("SELECT retention.place_hold('subpoena', subject => 'eve', notify => false)")
        .unwrap();
    let request: i64 = admin
        .query_one("SELECT retention.request_erasure('bob')", &[])
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "SELECT retention.verify_erasure({request}); SELECT * FROM retention.run()"
        ))
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM chats"),
        1,
        "eve's row is held"
    );
    for (sql, who) in [
        ("SELECT placed_by::text FROM retention.holds", "counsel"),
        (
            "SELECT managed_by::text FROM retention.managed_tables",
            "admin",
        ),
        (
            "SELECT requested_by::text || verified_by::text FROM retention.erasure_records",
            "adminadmin",
        ),
        (
            "SELECT DISTINCT actor::text FROM retention.deletion_log",
            "admin",
        ),
        ("SELECT DISTINCT actor::text FROM retention.runs", "admin"),
    ] {
        let found: String = db.query_one(sql, &[]).unwrap().get(0);
        assert_eq!(found, who, "{sql}");
    }
}

/// A table whose manager lost its rights, or whose DELETEs a rule rewrites, is not purged.
#[test]
fn the_purge_rechecks_rights_and_refuses_rules() {
    let cluster = Cluster::start("sec-recheck", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN;
         SELECT retention.grant_policy_admin('admin');
         SELECT retention.define_category('c', '1 day');
         CREATE TABLE revoked (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         CREATE TABLE rewritten (id int PRIMARY KEY, created_at timestamptz NOT NULL);
         GRANT SELECT, DELETE ON revoked, rewritten TO admin;
         INSERT INTO revoked SELECT i, now() - interval '2 days' FROM generate_series(1, 3) i;
         INSERT INTO rewritten SELECT i, now() - interval '2 days' FROM generate_series(1, 3) i;",
    )
    .unwrap();
    as_role(&cluster, "admin")
        .batch_execute(
            "SELECT retention.manage('revoked', 'c', created_column => 'created_at');
             SELECT retention.manage('rewritten', 'c', created_column => 'created_at');",
        )
        .unwrap();
    db.batch_execute(
        "REVOKE DELETE ON revoked FROM admin;
         CREATE RULE keep AS ON DELETE TO rewritten DO INSTEAD NOTHING;",
    )
    .unwrap();
    let errors: Vec<(String, String)> = db
        .query(
            "SELECT table_name, error FROM retention.run() WHERE error IS NOT NULL ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].1.contains("permission denied"), "{errors:?}");
    assert!(errors[1].1.contains("rule keep"), "{errors:?}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM revoked"), 3);
    assert_eq!(count(&mut db, "SELECT count(*) FROM rewritten"), 3);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        0
    );
}

/// One broken table delays only its own part of an erasure: other tables, and other requests,
/// complete.
#[test]
fn a_broken_table_does_not_stall_other_erasures() {
    let cluster = Cluster::start("sec-erasure", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "SELECT retention.define_category('c', '1 year');
         CREATE TABLE broken (id int PRIMARY KEY, author text, created_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE fine (id int PRIMARY KEY, author text, created_at timestamptz NOT NULL DEFAULT now());
         SELECT retention.manage('broken', 'c', created_column => 'created_at', subject_column => 'author');
         SELECT retention.manage('fine', 'c', created_column => 'created_at', subject_column => 'author');
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'broken on purpose'; END $$;
         CREATE TRIGGER refuse BEFORE DELETE ON broken FOR EACH ROW EXECUTE FUNCTION refuse();
         INSERT INTO broken VALUES (1, 'bob');
         INSERT INTO fine VALUES (1, 'bob'), (2, 'carol');",
    )
    .unwrap();
    let bob = count(&mut db, "SELECT retention.request_erasure('bob')");
    let carol = count(&mut db, "SELECT retention.request_erasure('carol')");
    db.batch_execute(&format!(
        "SELECT retention.verify_erasure({bob}); SELECT retention.verify_erasure({carol});"
    ))
    .unwrap();
    db.batch_execute("SELECT * FROM retention.run()").unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM fine"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM broken"), 1);
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {carol} AND status = 'completed'")),
        1
    );
    assert_eq!(
        count(
            &mut db,
            &format!(
                "SELECT count(*) FROM retention.erasure_requests
              WHERE id = {bob} AND status = 'verified' AND rows_erased = 1
                AND details @> '[{{\"table\": \"public.broken\"}}]'
                AND details::text LIKE '%broken on purpose%'"
            )
        ),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        2
    );
}

/// The audit trail has a floor: a policy admin cannot shorten the log's own retention, and
/// nobody can take it below `pg_retention.log_floor_days`.
#[test]
fn the_log_cannot_be_shortened_by_the_policy_admin() {
    let cluster = Cluster::start("sec-log-floor", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN; CREATE ROLE counsel LOGIN;
         SELECT retention.grant_policy_admin('admin');
         SELECT retention.grant_policy_admin('counsel'); SELECT retention.grant_legal('counsel');",
    )
    .unwrap();
    let mut admin = as_role(&cluster, "admin");
    for (sql, state) in [
        (
            "SELECT retention.define_category('deletion_log', '0')",
            "22023",
        ),
        (
            "SELECT retention.define_category('deletion_log', '1 day')",
            "22023",
        ),
        (
            "SELECT retention.define_category('deletion_log', '2 years')",
            "42501",
        ),
        (
            "SELECT retention.define_category('deletion_log', '10 years')",
            "00000",
        ),
    ] {
        assert_eq!(sqlstate(&mut admin, sql), state, "{sql}");
    }
    let mut counsel = as_role(&cluster, "counsel");
    assert_eq!(
        sqlstate(
            &mut counsel,
            "SELECT retention.define_category('deletion_log', '1 day')"
        ),
        "22023"
    );
    assert_eq!(
        sqlstate(
            &mut counsel,
            "SELECT retention.define_category('deletion_log', '2 years')"
        ),
        "00000"
    );
    let stamped: String = db
        .query_one(
            "SELECT retain_for::text || ' by ' || updated_by FROM retention.category_definitions WHERE name = 'deletion_log'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stamped, "2 years by counsel");
}

/// `tag_where` selects with the caller's condition as the caller, and tags as the owner: the
/// owner's triggers never run with the policy admin's duty.
#[test]
fn tag_where_fires_the_owners_triggers_as_the_owner() {
    let cluster = Cluster::start("sec-tag-where", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE admin LOGIN; CREATE ROLE mallory LOGIN;
         SELECT retention.grant_policy_admin('admin');
         CREATE SCHEMA mallory AUTHORIZATION mallory;
         SELECT retention.define_category('c', '1 year');
         SELECT retention.define_category('other', '2 years');",
    )
    .unwrap();
    as_role(&cluster, "mallory")
        .batch_execute(
            "CREATE TABLE mallory.notes (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),
                                         cat text, body text);
             CREATE TABLE mallory.seen (who text);
             CREATE FUNCTION mallory.spy() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO mallory.seen VALUES (current_user);
                 BEGIN
                     PERFORM retention.drop_category('other');
                 EXCEPTION WHEN OTHERS THEN NULL;
                 END;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER spy BEFORE UPDATE ON mallory.notes FOR EACH ROW EXECUTE FUNCTION mallory.spy();
             INSERT INTO mallory.notes (id, body) VALUES (1, 'a'), (2, 'b');
             GRANT USAGE ON SCHEMA mallory TO admin;
             GRANT SELECT, UPDATE, DELETE ON mallory.notes TO admin;",
        )
        .unwrap();
    let mut admin = as_role(&cluster, "admin");
    admin
        .batch_execute(
            "SELECT retention.manage('mallory.notes', 'c', created_column => 'created_at', category_column => 'cat');
             SELECT retention.tag_where('mallory.notes', 'other', 'body = ''a''');
             SELECT retention.tag('mallory.notes', 'other', ARRAY[2]);",
        )
        .unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.notes WHERE cat = 'other'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.seen WHERE who = 'mallory'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.seen WHERE who <> 'mallory'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.categories WHERE name = 'other'"
        ),
        1,
        "the owner's trigger could not use the admin's duty"
    );
}

/// A SQL_ASCII database can hold bytes that are no text: the extension refuses to be installed
/// there (0A000) rather than fail inside a purge.
#[test]
fn a_sql_ascii_database_is_refused_at_install() {
    let cluster = Cluster::start("sec-ascii", &["pg_retention.enabled = off"]);
    cluster
        .connect("postgres")
        .batch_execute(
            "CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        )
        .unwrap();
    let mut ascii = cluster.connect("ascii");
    assert_eq!(
        sqlstate(&mut ascii, "CREATE EXTENSION pg_retention"),
        "0A000"
    );
    assert_eq!(
        count(
            &mut ascii,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'retention'"
        ),
        0
    );
}

/// The same escalation through a domain CHECK the owner wrote, evaluated when the worker
/// anonymizes a column of that domain: it runs as the owner too.
#[test]
fn an_owners_domain_check_runs_as_the_owner_when_anonymizing() {
    let cluster = Cluster::start(
        "sec-domain",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE mallory LOGIN;
         CREATE SCHEMA mallory AUTHORIZATION mallory;
         SELECT retention.define_category('hidden', '1 day', action => 'anonymize');",
    )
    .unwrap();
    as_role(&cluster, "mallory")
        .batch_execute(
            "CREATE TABLE mallory.seen (who text, outcome text);
             CREATE FUNCTION mallory.check(v text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
             BEGIN
                 BEGIN
                     EXECUTE 'ALTER ROLE mallory SUPERUSER';
                     INSERT INTO mallory.seen VALUES (current_user, 'superuser');
                 EXCEPTION WHEN OTHERS THEN
                     INSERT INTO mallory.seen VALUES (current_user, SQLSTATE);
                 END;
                 RETURN true;
             END $$;
             CREATE DOMAIN mallory.email AS text CHECK (mallory.check(VALUE));
             CREATE TABLE mallory.contacts (id int PRIMARY KEY, email mallory.email,
                                            created_at timestamptz NOT NULL);
             INSERT INTO mallory.contacts VALUES (1, 'a@example.com', now() - interval '2 days');
             TRUNCATE mallory.seen;",
        )
        .unwrap();
    db.batch_execute(
        "SELECT retention.manage('mallory.contacts', 'hidden', created_column => 'created_at',
                                 anonymize => '{\"email\": \"redacted\"}')",
    )
    .unwrap();
    wait_for(Duration::from_secs(60), "the worker to anonymize", || {
        count(
            &mut db,
            "SELECT count(*) FROM mallory.contacts WHERE email = 'redacted'",
        ) == 1
    });
    assert!(!db
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'",
            &[]
        )
        .unwrap()
        .get::<_, bool>(0));
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.seen WHERE outcome = 'superuser'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM mallory.seen WHERE who <> 'mallory'"
        ),
        0
    );
    assert!(
        count(&mut db, "SELECT count(*) FROM mallory.seen") > 0,
        "the check ran"
    );
}
