//! The seed's whole policy on a seed-shaped schema, driven by the background worker: customer
//! termination, expiry, parent-bound history, anonymization of marketing contacts, and one
//! person's erasure request across every table. Asserts the exact rows left, the exact values
//! anonymized, and the log.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use std::time::Duration;

const SCHEMA: &str = "
    SELECT retention.define_category('project_data', '90 days', clock => 'event', event => 'termination');
    SELECT retention.define_category('project_history', '0', clock => 'parent');
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true);
    SELECT retention.define_category('support_records', '3 years', clock => 'last_activity');
    SELECT retention.define_category('marketing', '2 years', clock => 'last_activity', action => 'anonymize');

    CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, owner text, name text);
    CREATE TABLE project_snapshots (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects, tenant text, author text);
    CREATE TABLE conversations (id int PRIMARY KEY, tenant text, author text, created_at timestamptz NOT NULL, body text);
    CREATE TABLE audit_logs (id int PRIMARY KEY, tenant text, actor text, created_at timestamptz NOT NULL, event text);
    CREATE TABLE support_tickets (id int PRIMARY KEY, tenant text, requester text, last_activity_at timestamptz NOT NULL);
    CREATE TABLE marketing_contacts (id int PRIMARY KEY, email text, full_name text, phone text, last_engaged_at timestamptz NOT NULL);
    CREATE INDEX ON conversations (created_at); CREATE INDEX ON audit_logs (created_at);
    CREATE INDEX ON support_tickets (last_activity_at); CREATE INDEX ON marketing_contacts (last_engaged_at);

    SELECT retention.manage('projects', 'project_data', tenant_column => 'tenant', subject_column => 'owner');
    SELECT retention.manage('project_snapshots', 'project_history', tenant_column => 'tenant', subject_column => 'author');
    SELECT retention.manage('conversations', 'conversations', created_column => 'created_at', tenant_column => 'tenant', subject_column => 'author');
    SELECT retention.manage('audit_logs', 'audit_logs', created_column => 'created_at', tenant_column => 'tenant', subject_column => 'actor');
    SELECT retention.manage('support_tickets', 'support_records', activity_column => 'last_activity_at', tenant_column => 'tenant', subject_column => 'requester');
    SELECT retention.manage('marketing_contacts', 'marketing', activity_column => 'last_engaged_at', subject_column => 'email',
                            anonymize => '{\"email\": \"hash\", \"full_name\": null, \"phone\": \"000-000\"}');

    INSERT INTO projects VALUES (1, 'acme', 'ann@acme', 'apollo'), (2, 'acme', 'dan@acme', 'gemini'), (3, 'globex', 'eve@globex', 'mercury');
    INSERT INTO project_snapshots VALUES (10, 1, 'acme', 'ann@acme'), (11, 1, 'acme', 'dan@acme'), (20, 2, 'acme', 'dan@acme'), (30, 3, 'globex', 'eve@globex');
    INSERT INTO conversations VALUES
        (1, 'globex', 'eve@globex', now() - interval '2 years', 'old'),
        (2, 'globex', 'eve@globex', now() - interval '1 day', 'new'),
        (3, 'globex', 'fay@globex', now() - interval '1 day', 'new'),
        (4, 'globex', 'fay@globex', now() - interval '400 days', 'old');
    INSERT INTO audit_logs VALUES
        (1, 'globex', 'eve@globex', now() - interval '8 years', 'login'),
        (2, 'globex', 'eve@globex', now() - interval '1 year', 'login'),
        (3, 'globex', 'fay@globex', now() - interval '1 year', 'login');
    INSERT INTO support_tickets VALUES
        (1, 'globex', 'eve@globex', now() - interval '4 years'),
        (2, 'globex', 'eve@globex', now() - interval '2 years'),
        (3, 'globex', 'fay@globex', now() - interval '2 years');
    INSERT INTO marketing_contacts VALUES
        (1, 'old@lead.io', 'Old Lead', '555-0001', now() - interval '3 years'),
        (2, 'eve@globex', 'Eve G.', '555-0002', now() - interval '1 month'),
        (3, 'fay@globex', 'Fay G.', '555-0003', now() - interval '1 month');
";

