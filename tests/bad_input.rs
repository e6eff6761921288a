//! The bad-input table (invariant 4, issue 8): every SQL function of the extension (the list is
//! read from `pg_proc`, so a new function needs rows here), called
//! with every class of invalid argument that applies to it, fails with a specific SQLSTATE
//! (never XX000 internal_error or 22000 data_exception) and changes nothing: a digest of every
//! table in schema `retention` and of the application's tables is the same after the call as
//! before it.
//!
//! Each call runs on its own, in autocommit, against a database copied from a template that
//! holds a small fixture (categories, two managed tables, a tenant policy, an event, holds).
//! A call that wrongly succeeds or changes state gets a fresh copy for the next call.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;
use postgres::Client;
use std::collections::BTreeSet;

/// Functions with arguments that the table does not cover, each for a reason: any value of
/// their arguments is valid input.
const NO_BAD_INPUT: &[(&str, &str)] = &[
    (
        "log_field",
        "encodes any text, NULL included, into the canonical form",
    ),
    (
        "log_canonical",
        "encodes any deletion-log row, NULL fields included",
    ),
    (
        "is_anonymized",
        "STRICT; answers true or false for any table, key and fingerprint",
    ),
    (
        "covering_holds",
        "the guard's helper; any table has zero or more covering holds",
    ),
    (
        "covering_hold",
        "the guard's helper; NULLs when no hold covers the table",
    ),
    (
        "locked_until",
        "the lock guard's helper; any row has a due time, or none (NULL)",
    ),
    (
        "soft_delete_path",
        "STRICT; answers a path for any table name and key (customer_request when unlogged)",
    ),
];

