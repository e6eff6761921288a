//! `ALTER EXTENSION pg_retention UPDATE` from the oldest release, 0.1.0, through every later one
//! (0.1.0 → 0.2.0 → 0.3.0 → 0.4.0 → 0.5.0 → 0.6.0 → 0.7.0), and from the previous release, 0.6.0.
//!
//! The released 0.1.0 install script (tests/fixtures/, installed next to the current scripts by
//! scripts/test.sh) creates a database as 0.1.0 left it. This library then meets it the way it
//! does after a package upgrade: configuration, holds and reading keep working, purging waits for
//! the update. The update keeps every row of configuration, holds and log, leaves the schema
//! exactly as a fresh install creates it, and purging resumes with the hash chain unbroken.
//! The released 0.6.0 script, with 0.6.0's own features in use, updates to the same schema.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use std::time::Duration;

/// Every object of the extension with everything that defines it: function definitions
/// (volatility, SET clauses, bodies), table columns, constraints, indexes, triggers, view
/// definitions, sequences, event triggers, privileges, comments, and the pg_dump registrations.
const DESCRIBE: &str = "
WITH ext AS (
    SELECT oid, extconfig, extcondition FROM pg_catalog.pg_extension WHERE extname = 'pg_retention'
), members AS (
    SELECT d.classid, d.objid, (pg_catalog.pg_identify_object(d.classid, d.objid, 0)).*
      FROM pg_catalog.pg_depend d JOIN ext ON d.refobjid = ext.oid
     WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
)
SELECT m.type || ' ' || m.identity AS object,
       concat_ws(E'\\n',
         CASE WHEN m.classid = 'pg_catalog.pg_proc'::regclass THEN
           pg_catalog.pg_get_functiondef(m.objid)
             || ' acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM pg_catalog.pg_proc p, unnest(p.proacl) a WHERE p.oid = m.objid), 'default')
         END,
         CASE WHEN m.classid = 'pg_catalog.pg_class'::regclass THEN (
           SELECT concat_ws(E'\\n',
                    'kind=' || c.relkind::text || ' acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce(c.relacl, pg_catalog.acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::pg_catalog.\"char\", c.relowner))) a), 'default'),
                    CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END,
                    (SELECT string_agg(concat_ws(' ', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
                                                 CASE WHEN a.attnotnull THEN 'not null' END,
                                                 'default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
                                                 NULLIF(a.attidentity, ''),
                                                 'comment ' || pg_catalog.col_description(c.oid, a.attnum)),
                                       ', ' ORDER BY a.attnum)
                       FROM pg_catalog.pg_attribute a
                       LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                    (SELECT string_agg(k.conname || ' ' || pg_catalog.pg_get_constraintdef(k.oid), E'\\n' ORDER BY k.conname)
                       FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid),
                    (SELECT string_agg(pg_catalog.pg_get_indexdef(i.indexrelid), E'\\n' ORDER BY 1)
                       FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid),
                    (SELECT string_agg(pg_catalog.pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text, E'\\n' ORDER BY t.tgname)
                       FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
                    (SELECT concat_ws(' ', s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
                       FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid))
             FROM pg_catalog.pg_class c WHERE c.oid = m.objid)
         END,
         CASE WHEN m.classid = 'pg_catalog.pg_event_trigger'::regclass THEN (
           SELECT concat_ws(' ', e.evtevent, e.evtfoid::regproc, e.evtenabled, e.evttags::text)
             FROM pg_catalog.pg_event_trigger e WHERE e.oid = m.objid)
         END,
         'comment=' || coalesce(pg_catalog.obj_description(m.objid, (SELECT relname FROM pg_catalog.pg_class WHERE oid = m.classid)), '-')
       ) AS definition
  FROM members m
UNION ALL
SELECT 'pg_dump registrations',
       (SELECT string_agg(r.tbl::regclass::text || ' ' || coalesce(r.cond, ''), E'\\n' ORDER BY 1)
          FROM ext, unnest(ext.extconfig, ext.extcondition) AS r(tbl, cond))
UNION ALL
SELECT 'schema retention', 'acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(n.nspacl) a), 'default') || ' owner=' || n.nspowner::regrole
  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'retention'
ORDER BY 1";

/// The updated schema of `app` is exactly what a fresh install creates in a new database (with
/// the duties the populating SQL granted).
fn assert_same_as_fresh_install(cluster: &Cluster, app: &mut postgres::Client) {
    let mut fresh = cluster.create_database("fresh", None);
    fresh
        .batch_execute(
            "CREATE EXTENSION pg_retention; SELECT retention.grant_auditor('upgrade_auditor');
             SELECT retention.grant_policy_admin('upgrade_admin');
             SELECT retention.grant_legal('upgrade_counsel');",
        )
        .unwrap();
    let (updated, installed) = (describe(app), describe(&mut fresh));
    let differences: Vec<String> = updated
        .iter()
        .filter(|o| !installed.contains(o))
        .map(|(object, definition)| format!("updated:   {object}\n{definition}"))
        .chain(
            installed
                .iter()
                .filter(|o| !updated.contains(o))
                .map(|(object, definition)| format!("installed: {object}\n{definition}")),
        )
        .collect();
    assert!(
        differences.is_empty(),
        "the updated schema differs from a fresh install:\n{}",
        differences.join("\n\n")
    );
}

fn describe(client: &mut postgres::Client) -> Vec<(String, String)> {
    client
        .query(DESCRIBE, &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect()
}

/// The policy, data, holds and requests a 0.1.0 user has, made through 0.1.0's SQL functions.
const POPULATE: &str = "
    CREATE ROLE upgrade_auditor;
    SELECT retention.grant_auditor('upgrade_auditor');
    CREATE ROLE upgrade_admin;
    SELECT retention.grant_policy_admin('upgrade_admin');
    CREATE ROLE upgrade_counsel;
    SELECT retention.grant_legal('upgrade_counsel');
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination',
                                     soft_delete_window => '30 days');
    SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true);
    CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, subject text,
                                created_at timestamptz NOT NULL, category text);
    CREATE INDEX ON conversations (created_at);
    CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
    SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                            tenant_column => 'tenant', subject_column => 'subject',
                            category_column => 'category');
    SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                            soft_delete_column => 'deleted_at');
    -- Rows 1..400, i days old: 1..365 are within a year, 366..400 are due.
    INSERT INTO conversations SELECT i, 't' || i % 4, 's' || i % 7, now() - i * interval '1 day', NULL
      FROM generate_series(1, 400) i;
    INSERT INTO projects SELECT i, 't' || i % 4, NULL FROM generate_series(1, 20) i;
    SELECT retention.tag('conversations', 'audit_logs', ARRAY[399, 400]::bigint[]);
    SELECT retention.set_tenant_policy('t1', 'conversations', '2 years');
    SELECT retention.record_event('t2', 'termination', now() - interval '100 days');
    SELECT retention.place_hold('subpoena', tenant => 't3');
    SELECT retention.request_erasure('s5', received_at => now() - interval '40 days');