fn ids(db: &mut postgres::Client, table: &str) -> Vec<i32> {
    db.query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn the_seed_policy_end_to_end() {
    let cluster = Cluster::start(
        "lifecycle",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(SCHEMA).unwrap();

    // Expiry: conversations > 1 year, audit logs > 7 years, tickets > 3 years; marketing
    // contacts > 2 years are anonymized, not deleted.
    wait_for(Duration::from_secs(30), "expiry", || {
        ids(&mut db, "support_tickets") == vec![2, 3]
    });
    wait_for(Duration::from_secs(30), "expiry of conversations", || {
        ids(&mut db, "conversations") == vec![2, 3]
    });
    assert_eq!(ids(&mut db, "audit_logs"), vec![2, 3]);
    wait_for(Duration::from_secs(30), "anonymization", || {
        count(&mut db, "SELECT count(*) FROM retention.anonymized_rows") == 1
    });
    let old: (String, Option<String>, String) = {
        let r = db
            .query_one(
                "SELECT email, full_name, phone FROM marketing_contacts WHERE id = 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let hashed: String = db
        .query_one("SELECT encode(sha256('old@lead.io'), 'hex')", &[])
        .unwrap()
        .get(0);
    assert_eq!(old, (hashed, None, "000-000".to_string()));
    assert_eq!(ids(&mut db, "marketing_contacts"), vec![1, 2, 3]);
    assert_eq!(
        ids(&mut db, "projects"),
        vec![1, 2, 3],
        "no termination yet: projects stay"
    );

    // Termination: acme left 100 days ago; its projects and their history go (history first).
    db.batch_execute(
        "SELECT retention.record_event('acme', 'termination', now() - interval '100 days')",
    )
    .unwrap();
    wait_for(Duration::from_secs(30), "acme's projects to go", || {
        ids(&mut db, "projects") == vec![3]
    });
    assert_eq!(ids(&mut db, "project_snapshots"), vec![30]);
    assert_eq!(count(&mut db, "SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.project_snapshots' AND reason = 'parent_deleted'"), 3);
    assert!(
        count(&mut db, "SELECT max(id) FROM retention.deletion_log WHERE table_name = 'public.project_snapshots'")
            < count(&mut db, "SELECT min(id) FROM retention.deletion_log WHERE table_name = 'public.projects'"),
        "history is deleted before its project"
    );

    // Before her erasure, Eve asks for a copy of her data (GDPR Art. 15): exactly her rows, in
    // every table with a subject column, the one under a hold included.
    db.batch_execute(
        "SET pg_retention.hold_release_grace = 0;
         SELECT retention.place_hold('audit', subject => 'eve@globex', tbl => 'audit_logs', notify => false)",
    )
    .unwrap();
    let export: i64 = db
        .query_one("SELECT retention.request_export('eve@globex')", &[])
        .unwrap()
        .get(0);
    db.execute("SELECT retention.verify_export($1)", &[&export])
        .unwrap();
    let exported: Vec<(String, String)> = db
        .query(
            "SELECT table_name, row_key::text FROM retention.export_data($1) ORDER BY 1, 2",
            &[&export],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        "public.audit_logs",
        "public.conversations",
        "public.marketing_contacts",
        "public.project_snapshots",
        "public.projects",
        "public.support_tickets",
    ]
    .iter()
    .zip(["2", "2", "2", "30", "3", "2"])
    .map(|(t, id)| (t.to_string(), format!("{{\"id\": {id}}}")))
    .collect();
    assert_eq!(exported, expected);
    db.batch_execute("SELECT retention.release_hold(max(id), 'copied') FROM retention.holds")
        .unwrap();

    // Eve asks globex (the controller) to erase her data; an audit log must stay (legal
    // obligation), her marketing contact is anonymized.
    let request: i64 = db
        .query_one(
            "SELECT retention.request_erasure('eve@globex', tenant => 'globex')",
            &[],
        )
        .unwrap()
        .get(0);
    db.execute("SELECT retention.verify_erasure($1)", &[&request])
        .unwrap();
    wait_for(Duration::from_secs(30), "the erasure to complete", || {
        count(&mut db, &format!("SELECT count(*) FROM retention.erasure_requests WHERE id = {request} AND status = 'completed'")) == 1
    });
    assert_eq!(
        ids(&mut db, "projects"),
        Vec::<i32>::new(),
        "eve owned project 3"
    );
    assert_eq!(
        ids(&mut db, "project_snapshots"),
        Vec::<i32>::new(),
        "its history went with it"
    );
    assert_eq!(ids(&mut db, "conversations"), vec![3]);
    assert_eq!(ids(&mut db, "support_tickets"), vec![3]);
    assert_eq!(
        ids(&mut db, "audit_logs"),
        vec![2, 3],
        "audit logs are erasure-exempt"
    );
    // The marketing table has no tenant column: a tenant-scoped request does not reach it.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM marketing_contacts WHERE id = 2 AND email = 'eve@globex'"
        ),
        1
    );
    let details: String = db
        .query_one(
            &format!("SELECT details::text FROM retention.erasure_requests WHERE id = {request}"),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        details.contains("erasure-exempt categories: audit_logs"),
        "{details}"
    );

    // A company-level request (no tenant) reaches the marketing table too.
    let request: i64 = db
        .query_one("SELECT retention.request_erasure('eve@globex')", &[])
        .unwrap()
        .get(0);
    db.execute("SELECT retention.verify_erasure($1)", &[&request])
        .unwrap();
    wait_for(Duration::from_secs(30), "the second erasure", || {
        count(&mut db, "SELECT count(*) FROM marketing_contacts WHERE id = 2 AND email <> 'eve@globex' AND full_name IS NULL") == 1
    });
    assert_eq!(ids(&mut db, "marketing_contacts"), vec![1, 2, 3]);

    // The log tells it all, and nothing but keys.
    let summary: Vec<(String, String, String, i64)> = db
        .query(
            "SELECT table_name, action, reason, count(*) FROM retention.deletion_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let expected: Vec<(String, String, String, i64)> = [
        ("public.audit_logs", "hard_delete", "expired", 1),
        ("public.conversations", "erasure", "erasure_request", 1),
        ("public.conversations", "hard_delete", "expired", 2),
        (
            "public.marketing_contacts",
            "anonymize",
            "erasure_request",
            1,
        ),
        ("public.marketing_contacts", "anonymize", "expired", 1),
        // Snapshot 30 is eve's own: erased directly; the other three went with their project.
        ("public.project_snapshots", "erasure", "erasure_request", 1),
        (
            "public.project_snapshots",
            "hard_delete",
            "parent_deleted",
            3,
        ),
        ("public.projects", "erasure", "erasure_request", 1),
        ("public.projects", "hard_delete", "expired", 2),
        ("public.support_tickets", "erasure", "erasure_request", 1),
        ("public.support_tickets", "hard_delete", "expired", 1),
    ]
    .iter()
    .map(|(t, a, r, n)| (t.to_string(), a.to_string(), r.to_string(), *n))
    .collect();
    assert_eq!(summary, expected);

    // What an auditor reads for the period: the same figures, counted from the log and the
    // records (two days around now, whatever the month).
    let totals: Vec<i64> = db
        .query_one(
            "SELECT sum(soft_deleted)::bigint, sum(hard_deleted)::bigint, sum(anonymized)::bigint,
                    sum(erased)::bigint, sum(restored)::bigint,
                    sum(erasures_received)::bigint, sum(erasures_on_time)::bigint,
                    sum(erasures_late)::bigint, sum(exports_received)::bigint,
                    sum(exports_on_time)::bigint, sum(holds_placed)::bigint,
                    sum(holds_released)::bigint, count(*) FILTER (WHERE NOT log_intact)
               FROM retention.evidence(now() - interval '1 day', now() + interval '1 day')
              WHERE category IS NULL",
            &[],
        )
        .map(|r| (0..13).map(|i| r.get::<_, i64>(i)).collect())
        .unwrap();
    assert_eq!(totals, vec![0, 9, 2, 5, 0, 2, 2, 0, 1, 1, 1, 1, 0]);
    let by_category: i64 = db
        .query_one(
            "SELECT sum(hard_deleted)::bigint FROM retention.evidence(now() - interval '1 day', now() + interval '1 day')
              WHERE category = 'project_history'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(by_category, 3);
    assert!(db
        .query_one("SELECT retention.verify_log()", &[])
        .unwrap()
        .get::<_, Option<i64>>(0)
        .is_none());
}
