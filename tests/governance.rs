//! Governance controls against a real server with the worker preloaded (issue 17): a locked
//! category nobody shortens and whose rows leave exactly at their due time; per-path
//! soft-delete windows (a customer's deletion recoverable 30 days, a termination 90); and
//! disposition review, decided by real roles, the approval carried into the log.
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

fn state(client: &mut Client, sql: &str) -> String {
    sqlstate_of(client, sql).unwrap_or_else(|| "00000".into())
}

/// The worker's cycles (naptime 1 s) have run at least twice more than now.
fn two_more_cycles(db: &mut Client) {
    let seen = count(
        db,
        "SELECT count(*) FROM retention.runs WHERE status <> 'running'",
    );
    wait_for(Duration::from_secs(30), "two more worker cycles", || {
        count(
            db,
            "SELECT count(*) FROM retention.runs WHERE status <> 'running'",
        ) >= seen + 2
    });
}

#[test]
fn a_locked_category_is_never_shortened_and_its_rows_leave_exactly_when_due() {
    let cluster = Cluster::start(
        "governance-lock",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE policy LOGIN; CREATE ROLE counsel LOGIN;
         SELECT retention.grant_policy_admin('policy');
         SELECT retention.grant_legal('counsel');
         SELECT retention.define_category('audit_logs', '7 years');
         CREATE TABLE audit_logs (id int PRIMARY KEY, actor text, created_at timestamptz NOT NULL);
         CREATE INDEX ON audit_logs (created_at);
         GRANT SELECT, UPDATE, DELETE ON audit_logs TO policy;
         SELECT retention.manage('audit_logs', 'audit_logs', created_column => 'created_at',
                                 subject_column => 'actor');
         -- Row 1 is due in 4 seconds; rows 2 and 3 in years.
         INSERT INTO audit_logs VALUES
             (1, 'ann', now() - interval '7 years' + interval '4 seconds'),
             (2, 'ann', now() - interval '1 year'), (3, 'bob', now());",
    )
    .unwrap();
    let mut counsel = as_role(&cluster, "counsel");
    counsel
        .batch_execute("SELECT retention.lock_category('audit_logs')")
        .unwrap();

    // Shortening, by the policy admin and by a superuser, through the functions.
    let mut policy = as_role(&cluster, "policy");
    for client in [&mut policy, &mut db] {
        for sql in [
            "SELECT retention.define_category('audit_logs', '1 day')",
            "SELECT retention.define_category('audit_logs', '6 years 11 mons')",
            "SELECT retention.set_tenant_policy('acme', 'audit_logs', '30 days')",
        ] {
            assert_eq!(state(client, sql), "42501", "{sql}");
        }
    }
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.categories WHERE name = 'audit_logs' AND retain_for = '7 years' AND locked"),
        1
    );
    // request_delete refuses; an erasure request counts the rows exempt, with the reason.
    assert_eq!(
        state(
            &mut policy,
            "SELECT retention.request_delete('audit_logs', ARRAY[2])"
        ),
        "55006"
    );
    db.batch_execute(
        "SELECT retention.request_erasure('ann'); SELECT retention.verify_erasure(1);",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the erasure request to complete",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM retention.erasure_requests WHERE status = 'completed'",
            ) == 1
        },
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT rows_exempt FROM retention.erasure_requests WHERE id = 1"
        ),
        2
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.erasure_requests WHERE id = 1 AND details::text LIKE '%locked%'"),
        1
    );
    let due: String = db
        .query_one(
            "SELECT (created_at + interval '7 years')::text FROM audit_logs WHERE id = 1",
            &[],
        )
        .unwrap()
        .get(0);
    // Before its due time nobody removes row 1, not even a superuser's DELETE.
    assert_eq!(
        state(&mut db, "DELETE FROM audit_logs WHERE id = 1"),
        "55006"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM audit_logs"), 3);
    // At its due time, the worker removes it by expiry, and nothing else.
    wait_for(Duration::from_secs(30), "row 1 to expire", || {
        count(&mut db, "SELECT count(*) FROM audit_logs WHERE id = 1") == 0
    });
    // Removed at its due time: not before, and within a few worker cycles after.
    assert_eq!(
        count(
            &mut db,
            &format!(
                "SELECT count(*) FROM retention.deletion_log
                         WHERE table_name = 'public.audit_logs' AND row_key = '{{\"id\": 1}}'
                           AND action = 'hard_delete' AND reason = 'expired'
                           AND logged_at >= '{due}'::timestamptz
                           AND logged_at < '{due}'::timestamptz + interval '10 seconds'"
            )
        ),
        1
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM audit_logs"), 2);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        1
    );
}