";

/// Three deletions as the 0.1.0 library logged them: the rows gone and one chained entry each
/// (the chain algorithm of the README, through 0.1.0's log_canonical).
const LOGGED_BY_0_1_0: &str = "
    DELETE FROM conversations WHERE id IN (401, 402, 403);
    DO $$
    DECLARE e retention.deletion_log; prev bytea;
    BEGIN
      FOR i IN 401..403 LOOP
        prev := coalesce((SELECT hash FROM retention.deletion_log ORDER BY id DESC LIMIT 1),
                         decode(repeat('00', 32), 'hex'));
        e := ROW(coalesce((SELECT max(id) FROM retention.deletion_log), 0) + 1,
                 now() - interval '1 day', 'hard_delete', 'public.conversations',
                 jsonb_build_object('id', i), 't' || i % 4, 'conversations', 'expired',
                 interval '1 year', NULL, current_user, prev, NULL);
        e.hash := sha256(prev || retention.log_canonical(e));
        INSERT INTO retention.deletion_log SELECT e.*;
      END LOOP;
    END $$;
";

/// What must survive the update unchanged, as one digest per query.
const KEPT: [&str; 8] = [
    // The columns 0.1.0 had (0.5.0 adds locked).
    "SELECT name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, description,
            builtin, updated_at, updated_by
       FROM retention.categories ORDER BY name",
    "SELECT tbl::regclass::text, category, created_column, tenant_column, subject_column, category_column,
            soft_delete_column FROM retention.managed_tables ORDER BY 1",
    // The columns 0.1.0 had (0.6.0 adds the per-path windows).
    "SELECT tenant, category, retain_for, soft_delete_window, updated_at, updated_by
       FROM retention.tenant_policies ORDER BY 1, 2",
    "SELECT * FROM retention.tenant_events ORDER BY 1, 2",
    // The columns 0.1.0 had (0.4.0 adds frozen, grace_until and rows_freed).
    "SELECT id, reason, tenant, subject, tbl, category, notify, placed_at, placed_by, released_at,
            released_by, release_note, reviewed_at, reviewed_by, review_note
       FROM retention.holds ORDER BY id",
    "SELECT * FROM retention.erasure_records ORDER BY id",
    // The columns 0.1.0 had (0.6.0 adds approval_id).
    "SELECT id, logged_at, action, table_name, row_key, tenant, category, reason, retain_for,
            run_id, actor, prev_hash, hash
       FROM retention.deletion_log ORDER BY id",
    "SELECT id, tenant, category FROM conversations ORDER BY id",
];

