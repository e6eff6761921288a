//! Least privilege and separation of duties, as real roles: PUBLIC can change nothing; a policy
//! admin cannot release a hold; legal cannot change policy; an auditor can read and verify
//! the log; nobody, owner included, can edit it.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;

fn sqlstate(client: &mut postgres::Client, sql: &str) -> String {
    match client.batch_execute(sql) {
        Ok(()) => "00000".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| format!("{e}")),
    }
}

#[test]
fn duties_are_separated() {
    // Legal's release frees the held row at once (no grace), for the last step.
    let cluster = Cluster::start(
        "privileges",
        &[
            "pg_retention.enabled = off",
            "pg_retention.hold_release_grace = 0",
        ],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE nobody LOGIN; CREATE ROLE policy LOGIN; CREATE ROLE counsel LOGIN; CREATE ROLE auditor LOGIN;
         SELECT retention.grant_policy_admin('policy');
         SELECT retention.grant_legal('counsel');
         SELECT retention.grant_auditor('auditor');
         CREATE TABLE chats (id int PRIMARY KEY, tenant text, created_at timestamptz);
         GRANT SELECT, UPDATE, DELETE ON chats TO policy;
         INSERT INTO chats VALUES (1, 'acme', now() - interval '2 years'), (2, 'globex', now() - interval '2 years');",
    )
    .unwrap();
    let as_role = |role: &str| -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(cluster.port)
            .user(role)
            .dbname("app")
            .connect(postgres::NoTls)
            .unwrap()
    };

    // PUBLIC: nothing that changes retention state.
    let mut nobody = as_role("nobody");
    for sql in [
        "SELECT retention.define_category('x', '1 day')",
        "SELECT retention.place_hold('x', tenant => 'a')",
        "SELECT * FROM retention.run()",
        "SELECT retention.request_erasure('a')",
        "SELECT * FROM retention.deletion_log",
        "SELECT retention.grant_policy_admin('nobody')",
    ] {
        assert_eq!(sqlstate(&mut nobody, sql), "42501", "PUBLIC: {sql}");
    }

    // The policy admin sets policy and purges, but holds are not theirs.
    let mut policy = as_role("policy");
    policy
        .batch_execute(
            "SELECT retention.define_category('conversations', '1 year');
             SELECT retention.manage('chats', 'conversations', created_column => 'created_at', tenant_column => 'tenant');",
        )
        .unwrap();

    // Legal places holds, but cannot change policy or purge.
    let mut counsel = as_role("counsel");
    let hold: i64 = counsel
        .query_one(
            "SELECT retention.place_hold('subpoena', tenant => 'acme')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        sqlstate(
            &mut counsel,
            "SELECT retention.define_category('conversations', '1 day')"
        ),
        "42501"
    );
    assert_eq!(
        sqlstate(&mut counsel, "SELECT * FROM retention.run()"),
        "42501"
    );
    assert_eq!(
        sqlstate(&mut counsel, "UPDATE retention.holds SET reason = 'x'"),
        "42501"
    );

    assert_eq!(
        sqlstate(
            &mut policy,
            &format!("SELECT retention.release_hold({hold}, 'mine now')")
        ),
        "42501"
    );
    assert_eq!(
        sqlstate(
            &mut policy,
            "UPDATE retention.holds SET released_at = now(), released_by = 'policy'"
        ),
        "42501"
    );
    policy
        .batch_execute("SELECT * FROM retention.run()")
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM chats"),
        1,
        "acme's row is held, globex's purged"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE actor = 'policy'"
        ),
        1
    );
    assert_eq!(
        sqlstate(
            &mut policy,
            "UPDATE retention.deletion_log SET tenant = 'x'"
        ),
        "42501"
    );
    assert_eq!(
        sqlstate(&mut policy, "DELETE FROM retention.deletion_log"),
        "42501"
    );

    // The auditor reads and verifies, and changes nothing.
    let mut auditor = as_role("auditor");
    assert!(auditor
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
    assert_eq!(
        count(&mut auditor, "SELECT count(*) FROM retention.export_log()"),
        1
    );
    assert_eq!(
        sqlstate(&mut auditor, "DELETE FROM retention.deletion_log"),
        "42501"
    );
    assert_eq!(
        sqlstate(
            &mut auditor,
            "SELECT retention.define_category('x', '1 day')"
        ),
        "42501"
    );

    // Each duty reads what it counts holds due for review with (hold_review_period(), called
    // by the views and evidence() as the reader): the held acme hold is not due yet.
    let status = "SELECT sum(holds_due_for_review)::bigint FROM retention.status
                   WHERE table_name IS NULL";
    for (role, sql) in [
        (
            "counsel",
            "SELECT count(*) FROM retention.holds_due_for_review",
        ),
        (
            "auditor",
            "SELECT count(*) FROM retention.holds_due_for_review",
        ),
        ("auditor", status),
        (
            "auditor",
            "SELECT sum(holds_overdue_for_review)::bigint
                       FROM retention.evidence(now() - interval '1 month', now())",
        ),
        ("policy", status),
    ] {
        let client = match role {
            "counsel" => &mut counsel,
            "auditor" => &mut auditor,
            _ => &mut policy,
        };
        assert_eq!(count(client, sql), 0, "{role}: {sql}");
    }

    // Nobody edits the log: not even its owner.
    assert_eq!(
        sqlstate(&mut db, "UPDATE retention.deletion_log SET tenant = 'x'"),
        "42501"
    );
    assert_eq!(
        sqlstate(&mut db, "TRUNCATE retention.deletion_log"),
        "42501"
    );

    // Legal releases; the next cycle may purge the row.
    counsel
        .execute("SELECT retention.release_hold($1, 'settled')", &[&hold])
        .unwrap();
    policy
        .batch_execute("SELECT * FROM retention.run()")
        .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM chats"), 0);
}

/// The extension's event trigger must not get in the way of anyone's DDL: a role with no rights
/// on `retention` creates and drops its own objects, and dropping a managed table it owns
/// unmanages the table.
#[test]
fn anyone_can_drop_their_own_objects() {
    let cluster = Cluster::start("dropping", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE plain LOGIN;
         CREATE SCHEMA plain AUTHORIZATION plain;
         SELECT retention.define_category('conversations', '1 year');
         CREATE TABLE plain.managed (id int PRIMARY KEY, created_at timestamptz);
         SELECT retention.manage('plain.managed', 'conversations', created_column => 'created_at');
         ALTER TABLE plain.managed OWNER TO plain;",
    )
    .unwrap();
    let mut plain = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user("plain")
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap();
    plain
        .batch_execute(
            "CREATE TABLE plain.t (id int, x int);
             ALTER TABLE plain.t DROP COLUMN x;
             CREATE INDEX t_id ON plain.t (id);
             DROP INDEX plain.t_id;
             DROP TABLE plain.t;
             CREATE TEMP TABLE scratch (id int);
             DROP TABLE scratch;",
        )
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.managed_tables"),
        1
    );
    plain.batch_execute("DROP TABLE plain.managed").unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.managed_tables"),
        0
    );
    assert_eq!(
        sqlstate(&mut plain, "SELECT count(*) FROM retention.managed_tables"),
        "42501",
        "the trigger's rights are not the role's"
    );
}