#[test]
fn a_customer_deletion_is_final_after_30_days_a_termination_after_90() {
    let cluster = Cluster::start(
        "governance-windows",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "SELECT retention.define_category('project_data', '0', clock => 'event', event => 'termination',
                 soft_delete_windows => '{\"customer_request\": \"30 days\", \"expired\": \"90 days\"}');
         CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
         SELECT retention.manage('projects', 'project_data', tenant_column => 'tenant',
                                 soft_delete_column => 'deleted_at');
         INSERT INTO projects VALUES (1, 'acme', NULL), (2, 'acme', NULL), (3, 'globex', NULL);
         SELECT retention.request_delete('projects', ARRAY[1]);
         SELECT retention.record_event('globex', 'termination', now());",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the terminated project's soft delete",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM projects WHERE id = 3 AND deleted_at IS NOT NULL",
            ) == 1
        },
    );
    // Time passes: both soft deletes are `days` old.
    let age = |db: &mut Client, days: i32| {
        db.batch_execute(&format!(
            "UPDATE projects SET deleted_at = date_trunc('second', now()) - interval '{days} days'
              WHERE deleted_at IS NOT NULL"
        ))
        .unwrap();
        two_more_cycles(db);
    };
    age(&mut db, 29);
    assert_eq!(count(&mut db, "SELECT count(*) FROM projects"), 3);
    age(&mut db, 31);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM projects WHERE id = 1"),
        0
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM projects"), 2);
    age(&mut db, 89);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM projects WHERE id = 3"),
        1
    );
    age(&mut db, 91);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM projects WHERE id = 3"),
        0
    );
    // Project 2 was never deleted; each removal is logged once, under its path's reason.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM projects WHERE id = 2 AND deleted_at IS NULL"
        ),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete' AND row_key = '{\"id\": 1}' AND reason = 'customer_request'"),
        1
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete' AND row_key = '{\"id\": 3}' AND reason = 'expired'"),
        1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete'"
        ),
        2
    );
    assert_eq!(
        count(&mut db, "SELECT coalesce(retention.verify_log(), 0)"),
        0
    );
}

#[test]
fn reviewed_rows_wait_for_a_member_of_the_reviewing_role() {
    let cluster = Cluster::start(
        "governance-review",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE records_office; CREATE ROLE rita LOGIN IN ROLE records_office;
         CREATE ROLE bob LOGIN; CREATE ROLE policy LOGIN;
         SELECT retention.grant_policy_admin('policy');
         SELECT retention.define_category('contracts', '6 years', review => 'records_office');
         CREATE TABLE contracts (id int PRIMARY KEY, tenant text, signed_at timestamptz NOT NULL);
         SELECT retention.manage('contracts', 'contracts', created_column => 'signed_at',
                                 tenant_column => 'tenant');
         INSERT INTO contracts VALUES
             (1, 'acme', now() - interval '7 years'), (2, 'acme', now() - interval '7 years'),
             (3, 'globex', now() - interval '7 years'), (4, 'globex', now());",
    )
    .unwrap();
    wait_for(Duration::from_secs(30), "two batches in the queue", || {
        count(
            &mut db,
            "SELECT count(*) FROM retention.disposition_batches WHERE status = 'pending'",
        ) == 2
    });
    two_more_cycles(&mut db);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM contracts"),
        4,
        "reviewed rows wait"
    );

    let mut rita = as_role(&cluster, "rita");
    let mut bob = as_role(&cluster, "bob");
    let mut policy = as_role(&cluster, "policy");
    // Each role sees the batches it may decide; nobody writes the records directly.
    assert_eq!(
        count(
            &mut rita,
            "SELECT count(*) FROM retention.disposition_queue"
        ),
        2
    );
    assert_eq!(
        count(&mut bob, "SELECT count(*) FROM retention.disposition_queue"),
        0
    );
    let acme = count(
        &mut db,
        "SELECT id FROM retention.disposition_batches WHERE tenant = 'acme'",
    );
    let globex = count(
        &mut db,
        "SELECT id FROM retention.disposition_batches WHERE tenant = 'globex'",
    );
    for (client, who) in [(&mut bob, "bob"), (&mut policy, "policy")] {
        assert_eq!(
            state(
                client,
                &format!("SELECT retention.approve_disposition({acme})")
            ),
            "42501",
            "{who}"
        );
        assert_eq!(
            state(client, &format!("UPDATE retention.disposition_batches SET status = 'approved' WHERE id = {acme}")),
            "42501",
            "{who}"
        );
    }
    rita.batch_execute(&format!(
        "SELECT retention.approve_disposition({acme}, 'register checked');
         SELECT retention.reject_disposition({globex}, 'claim open', '1 year');"
    ))
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the approved batch to be purged",
        || {
            count(
                &mut db,
                "SELECT count(*) FROM contracts WHERE tenant = 'acme'",
            ) == 0
        },
    );
    two_more_cycles(&mut db);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM contracts WHERE tenant = 'globex'"
        ),
        2
    );
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.deletion_log WHERE approval_id = {acme} AND table_name = 'public.contracts'")),
        2
    );
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM retention.deletion_log"),
        2
    );
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.disposition_batches WHERE id = {acme} AND decided_by = 'rita' AND note = 'register checked' AND closed_at IS NOT NULL")),
        1
    );
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.disposition_batches WHERE id = {globex} AND status = 'rejected' AND closed_at IS NULL AND keep_until > now() + interval '364 days'")),
        1
    );
    // The export carries the approval, as the hash does.
    assert_eq!(
        count(&mut db, &format!("SELECT count(*) FROM retention.export_log() e WHERE (e::jsonb ->> 'approval_id')::bigint = {acme}")),
        2
    );
    assert_eq!(
        count(&mut db, "SELECT coalesce(retention.verify_log(), 0)"),
        0
    );
}