#[test]
fn update_from_0_1_0_keeps_everything_and_matches_a_fresh_install() {
    let cluster = Cluster::start(
        "upgrade",
        &["pg_retention.database = 'app'", "pg_retention.naptime = 1"],
    );
    let mut app = cluster.create_database("app", None);
    app.batch_execute("CREATE EXTENSION pg_retention VERSION '0.1.0'")
        .expect("the released 0.1.0 script is installed (scripts/test.sh copies tests/fixtures/)");
    app.batch_execute(POPULATE).unwrap();
    app.batch_execute(
        "INSERT INTO conversations SELECT i, 't' || i % 4, 's1', now() - interval '2 years', NULL
           FROM generate_series(401, 403) i",
    )
    .unwrap();
    app.batch_execute(LOGGED_BY_0_1_0).unwrap();
    assert_eq!(
        count(&mut app, "SELECT coalesce(retention.verify_log(), 0)"),
        0
    );

    // This library against the 0.1.0 schema: purging waits for the update, nothing is removed.
    wait_for(
        Duration::from_secs(30),
        "the worker to report the wait",
        || {
            cluster.server_log().contains(&format!(
                "schema version 0.1.0 in this database, library {}",
                env!("CARGO_PKG_VERSION")
            ))
        },
    );
    assert_eq!(
        sqlstate_of(&mut app, "SELECT * FROM retention.run()"),
        Some("55000".into())
    );
    assert_eq!(
        sqlstate_of(
            &mut app,
            "SELECT retention.request_delete('conversations', ARRAY[5])"
        ),
        Some("55000".into())
    );
    // Legal can still place a hold, auditors can still read and verify.
    app.batch_execute("SELECT retention.place_hold('late subpoena', subject => 's6')")
        .unwrap();
    app.batch_execute("SET ROLE upgrade_auditor; SELECT retention.verify_log(); RESET ROLE")
        .unwrap();
    assert_eq!(count(&mut app, "SELECT count(*) FROM conversations"), 400);
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM retention.deletion_log"),
        3
    );

    let kept: Vec<String> = KEPT.iter().map(|q| digest(&mut app, q)).collect();
    // The update and the checks that it kept everything in one transaction: the worker (on in
    // this test) resumes purging as soon as the update commits, and would change the data.
    app.batch_execute("BEGIN; ALTER EXTENSION pg_retention UPDATE")
        .unwrap();
    assert_eq!(
        count(
            &mut app,
            "SELECT count(*) FROM retention.managed_tables m
              WHERE (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = m.tbl
                        AND t.tgname LIKE 'retention_hold_guard%' AND t.tgenabled = 'A')
                    <> CASE WHEN (SELECT c.id FROM retention.covering_hold(m.tbl) c) IS NULL
                            THEN 0 ELSE 2 END"
        ),
        0,
        "the update guards exactly the managed tables an active hold can cover"
    );
    assert_eq!(
        app.query_one(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_retention'",
            &[]
        )
        .unwrap()
        .get::<_, String>(0),
        env!("CARGO_PKG_VERSION")
    );
    for (query, before) in KEPT.iter().zip(&kept) {
        assert_eq!(
            &digest(&mut app, query),
            before,
            "changed by the update: {query}"
        );
    }
    assert_eq!(
        count(&mut app, "SELECT coalesce(retention.verify_log(), 0)"),
        0
    );
    app.batch_execute("COMMIT").unwrap();

    assert_same_as_fresh_install(&cluster, &mut app);

    // Purging resumes on its own, under the policy and holds made before the update: due rows
    // 366..398 go except tenant t3's (held), t1's (2 years) and subject s6's (held after the
    // package upgrade); 399 and 400 are audit logs; 401..403 were removed by 0.1.0.
    let expected_gone = count(
        &mut app,
        "SELECT count(*) FROM generate_series(366, 398) i
          WHERE i % 4 NOT IN (1, 3) AND i % 7 <> 6",
    );
    wait_for(
        Duration::from_secs(60),
        "the worker to purge after the update",
        || {
            count(
                &mut app,
                "SELECT count(*) FROM conversations WHERE id BETWEEN 366 AND 400",
            ) == 35 - expected_gone
        },
    );
    let audit = audit_removals(&mut app, "conversations", "id", 403, "hard_delete", true);
    assert_eq!(audit.removed, expected_gone + 3);
    assert!(audit.is_exact(), "{audit:?}");
    assert_eq!(
        count(
            &mut app,
            "SELECT count(*) FROM retention.deletion_log WHERE id <= 3"
        ),
        3,
        "entries written before the update stay"
    );
    assert_eq!(
        count(&mut app, "SELECT coalesce(retention.verify_log(), 0)"),
        0
    );
    // The terminated tenant t2's projects are soft-deleted; the pending erasure request of s5,
    // received 40 days ago, shows as overdue.
    assert_eq!(
        count(
            &mut app,
            "SELECT count(*) FROM retention.overdue_erasure_requests WHERE subject = 's5'"
        ),
        1
    );
    wait_for(
        Duration::from_secs(30),
        "t2's projects soft-deleted",
        || {
            count(
                &mut app,
                "SELECT count(*) FROM projects WHERE tenant = 't2' AND deleted_at IS NOT NULL",
            ) == 5
        },
    );
}