/// The functions the table must cover: every function of schema `retention` that takes an
/// argument, but triggers, event triggers and [`NO_BAD_INPUT`]. A new function without a
/// row here fails `the_table_covers_every_function_and_class`.
fn functions_to_cover() -> BTreeSet<String> {
    let cluster = Cluster::start("bad-input-list", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("list");
    let skipped: Vec<&str> = NO_BAD_INPUT.iter().map(|(f, _)| *f).collect();
    db.query(
        "SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'retention'::regnamespace AND p.pronargs > 0
            AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
            AND p.proname <> ALL ($1)",
        &[&skipped],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

const FIXTURE: &str = "
    CREATE EXTENSION pg_retention;
    SELECT retention.define_category('conversations', '1 year');
    SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination',
                                     soft_delete_window => '30 days');
    SELECT retention.define_category('closures', '0', clock => 'event', event => 'closure');
    SELECT retention.define_category('spare', '10 days');
    -- Managed: a one-column key with every column role, and a two-column key.
    CREATE TABLE msgs (id bigint PRIMARY KEY, tenant text, created_at timestamptz NOT NULL,
                       cat text, deleted_at timestamptz, body text);
    CREATE INDEX ON msgs (created_at);
    SELECT retention.manage('msgs', 'conversations', created_column => 'created_at',
                            tenant_column => 'tenant', category_column => 'cat',
                            soft_delete_column => 'deleted_at');
    INSERT INTO msgs SELECT i, 't' || i % 2, now() - i * interval '100 days', NULL, NULL, 'x'
      FROM generate_series(1, 10) i;
    -- Row 10: a project soft-deleted 40 days ago, past its 30-day window.
    UPDATE msgs SET cat = 'projects', deleted_at = now() - interval '40 days' WHERE id = 10;
    CREATE TABLE pairs (a text, b int, created_at timestamptz NOT NULL, PRIMARY KEY (a, b));
    CREATE INDEX ON pairs (created_at);
    SELECT retention.manage('pairs', 'conversations', created_column => 'created_at');
    INSERT INTO pairs VALUES ('x', 1, now() - interval '2 years'), ('x', 2, now());
    -- Not managed: a plain table, a table without a primary key, a view, a sequence.
    CREATE TABLE plain (id int PRIMARY KEY, created_at timestamptz, label text);
    INSERT INTO plain VALUES (1, now() - interval '2 years', 'a');
    CREATE TABLE nopk (id int, created_at timestamptz);
    CREATE VIEW v AS SELECT 1 AS id;
    CREATE SEQUENCE seq;
    SELECT retention.set_tenant_policy('t1', 'conversations', '2 years');
    SELECT retention.record_event('acme', 'termination', now() + interval '1 day');
    SELECT retention.place_hold('active hold', tenant => 't1', notify => false);      -- hold 1
    SELECT retention.place_hold('released hold', tenant => 't0', notify => false);    -- hold 2
    SET pg_retention.hold_release_grace = 0; -- released, and keeping nothing
    SELECT retention.release_hold(2, 'done');
    SELECT retention.place_hold('category hold', category => 'spare', notify => false); -- hold 3
    SELECT retention.request_erasure('s9');                                           -- request 1
";

/// One row of the table: a call, the class of bad input it makes, and the SQLSTATE it must
/// fail with.
struct Case {
    function: &'static str,
    class: &'static str,
    sql: &'static str,
    sqlstate: &'static str,
}

const fn case(
    function: &'static str,
    class: &'static str,
    sql: &'static str,
    sqlstate: &'static str,
) -> Case {
    Case {
        function,
        class,
        sql,
        sqlstate,
    }
}

const NULL: &str = "NULL";
const EMPTY: &str = "empty or blank name";
const UNKNOWN: &str = "unknown name";
const WRONG_TYPE: &str = "wrong type";
const NEGATIVE: &str = "negative interval";
const ABSURD: &str = "absurd value";
const EMPTY_KEYS: &str = "empty key array";
const KEY_SHAPE: &str = "key array of the wrong shape";
const KEY_TYPE: &str = "keys of the wrong type";
const WRONG_OBJECT: &str = "wrong kind of relation";
const STATE: &str = "invalid in the current state";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // define_category(name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, description)
    case("define_category", NULL, "SELECT retention.define_category(NULL, '1 day')", "22004"),
    case("define_category", NULL, "SELECT retention.define_category('x', NULL)", "22004"),
    case("define_category", NULL, "SELECT retention.define_category('x', '1 day', clock => NULL)", "22004"),
    case("define_category", NULL, "SELECT retention.define_category('x', '1 day', action => NULL)", "22004"),
    case("define_category", NULL, "SELECT retention.define_category('x', '1 day', erasure_exempt => NULL)", "22004"),
    case("define_category", EMPTY, "SELECT retention.define_category('', '1 day')", "22023"),
    case("define_category", EMPTY, "SELECT retention.define_category('   ', '1 day')", "22023"),
    case("define_category", EMPTY, "SELECT retention.define_category('x', '1 day', clock => 'event', event => ' ')", "22023"),
    case("define_category", UNKNOWN, "SELECT retention.define_category('x', '1 day', clock => 'tomorrow')", "22023"),
    case("define_category", UNKNOWN, "SELECT retention.define_category('x', '1 day', action => 'shred')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '-1 day')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '-1 mon')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '-00:00:01')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '1 day', soft_delete_window => '-1 day')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('conversations', '-1 day')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '5000 years')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '178000000 years')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', soft_delete_window => '5000 years')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', clock => 'event')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', event => 'termination')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', action => 'anonymize', soft_delete_window => '1 day')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('deletion_log', '7 years', clock => 'last_activity')", "22023"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', 'soon')", "22007"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', 5)", "42883"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', '1 day', erasure_exempt => 'maybe')", "22P02"),
    case("define_category", STATE, "SELECT retention.define_category('conversations', '1 year', clock => 'last_activity')", "55000"),
    case("define_category", STATE, "SELECT retention.define_category('conversations', '1 year', soft_delete_window => '1 day')", "55000"),
    // drop_category(name)
    case("drop_category", NULL, "SELECT retention.drop_category(NULL)", "22004"),
    case("drop_category", UNKNOWN, "SELECT retention.drop_category('nope')", "42704"),
    case("drop_category", EMPTY, "SELECT retention.drop_category('')", "42704"),
    case("drop_category", WRONG_TYPE, "SELECT retention.drop_category(1)", "42883"),
    case("drop_category", STATE, "SELECT retention.drop_category('deletion_log')", "2BP01"),
    case("drop_category", STATE, "SELECT retention.drop_category('conversations')", "2BP01"),
    case("drop_category", STATE, "SELECT retention.drop_category('projects')", "2BP01"),
    case("drop_category", STATE, "SELECT retention.drop_category('spare')", "2BP01"),
    // manage(tbl, category, created_column, activity_column, tenant_column, subject_column,
    //        category_column, soft_delete_column, anonymize)
    case("manage", NULL, "SELECT retention.manage(NULL, 'spare', created_column => 'created_at')", "22004"),
    case("manage", NULL, "SELECT retention.manage('plain', NULL, created_column => 'created_at')", "22004"),
    case("manage", UNKNOWN, "SELECT retention.manage('nosuch', 'spare', created_column => 'created_at')", "42P01"),
    case("manage", UNKNOWN, "SELECT retention.manage('plain', 'nope', created_column => 'created_at')", "42704"),
    case("manage", UNKNOWN, "SELECT retention.manage('plain', 'spare', created_column => 'nope')", "42703"),
    case("manage", UNKNOWN, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', tenant_column => 'nope')", "42703"),
    case("manage", UNKNOWN, "SELECT retention.manage('plain', 'spare', created_column => 'ctid')", "42703"),
    case("manage", UNKNOWN, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', anonymize => '{\"nope\": null}')", "42703"),
    case("manage", EMPTY, "SELECT retention.manage('plain', 'spare', created_column => '')", "42703"),
    case("manage", EMPTY, "SELECT retention.manage('plain', '', created_column => 'created_at')", "42704"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'label')", "42804"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'id')", "42804"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', category_column => 'id')", "42804"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', soft_delete_column => 'label')", "42804"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', anonymize => '[\"label\"]')", "22023"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', anonymize => 'null')", "22023"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', anonymize => 'not json')", "22P02"),
    case("manage", WRONG_TYPE, "SELECT retention.manage('plain', 'spare', created_column => 'created_at', anonymize => '{\"id\": null}')", "22023"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('v', 'spare')", "42809"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('seq', 'spare')", "42809"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('msgs_pkey', 'spare')", "42809"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('nopk', 'spare', created_column => 'created_at')", "42P16"),
    case("manage", STATE, "SELECT retention.manage('msgs', 'spare', created_column => 'created_at')", "42710"),
    case("manage", STATE, "SELECT retention.manage('plain', 'spare')", "55000"),
    case("manage", STATE, "SELECT retention.manage('plain', 'projects', created_column => 'created_at')", "55000"),
    // unmanage(tbl)
    case("unmanage", NULL, "SELECT retention.unmanage(NULL)", "22004"),
    case("unmanage", UNKNOWN, "SELECT retention.unmanage('nosuch')", "42P01"),
    case("unmanage", UNKNOWN, "SELECT retention.unmanage('plain')", "42704"),
    case("unmanage", WRONG_OBJECT, "SELECT retention.unmanage('v')", "42809"),
    case("unmanage", WRONG_TYPE, "SELECT retention.unmanage(1.5)", "42883"),
    // tag(tbl, category, keys)
    case("tag", NULL, "SELECT retention.tag(NULL, 'spare', ARRAY[1])", "22004"),
    case("tag", NULL, "SELECT retention.tag('msgs', NULL, ARRAY[1])", "22004"),
    case("tag", NULL, "SELECT retention.tag('msgs', 'spare', NULL::bigint[])", "22004"),
    case("tag", NULL, "SELECT retention.tag('msgs', 'spare', NULL)", "42804"),
    case("tag", UNKNOWN, "SELECT retention.tag('nosuch', 'spare', ARRAY[1])", "42P01"),
    case("tag", UNKNOWN, "SELECT retention.tag('plain', 'spare', ARRAY[1])", "42704"),
    case("tag", UNKNOWN, "SELECT retention.tag('msgs', 'nope', ARRAY[2])", "42704"),
    case("tag", STATE, "SELECT retention.tag('pairs', 'spare', ARRAY[['x', '1']])", "55000"),
    case("tag", EMPTY_KEYS, "SELECT retention.tag('msgs', 'spare', '{}'::bigint[])", "22023"),
    case("tag", EMPTY_KEYS, "SELECT retention.tag('msgs', 'spare', ARRAY[]::text[])", "22023"),
    case("tag", KEY_SHAPE, "SELECT retention.tag('msgs', 'spare', ARRAY[[2], [4]])", "22023"),
    case("tag", KEY_TYPE, "SELECT retention.tag('msgs', 'spare', ARRAY['two'])", "22P02"),
    case("tag", KEY_TYPE, "SELECT retention.tag('msgs', 'spare', ARRAY[2.5])", "22P02"),
    case("tag", KEY_TYPE, "SELECT retention.tag('msgs', 'spare', ARRAY[now()])", "22P02"),
    case("tag", KEY_TYPE, "SELECT retention.tag('msgs', 'spare', ARRAY[true])", "22P02"),
    case("tag", KEY_TYPE, "SELECT retention.tag('msgs', 'spare', ARRAY[99999999999999999999])", "22003"),
    case("tag", WRONG_TYPE, "SELECT retention.tag('msgs', 'spare', 2)", "42883"),
    // tag_where(tbl, category, condition)
    case("tag_where", NULL, "SELECT retention.tag_where(NULL, 'spare', 'true')", "22004"),
    case("tag_where", NULL, "SELECT retention.tag_where('msgs', NULL, 'true')", "22004"),
    case("tag_where", NULL, "SELECT retention.tag_where('msgs', 'spare', NULL)", "22004"),
    case("tag_where", EMPTY, "SELECT retention.tag_where('msgs', 'spare', '')", "22023"),
    case("tag_where", EMPTY, "SELECT retention.tag_where('msgs', 'spare', '   ')", "22023"),
    case("tag_where", UNKNOWN, "SELECT retention.tag_where('nosuch', 'spare', 'true')", "42P01"),
    case("tag_where", UNKNOWN, "SELECT retention.tag_where('plain', 'spare', 'true')", "42704"),
    case("tag_where", UNKNOWN, "SELECT retention.tag_where('msgs', 'nope', 'true')", "42704"),
    case("tag_where", UNKNOWN, "SELECT retention.tag_where('msgs', 'spare', 'nosuch = 1')", "42703"),
    case("tag_where", STATE, "SELECT retention.tag_where('pairs', 'spare', 'true')", "55000"),
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', '1')", "42804"),
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', ')')", "42601"),
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', 'true; DELETE FROM msgs')", "22023"),
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', 'true) --')", "42601"),
    // set_tenant_policy(tenant, category, retain_for, soft_delete_window)
    case("set_tenant_policy", NULL, "SELECT retention.set_tenant_policy(NULL, 'conversations', '1 day')", "22004"),
    case("set_tenant_policy", UNKNOWN, "SELECT retention.set_tenant_policy('t0', 'conversations', '1 day', soft_delete_windows => '{\"purged\": \"1 day\"}')", "22023"),
    case("set_tenant_policy", NEGATIVE, "SELECT retention.set_tenant_policy('t0', 'conversations', '1 day', soft_delete_windows => '{\"customer_request\": \"-1 day\"}')", "22023"),
    case("set_tenant_policy", WRONG_TYPE, "SELECT retention.set_tenant_policy('t0', 'conversations', '1 day', soft_delete_windows => '\"30 days\"')", "22023"),
    case("set_tenant_policy", NULL, "SELECT retention.set_tenant_policy('t0', NULL, '1 day')", "22004"),
    case("set_tenant_policy", NULL, "SELECT retention.set_tenant_policy('t0', 'conversations', NULL)", "22004"),
    case("set_tenant_policy", EMPTY, "SELECT retention.set_tenant_policy('', 'conversations', '1 day')", "22023"),
    case("set_tenant_policy", UNKNOWN, "SELECT retention.set_tenant_policy('t0', 'nope', '1 day')", "42704"),
    case("set_tenant_policy", NEGATIVE, "SELECT retention.set_tenant_policy('t0', 'conversations', '-1 day')", "22023"),
    case("set_tenant_policy", NEGATIVE, "SELECT retention.set_tenant_policy('t1', 'conversations', '-1 year')", "22023"),
    case("set_tenant_policy", NEGATIVE, "SELECT retention.set_tenant_policy('t0', 'conversations', '1 day', '-1 day')", "22023"),
    case("set_tenant_policy", ABSURD, "SELECT retention.set_tenant_policy('t0', 'conversations', '5000 years')", "22023"),
    case("set_tenant_policy", ABSURD, "SELECT retention.set_tenant_policy('t0', 'conversations', '1 day', '5000 years')", "22023"),
    case("set_tenant_policy", WRONG_TYPE, "SELECT retention.set_tenant_policy('t0', 'conversations', 'soon')", "22007"),
    // clear_tenant_policy(tenant, category)
    case("clear_tenant_policy", NULL, "SELECT retention.clear_tenant_policy(NULL, 'conversations')", "22004"),
    case("clear_tenant_policy", NULL, "SELECT retention.clear_tenant_policy('t1', NULL)", "22004"),
    case("clear_tenant_policy", EMPTY, "SELECT retention.clear_tenant_policy('', 'conversations')", "22023"),
    case("clear_tenant_policy", UNKNOWN, "SELECT retention.clear_tenant_policy('t0', 'conversations')", "42704"),
    case("clear_tenant_policy", UNKNOWN, "SELECT retention.clear_tenant_policy('t1', 'nope')", "42704"),
    // record_event(tenant, event, occurred_at)
    case("record_event", NULL, "SELECT retention.record_event(NULL, 'termination')", "22004"),
    case("record_event", NULL, "SELECT retention.record_event('acme', NULL)", "22004"),
    case("record_event", NULL, "SELECT retention.record_event('acme', 'termination', NULL)", "22004"),
    case("record_event", EMPTY, "SELECT retention.record_event('', 'termination')", "22023"),
    case("record_event", EMPTY, "SELECT retention.record_event('acme', '')", "42704"),
    case("record_event", UNKNOWN, "SELECT retention.record_event('acme', 'nope')", "42704"),
    case("record_event", UNKNOWN, "SELECT retention.record_event('acme', 'projects')", "42704"),
    case("record_event", WRONG_TYPE, "SELECT retention.record_event('acme', 'termination', 'soon')", "22007"),
    // cancel_event(tenant, event)
    case("cancel_event", NULL, "SELECT retention.cancel_event(NULL, 'termination')", "22004"),
    case("cancel_event", NULL, "SELECT retention.cancel_event('acme', NULL)", "22004"),
    case("cancel_event", EMPTY, "SELECT retention.cancel_event('', 'termination')", "22023"),
    case("cancel_event", UNKNOWN, "SELECT retention.cancel_event('acme', 'nope')", "42704"),
    case("cancel_event", UNKNOWN, "SELECT retention.cancel_event('globex', 'termination')", "42704"),
    // place_hold(reason, tenant, subject, tbl, category, notify)
    case("place_hold", NULL, "SELECT retention.place_hold(NULL, tenant => 't0')", "22004"),
    case("place_hold", NULL, "SELECT retention.place_hold('r', tenant => 't0', notify => NULL)", "22004"),
    case("place_hold", NULL, "SELECT retention.place_hold('r', tenant => 't0', freeze => NULL)", "22004"),
    case("place_hold", NULL, "SELECT retention.place_hold('r')", "22023"),
    case("place_hold", NULL, "SELECT retention.place_hold('r', NULL, NULL, NULL, NULL)", "22023"),
    case("place_hold", EMPTY, "SELECT retention.place_hold('', tenant => 't0')", "22023"),
    case("place_hold", EMPTY, "SELECT retention.place_hold('  ', tenant => 't0')", "22023"),
    case("place_hold", UNKNOWN, "SELECT retention.place_hold('r', category => 'nope')", "42704"),
    case("place_hold", UNKNOWN, "SELECT retention.place_hold('r', tbl => 'nosuch')", "42P01"),
    case("place_hold", WRONG_TYPE, "SELECT retention.place_hold('r', tenant => 't0', notify => 'maybe')", "22P02"),
    // verify_export(request_id), export_data(request_id)
    case("verify_export", NULL, "SELECT retention.verify_export(NULL)", "22004"),
    case("verify_export", UNKNOWN, "SELECT retention.verify_export(999)", "42704"),
    case("verify_export", WRONG_TYPE, "SELECT retention.verify_export('one')", "22P02"),
    case("export_data", NULL, "SELECT * FROM retention.export_data(NULL)", "22004"),
    case("export_data", UNKNOWN, "SELECT * FROM retention.export_data(999)", "42704"),
    case("export_data", WRONG_TYPE, "SELECT * FROM retention.export_data('one')", "22P02"),
    // explain(tbl, key)
    case("explain", NULL, "SELECT * FROM retention.explain(NULL, ARRAY[1])", "22004"),
    case("explain", NULL, "SELECT * FROM retention.explain('msgs', NULL::int[])", "22004"),
    case("explain", UNKNOWN, "SELECT * FROM retention.explain('nosuch', ARRAY[1])", "42P01"),
    case("explain", UNKNOWN, "SELECT * FROM retention.explain('plain', ARRAY[1])", "42704"),
    case("explain", WRONG_OBJECT, "SELECT * FROM retention.explain('v', ARRAY[1])", "42809"),
    case("explain", EMPTY_KEYS, "SELECT * FROM retention.explain('msgs', '{}'::int[])", "22023"),
    case("explain", KEY_SHAPE, "SELECT * FROM retention.explain('pairs', ARRAY[1])", "22023"),
    case("explain", KEY_TYPE, "SELECT * FROM retention.explain('msgs', ARRAY['abc'])", "22P02"),
    // evidence(since, until)
    case("evidence", NULL, "SELECT * FROM retention.evidence(NULL, now())", "22004"),
    case("evidence", NEGATIVE, "SELECT * FROM retention.evidence(now(), now() - interval '1 day')", "22023"),
    case("evidence", ABSURD, "SELECT * FROM retention.evidence('-infinity', now())", "22023"),
    case("evidence", WRONG_TYPE, "SELECT * FROM retention.evidence('soon', now())", "22007"),
    // release_hold(hold_id, note) and review_hold(hold_id, note)
    case("release_hold", NULL, "SELECT retention.release_hold(NULL, 'x')", "22004"),
    case("release_hold", UNKNOWN, "SELECT retention.release_hold(999, 'x')", "42704"),
    case("release_hold", UNKNOWN, "SELECT retention.release_hold(-1, 'x')", "42704"),
    case("release_hold", WRONG_TYPE, "SELECT retention.release_hold('one', 'x')", "22P02"),
    case("release_hold", STATE, "SELECT retention.release_hold(2, 'again')", "55000"),
    case("review_hold", NULL, "SELECT retention.review_hold(NULL, 'x')", "22004"),
    case("review_hold", UNKNOWN, "SELECT retention.review_hold(999, 'x')", "42704"),
    case("review_hold", UNKNOWN, "SELECT retention.review_hold(-1, 'x')", "42704"),
    case("review_hold", WRONG_TYPE, "SELECT retention.review_hold('one', 'x')", "22P02"),
    case("review_hold", STATE, "SELECT retention.review_hold(2, 'released')", "55000"),
    // request_delete(tbl, keys, reason)
    case("request_delete", NULL, "SELECT retention.request_delete(NULL, ARRAY[2])", "22004"),
    case("request_delete", NULL, "SELECT retention.request_delete('msgs', NULL::bigint[])", "22004"),
    case("request_delete", NULL, "SELECT retention.request_delete('msgs', NULL)", "42804"),
    case("request_delete", NULL, "SELECT retention.request_delete('msgs', ARRAY[2], NULL)", "22004"),
    case("request_delete", EMPTY, "SELECT retention.request_delete('msgs', ARRAY[2], '')", "22023"),
    case("request_delete", UNKNOWN, "SELECT retention.request_delete('nosuch', ARRAY[2])", "42P01"),
    case("request_delete", UNKNOWN, "SELECT retention.request_delete('plain', ARRAY[1])", "42704"),
    case("request_delete", EMPTY_KEYS, "SELECT retention.request_delete('msgs', '{}'::bigint[])", "22023"),
    case("request_delete", EMPTY_KEYS, "SELECT retention.request_delete('pairs', '{}'::text[])", "22023"),
    case("request_delete", KEY_SHAPE, "SELECT retention.request_delete('msgs', ARRAY[[2], [4]])", "22023"),
    case("request_delete", KEY_SHAPE, "SELECT retention.request_delete('pairs', ARRAY['x', '1'])", "22023"),
    case("request_delete", KEY_SHAPE, "SELECT retention.request_delete('pairs', ARRAY[['x', '1', '2']])", "22023"),
    case("request_delete", KEY_TYPE, "SELECT retention.request_delete('msgs', ARRAY['two'])", "22P02"),
    case("request_delete", KEY_TYPE, "SELECT retention.request_delete('msgs', ARRAY[2.5])", "22P02"),
    case("request_delete", KEY_TYPE, "SELECT retention.request_delete('msgs', ARRAY['{\"id\": 2}'::jsonb])", "22P02"),
    case("request_delete", KEY_TYPE, "SELECT retention.request_delete('pairs', ARRAY[['x', 'one']])", "22P02"),
    case("request_delete", WRONG_TYPE, "SELECT retention.request_delete('msgs', 2)", "42883"),
    // restore(tbl, keys)
    case("restore", NULL, "SELECT retention.restore(NULL, ARRAY[10])", "22004"),
    case("restore", NULL, "SELECT retention.restore('msgs', NULL::bigint[])", "22004"),
    case("restore", UNKNOWN, "SELECT retention.restore('nosuch', ARRAY[10])", "42P01"),
    case("restore", UNKNOWN, "SELECT retention.restore('plain', ARRAY[1])", "42704"),
    case("restore", STATE, "SELECT retention.restore('pairs', ARRAY[['x', '1']])", "55000"),
    case("restore", STATE, "SELECT retention.restore('msgs', ARRAY[10])", "55000"),
    case("restore", EMPTY_KEYS, "SELECT retention.restore('msgs', '{}'::bigint[])", "22023"),
    case("restore", KEY_SHAPE, "SELECT retention.restore('msgs', ARRAY[[10]])", "22023"),
    case("restore", KEY_TYPE, "SELECT retention.restore('msgs', ARRAY['ten'])", "22P02"),
    // run(tbl, dry_run)
    case("run", UNKNOWN, "SELECT * FROM retention.run('nosuch')", "42P01"),
    case("run", UNKNOWN, "SELECT * FROM retention.run('plain')", "42704"),
    case("run", WRONG_OBJECT, "SELECT * FROM retention.run('v')", "42809"),
    case("run", WRONG_TYPE, "SELECT * FROM retention.run('msgs', 'maybe')", "22P02"),
    case("run", STATE, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM retention.run(); COMMIT", "25001"),
    // preview(horizon)
    case("preview", NEGATIVE, "SELECT * FROM retention.preview('-1 day')", "22023"),
    case("preview", NEGATIVE, "SELECT * FROM retention.preview('1 mon -40 days')", "22023"),
    case("preview", ABSURD, "SELECT * FROM retention.preview('5000 years')", "22023"),
    case("preview", WRONG_TYPE, "SELECT * FROM retention.preview('soon')", "22007"),
    case("preview", WRONG_TYPE, "SELECT * FROM retention.preview(7)", "42883"),
    // redact(tbl, columns, detectors, replacement, pattern)
    case("redact", NULL, "SELECT retention.redact(NULL, '{label}')", "22004"),
    case("redact", NULL, "SELECT retention.redact('plain', NULL)", "22004"),
    case("redact", NULL, "SELECT retention.redact('plain', '{label}', NULL)", "22004"),
    case("redact", NULL, "SELECT retention.redact('plain', '{label}', replacement => NULL)", "22004"),
    case("redact", UNKNOWN, "SELECT retention.redact('nosuch', '{label}')", "42P01"),
    case("redact", UNKNOWN, "SELECT retention.redact(999999::regclass, '{label}')", "42P01"),
    case("redact", UNKNOWN, "SELECT retention.redact('plain', '{nosuch}')", "42703"),
    case("redact", UNKNOWN, "SELECT retention.redact('plain', '{label}', '{passport}')", "22023"),
    case("redact", EMPTY, "SELECT retention.redact('plain', '{}')", "22023"),
    case("redact", EMPTY, "SELECT retention.redact('plain', '{label}', '{}')", "22023"),
    case("redact", WRONG_TYPE, "SELECT retention.redact('plain', '{created_at}')", "42804"),
    case("redact", WRONG_TYPE, "SELECT retention.redact('plain', '{label}', '{custom}', pattern => '([a-')", "2201B"),
    case("redact", ABSURD, "SELECT retention.redact('plain', '{label}', '{custom}', pattern => '.?')", "22023"),
    case("redact", STATE, "SELECT retention.redact('plain', '{label}', '{custom}')", "22023"),
    case("redact", WRONG_OBJECT, "SELECT retention.redact('v', '{id}')", "42809"),
    case("redact", WRONG_OBJECT, "SELECT retention.redact('seq', '{last_value}')", "42809"),
    // unredact(tbl)
    case("unredact", NULL, "SELECT retention.unredact(NULL)", "22004"),
    case("unredact", UNKNOWN, "SELECT retention.unredact('nosuch')", "42P01"),
    case("unredact", UNKNOWN, "SELECT retention.unredact('plain')", "42704"),
    case("unredact", EMPTY, "SELECT retention.unredact('')", "42602"),
    case("unredact", WRONG_OBJECT, "SELECT retention.unredact('v')", "42809"),
    // extend_request(request_id, by, reason)
    case("extend_request", NULL, "SELECT retention.extend_request(NULL, '1 day', 'x')", "22004"),
    case("extend_request", NULL, "SELECT retention.extend_request(1, NULL, 'x')", "22004"),
    case("extend_request", NULL, "SELECT retention.extend_request(1, '1 day', NULL)", "22004"),
    case("extend_request", UNKNOWN, "SELECT retention.extend_request(999, '1 day', 'x')", "42704"),
    case("extend_request", EMPTY, "SELECT retention.extend_request(1, '1 day', '  ')", "22023"),
    case("extend_request", NEGATIVE, "SELECT retention.extend_request(1, '-1 day', 'x')", "22023"),
    case("extend_request", NEGATIVE, "SELECT retention.extend_request(1, '0', 'x')", "22023"),
    case("extend_request", ABSURD, "SELECT retention.extend_request(1, '2 months 1 day', 'x')", "22023"),
    case("extend_request", WRONG_TYPE, "SELECT retention.extend_request(1, 'soon', 'x')", "22007"),
    // define_category(…, soft_delete_windows, review, auto_approve_after)
    case("define_category", UNKNOWN, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '{\"archived\": \"1 day\"}')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '{\"expired\": \"-1 day\"}')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '{\"expired\": \"5000 years\"}')", "22023"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '[\"30 days\"]')", "22023"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '{\"expired\": 30}')", "22023"),
    case("define_category", WRONG_TYPE, "SELECT retention.define_category('x', '1 day', soft_delete_windows => '{\"expired\": \"soon\"}')", "22007"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', action => 'anonymize', soft_delete_windows => '{\"expired\": \"1 day\"}')", "22023"),
    case("define_category", UNKNOWN, "SELECT retention.define_category('x', '1 day', review => 'no_such_role')", "42704"),
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1 day', auto_approve_after => '1 day')", "22023"),
    case("define_category", NEGATIVE, "SELECT retention.define_category('x', '1 day', review => 'postgres', auto_approve_after => '-1 day')", "22023"),
    case("define_category", ABSURD, "SELECT retention.define_category('deletion_log', '7 years', review => 'postgres')", "22023"),
    // approve_disposition(batch_id, note)
    case("approve_disposition", NULL, "SELECT retention.approve_disposition(NULL)", "22004"),
    case("approve_disposition", UNKNOWN, "SELECT retention.approve_disposition(999)", "42704"),
    case("approve_disposition", WRONG_TYPE, "SELECT retention.approve_disposition('one')", "22P02"),
    // reject_disposition(batch_id, note, keep_for)
    case("reject_disposition", NULL, "SELECT retention.reject_disposition(NULL, 'n', '1 year')", "22004"),
    case("reject_disposition", NULL, "SELECT retention.reject_disposition(1, NULL, '1 year')", "22004"),
    case("reject_disposition", NULL, "SELECT retention.reject_disposition(1, 'n', NULL)", "22004"),
    case("reject_disposition", UNKNOWN, "SELECT retention.reject_disposition(999, 'n', '1 year')", "42704"),
    case("reject_disposition", EMPTY, "SELECT retention.reject_disposition(1, ' ', '1 year')", "22023"),
    case("reject_disposition", NEGATIVE, "SELECT retention.reject_disposition(1, 'n', '-1 day')", "22023"),
    case("reject_disposition", NEGATIVE, "SELECT retention.reject_disposition(1, 'n', '0')", "22023"),
    case("reject_disposition", ABSURD, "SELECT retention.reject_disposition(1, 'n', '5000 years')", "22023"),
    case("reject_disposition", WRONG_TYPE, "SELECT retention.reject_disposition(1, 'n', 'soon')", "22007"),
    // set_partition_retirement(tbl, mode, target_schema)
    case("set_partition_retirement", NULL, "SELECT retention.set_partition_retirement(NULL, 'drop')", "22004"),
    case("set_partition_retirement", NULL, "SELECT retention.set_partition_retirement('msgs', NULL)", "22004"),
    case("set_partition_retirement", UNKNOWN, "SELECT retention.set_partition_retirement('msgs', 'shred')", "22023"),
    case("set_partition_retirement", UNKNOWN, "SELECT retention.set_partition_retirement('plain', 'drop')", "42704"),
    case("set_partition_retirement", UNKNOWN, "SELECT retention.set_partition_retirement('nosuch', 'drop')", "42P01"),
    case("set_partition_retirement", ABSURD, "SELECT retention.set_partition_retirement('msgs', 'move')", "22023"),
    case("set_partition_retirement", ABSURD, "SELECT retention.set_partition_retirement('msgs', 'drop', 'public')", "22023"),
    case("set_partition_retirement", WRONG_OBJECT, "SELECT retention.set_partition_retirement('msgs', 'drop')", "42809"),
    case("set_partition_retirement", WRONG_OBJECT, "SELECT retention.set_partition_retirement('v', 'drop')", "42809"),
    case("set_partition_retirement", EMPTY, "SELECT retention.set_partition_retirement('', 'drop')", "42602"),
    // lock_category(name)
    case("lock_category", NULL, "SELECT retention.lock_category(NULL)", "22004"),
    case("lock_category", UNKNOWN, "SELECT retention.lock_category('nosuch')", "42704"),
    case("lock_category", EMPTY, "SELECT retention.lock_category(' ')", "22023"),
    // export_log(since, until)
    case("export_log", NULL, "SELECT retention.export_log(NULL, now())", "22004"),
    case("export_log", NULL, "SELECT retention.export_log(now(), NULL)", "22004"),
    case("export_log", NEGATIVE, "SELECT retention.export_log(now(), now() - interval '1 day')", "22023"),
    case("export_log", WRONG_TYPE, "SELECT retention.export_log('soon', now())", "22007"),
    // export_tenant(tenant)
    case("export_tenant", NULL, "SELECT * FROM retention.export_tenant(NULL)", "22004"),
    case("export_tenant", EMPTY, "SELECT * FROM retention.export_tenant(' ')", "22023"),
    // request_erasure(subject, received_at, tenant)
    case("request_erasure", NULL, "SELECT retention.request_erasure(NULL)", "22004"),
    case("request_erasure", NULL, "SELECT retention.request_erasure('s', NULL)", "22004"),
    case("request_erasure", EMPTY, "SELECT retention.request_erasure(' ')", "22023"),
    case("request_erasure", EMPTY, "SELECT retention.request_erasure('s', tenant => '')", "22023"),
    case("request_erasure", ABSURD, "SELECT retention.request_erasure('s', now() + interval '1 day')", "22023"),
    case("request_erasure", ABSURD, "SELECT retention.request_erasure('s', 'infinity')", "22023"),
    case("request_erasure", WRONG_TYPE, "SELECT retention.request_erasure('s', 'soon')", "22007"),
    // request_export(subject, received_at, tenant, external_id)
    case("request_export", NULL, "SELECT retention.request_export(NULL)", "22004"),
    case("request_export", NULL, "SELECT retention.request_export('s', NULL)", "22004"),
    case("request_export", EMPTY, "SELECT retention.request_export('')", "22023"),
    case("request_export", EMPTY, "SELECT retention.request_export('s', external_id => '')", "22023"),
    case("request_export", ABSURD, "SELECT retention.request_export('s', now() + interval '2 days')", "22023"),
    case("request_export", WRONG_TYPE, "SELECT retention.request_export('s', 'soon')", "22007"),
    // verify_erasure(request_id)
    case("verify_erasure", NULL, "SELECT retention.verify_erasure(NULL)", "22004"),
    case("verify_erasure", UNKNOWN, "SELECT retention.verify_erasure(999)", "42704"),
    case("verify_erasure", WRONG_TYPE, "SELECT retention.verify_erasure('one')", "22P02"),
    // evidence_json(since, until)
    case("evidence_json", NULL, "SELECT retention.evidence_json(NULL, now())", "22004"),
    case("evidence_json", NEGATIVE, "SELECT retention.evidence_json(now(), now() - interval '1 day')", "22023"),
    case("evidence_json", WRONG_TYPE, "SELECT retention.evidence_json('soon', now())", "22007"),
    // reapply_deletions(since)
    case("reapply_deletions", NULL, "SELECT retention.reapply_deletions(NULL)", "22004"),
    case("reapply_deletions", ABSURD, "SELECT retention.reapply_deletions(now() + interval '1 day')", "22023"),
    case("reapply_deletions", ABSURD, "SELECT retention.reapply_deletions('infinity')", "22023"),
    case("reapply_deletions", WRONG_TYPE, "SELECT retention.reapply_deletions('soon')", "22007"),
    // grant_policy_admin, grant_legal, grant_auditor (grantee)
    case("grant_policy_admin", NULL, "SELECT retention.grant_policy_admin(NULL)", "22004"),
    case("grant_policy_admin", UNKNOWN, "SELECT retention.grant_policy_admin('nosuch')", "42704"),
    case("grant_policy_admin", EMPTY, "SELECT retention.grant_policy_admin('')", "42602"),
    case("grant_legal", NULL, "SELECT retention.grant_legal(NULL)", "22004"),
    case("grant_legal", UNKNOWN, "SELECT retention.grant_legal('nosuch')", "42704"),
    case("grant_legal", EMPTY, "SELECT retention.grant_legal('')", "42602"),
    case("grant_auditor", NULL, "SELECT retention.grant_auditor(NULL)", "22004"),
    case("grant_auditor", UNKNOWN, "SELECT retention.grant_auditor('nosuch')", "42704"),
    case("grant_auditor", EMPTY, "SELECT retention.grant_auditor('')", "42602"),
    // Regressions once found by this table (fixed):
    // Was: a regclass argument naming a dropped table (a dangling OID): a Rust panic in pgrx's
    // PgRelation argument conversion, XX000 "could not open relation with OID 999999" with a
    // Rust backtrace in DETAIL. Should be 42P01 like an unknown table name.
    case("manage", UNKNOWN, "SELECT retention.manage(999999::regclass, 'spare', created_column => 'created_at')", "42P01"),
    case("unmanage", UNKNOWN, "SELECT retention.unmanage(999999::regclass)", "42P01"),
    case("tag", UNKNOWN, "SELECT retention.tag(999999::regclass, 'spare', ARRAY[2])", "42P01"),
    case("tag_where", UNKNOWN, "SELECT retention.tag_where(999999::regclass, 'spare', 'true')", "42P01"),
    case("place_hold", UNKNOWN, "SELECT retention.place_hold('r', tbl => 999999::regclass)", "42P01"),
    case("request_delete", UNKNOWN, "SELECT retention.request_delete(999999::regclass, ARRAY[2])", "42P01"),
    case("restore", UNKNOWN, "SELECT retention.restore(999999::regclass, ARRAY[10])", "42P01"),
    case("run", UNKNOWN, "SELECT * FROM retention.run(999999::regclass)", "42P01"),
    // Was: dry_run => NULL is taken as false: a real purge runs (rows deleted and logged, a run
    // recorded). Should be 22004, like every other required argument passed as NULL.
    case("run", NULL, "SELECT * FROM retention.run(dry_run => NULL)", "22004"),
    // Was: the condition is spliced into `WHERE (<condition>) AND <not held>`: a condition that
    // closes the parenthesis escapes it, and the hold filter no longer applies. Both calls
    // succeed and tag every row, including tenant t1's rows under hold 1. Should be 22023
    // ("not a single expression").
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', 'true) OR (true')", "42601"),
    case("tag_where", WRONG_TYPE, "SELECT retention.tag_where('msgs', 'spare', 'true) OR true --')", "42601"),
    // Was: periods a little over 1000 years are accepted: the limit compares months * 30 + days
    // with 1000 * 366 days, so up to about 1016 years pass. Should be 22023.
    case("define_category", ABSURD, "SELECT retention.define_category('x', '1001 years')", "22023"),
    case("set_tenant_policy", ABSURD, "SELECT retention.set_tenant_policy('t0', 'conversations', '1001 years')", "22023"),
    case("preview", ABSURD, "SELECT * FROM retention.preview('1001 years')", "22023"),
    // Was: an event at -infinity (or infinity) is accepted; -infinity makes every event-clock row
    // of the tenant due at once. Should be 22023.
    case("record_event", ABSURD, "SELECT retention.record_event('acme', 'termination', '-infinity')", "22023"),
    case("record_event", ABSURD, "SELECT retention.record_event('acme', 'termination', 'infinity')", "22023"),
    // Was: an empty tenant or subject scope is accepted (set_tenant_policy and record_event refuse
    // an empty tenant with 22023); the hold matches nothing and, holds being records, can
    // never be deleted. Should be 22023.
    case("place_hold", EMPTY, "SELECT retention.place_hold('r', tenant => '')", "22023"),
    case("place_hold", EMPTY, "SELECT retention.place_hold('r', subject => '')", "22023"),
    // Was: a hold scoped to a view or an index is accepted (manage refuses them with 42809); it
    // can cover no row. Should be 42809.
    case("place_hold", WRONG_OBJECT, "SELECT retention.place_hold('r', tbl => 'v')", "42809"),
    case("place_hold", WRONG_OBJECT, "SELECT retention.place_hold('r', tbl => 'msgs_pkey')", "42809"),
    // Was: the extension's own tables and the system catalogs can be managed: the purger would then
    // delete holds or notifications (records), or pg_class rows (preview() already lists
    // pg_class's row for relname 'plain' once an event is recorded for tenant 'plain').
    // Should be 42809.
    case("manage", WRONG_OBJECT, "SELECT retention.manage('retention.holds', 'spare', created_column => 'placed_at')", "42809"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('retention.notifications', 'spare', created_column => 'sent_at')", "42809"),
    case("manage", WRONG_OBJECT, "SELECT retention.manage('pg_catalog.pg_class', 'closures', tenant_column => 'relname')", "42809"),
];

/// `(table, md5 of its rows)` for every table of schema `retention` and of schema `public`.
fn snapshot(db: &mut Client) -> Vec<(String, String)> {
    let sql: String = db
        .query_one(
            "SELECT string_agg(format(
                        'SELECT %L, md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), '''')) FROM %s t',
                        c.oid::regclass::text, c.oid::regclass), ' UNION ALL ' ORDER BY c.oid::regclass::text)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('retention', 'public') AND c.relkind IN ('r', 'p')",
            &[],
        )
        .unwrap()
        .get(0);
    db.query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Databases copied from the fixture template, one per dirtied state.
struct Fixtures<'a> {
    cluster: &'a Cluster,
    made: usize,
}

impl Fixtures<'_> {
    fn fresh(&mut self) -> Client {
        self.made += 1;
        self.cluster
            .create_database(&format!("case_{}", self.made), Some("fixture"))
    }
}

/// Runs every case; returns a description of each that does not fail as it must.
fn check(cluster: &Cluster, cases: &[Case]) -> Vec<String> {
    let mut fixtures = Fixtures { cluster, made: 0 };
    let mut db = fixtures.fresh();
    let mut failures = Vec::new();
    for case in cases {
        let before = snapshot(&mut db);
        let outcome = db.batch_execute(case.sql);
        // A failed explicit transaction (the 25001 case) leaves the session aborted.
        let _ = db.batch_execute("ROLLBACK");
        let after = snapshot(&mut db);
        let changed: Vec<&str> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.0.as_str())
            .collect();
        let observed = match &outcome {
            Ok(()) => "success".to_string(),
            Err(e) => match (e.code(), e.as_db_error()) {
                (Some(code), Some(db_error)) => {
                    format!("{}: {}", code.code(), db_error.message())
                }
                _ => format!("no SQLSTATE: {e}"),
            },
        };
        let code = outcome
            .as_ref()
            .err()
            .and_then(|e| e.code())
            .map(|c| c.code());
        let mut wrong = Vec::new();
        if code != Some(case.sqlstate) {
            wrong.push(format!("expected SQLSTATE {}", case.sqlstate));
        }
        if matches!(code, Some("XX000") | Some("22000")) {
            wrong.push("a generic SQLSTATE".to_string());
        }
        if !changed.is_empty() {
            wrong.push(format!("changed {}", changed.join(", ")));
        }
        if before.len() != after.len() {
            wrong.push("created or dropped a table".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} [{}] {}\n    observed {observed}; {}",
                case.function,
                case.class,
                case.sql,
                wrong.join("; ")
            ));
        }
        if outcome.is_ok() || !changed.is_empty() {
            db = fixtures.fresh();
        }
    }
    failures
}

fn fixture_cluster(name: &str) -> Cluster {
    let cluster = Cluster::start(name, &["pg_retention.enabled = off"]);
    let mut template = cluster.create_database("fixture", None);
    template.batch_execute(FIXTURE).unwrap();
    drop(template);
    cluster
}

#[test]
fn the_table_covers_every_function_and_class() {
    let covered: BTreeSet<String> = CASES.iter().map(|c| c.function.to_string()).collect();
    let wanted = functions_to_cover();
    assert_eq!(
        covered, wanted,
        "functions without bad-input rows, or rows for no function"
    );
    for function in wanted.iter().map(String::as_str) {
        let classes: BTreeSet<&str> = CASES
            .iter()
            .filter(|c| c.function == function)
            .map(|c| c.class)
            .collect();
        // Every function but preview takes an argument that must not be NULL; preview's
        // only argument is an interval (negative, absurd, wrong type below).
        if function != "preview" {
            assert!(classes.contains(NULL), "{function}: no NULL case");
        }
        // A tenant is free text, not a registry: export_tenant of an unknown one is empty.
        if function != "export_tenant" {
            assert!(
                classes.contains(UNKNOWN) || classes.contains(NEGATIVE) || classes.contains(ABSURD),
                "{function}: no unknown-name, negative or absurd case"
            );
        }
        assert!(
            classes.contains(WRONG_TYPE) || classes.contains(KEY_TYPE) || classes.contains(EMPTY),
            "{function}: no wrong-type or empty case"
        );
    }
    for function in ["tag", "request_delete", "restore"] {
        for class in [EMPTY_KEYS, KEY_SHAPE, KEY_TYPE] {
            assert!(
                CASES
                    .iter()
                    .any(|c| c.function == function && c.class == class),
                "{function}: no {class} case"
            );
        }
    }
    for function in ["define_category", "set_tenant_policy", "preview"] {
        for class in [NEGATIVE, ABSURD] {
            assert!(
                CASES
                    .iter()
                    .any(|c| c.function == function && c.class == class),
                "{function}: no {class} case"
            );
        }
    }
}

#[test]
fn bad_input_fails_with_its_sqlstate_and_changes_nothing() {
    let cluster = fixture_cluster("bad-input");
    let failures = check(&cluster, CASES);
    assert!(
        failures.is_empty(),
        "{} of {} calls misbehave:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