/// A 0.6.0 user's policy with 0.6.0's features: per-path windows, disposition review, runs.
const POPULATE_0_6_0: &str = "
    CREATE ROLE upgrade_auditor;
    SELECT retention.grant_auditor('upgrade_auditor');
    CREATE ROLE upgrade_admin;
    SELECT retention.grant_policy_admin('upgrade_admin');
    CREATE ROLE upgrade_counsel;
    SELECT retention.grant_legal('upgrade_counsel');
    CREATE ROLE upgrade_reviewers;
    SELECT retention.define_category('conversations', '1 year', review => 'upgrade_reviewers',
                                     auto_approve_after => '30 days');
    SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination',
                                     soft_delete_windows => '{\"expired\": \"90 days\", \"customer_request\": \"30 days\"}');
    CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, created_at timestamptz NOT NULL);
    CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
    SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                            tenant_column => 'tenant');
    SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                            soft_delete_column => 'deleted_at');
    INSERT INTO conversations SELECT i, 't' || i % 2, now() - i * interval '1 day'
      FROM generate_series(1, 400) i;
    INSERT INTO projects SELECT i, 't' || i % 2, NULL FROM generate_series(1, 10) i;
    SELECT retention.set_tenant_policy('t1', 'projects', '0',
                                       soft_delete_windows => '{\"expired\": \"7 days\"}');
    SELECT retention.record_event('t0', 'termination', now() - interval '1 day');
    -- A hold reviewed long ago and a fresh one.
    INSERT INTO retention.holds (reason, tenant, placed_at) VALUES ('old matter', 't1', now() - interval '100 days');
    SELECT retention.place_hold('new matter', category => 'conversations');
";

#[test]
fn update_from_0_6_0_matches_a_fresh_install() {
    let cluster = Cluster::start("upgrade-0-6-0", &["pg_retention.enabled = off"]);
    let mut app = cluster.create_database("app", None);
    app.batch_execute("CREATE EXTENSION pg_retention VERSION '0.6.0'")
        .expect("the released 0.6.0 script is installed (scripts/test.sh copies tests/fixtures/)");
    app.batch_execute(POPULATE_0_6_0).unwrap();
    // A run as 0.6.0 recorded it (this library waits for the update before it runs).
    app.batch_execute(
        "INSERT INTO retention.runs (trigger, status, finished_at, rows_acted, details)
         VALUES ('manual', 'succeeded', now(), 3, '[{\"table\": \"public.conversations\"}]')",
    )
    .unwrap();
    assert_eq!(
        sqlstate_of(&mut app, "SELECT * FROM retention.run()"),
        Some("55000".into())
    );
    let kept_queries = [
        "SELECT * FROM retention.categories ORDER BY name",
        "SELECT * FROM retention.tenant_policies ORDER BY 1, 2",
        "SELECT * FROM retention.holds ORDER BY id",
        "SELECT id, trigger, status, started_at, finished_at, rows_acted, details, error, pid, actor
           FROM retention.runs ORDER BY id",
        "SELECT * FROM retention.status ORDER BY table_name",
        "SELECT * FROM retention.holds_due_for_review ORDER BY id",
    ];
    let kept: Vec<String> = kept_queries.iter().map(|q| digest(&mut app, q)).collect();
    app.batch_execute("ALTER EXTENSION pg_retention UPDATE")
        .unwrap();
    for (query, before) in kept_queries.iter().zip(&kept) {
        assert_eq!(
            &digest(&mut app, query),
            before,
            "changed by the update: {query}"
        );
    }
    assert_same_as_fresh_install(&cluster, &mut app);
    // The updated database purges under its 0.6.0 policy: the due conversations wait for
    // review, t0's projects are soft-deleted.
    let outcome = count(
        &mut app,
        "SELECT coalesce(sum(soft_deleted), 0)::bigint FROM retention.run()",
    );
    assert_eq!(outcome, 5);
    assert_eq!(
        count(&mut app, "SELECT count(*) FROM conversations"),
        400,
        "due rows of a reviewed category wait for approval"
    );
}
