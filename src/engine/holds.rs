//! Legal holds as a predicate: the holds that may cover a table's rows, and the SQL every
//! removal path uses to leave held rows alone (placing, releasing and reviewing them is
//! holding.rs), and the lock that keeps a hold committed during a purge batch from missing
//! that batch.
//!
//! Locking: each purge batch takes the hold lock in shared mode before it reads the holds;
//! `place_hold` takes it exclusively before inserting. A hold therefore either commits before
//! the batch reads holds (and the batch's statement, with a fresh READ COMMITTED snapshot, sees
//! it) or waits until the batch has committed.
//!
//! The background worker never waits for these locks: it tries them, and ends its cycle when
//! one is taken (`yield_locks`). A transaction that placed a hold (or logged a deletion) and
//! then calls `retention.run()`, which waits for the worker's cycle, would otherwise deadlock
//! with a worker waiting for that transaction.

use crate::engine::managed::Managed;
use crate::error::RetentionError;
use crate::pg::kept;
use crate::pg::params::Params;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::PgOid;

/// The holds queries' parameter: the table's oid.
const OID: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::OIDOID);

/// A hold that may cover rows of one table: active, or released and still in its grace.
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: i64,
    pub reason: String,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub category: Option<String>,
    /// Placed with `freeze => true`: its rows cannot be updated at all.
    pub frozen: bool,
    /// For a released hold: when the rows it kept become free (`pg_retention.hold_release_grace`
    /// after the release); None while the hold is active.
    pub grace_until: Option<TimestampWithTimeZone>,
}

/// Holds that keep rows from the extension's own paths (purge, customer deletion, erasure,
/// tagging, cascades): the active ones, and released ones within their grace. Read with a
/// fresh snapshot (a kept statement runs as a mutating one), so that a hold committed while
/// the caller waited for the hold lock is seen; kept, as every purge batch reads them.
pub fn active_for(client: &mut SpiClient, table: &Managed) -> Result<Vec<Hold>, RetentionError> {
    read_kept(client, Keeping::WithGrace, table)
}

/// [`active_for`] for read-only callers (previews, dry runs): works on a standby, where a
/// non-read-only statement cannot run.
pub fn active_for_reading(
    client: &SpiClient,
    table: &Managed,
) -> Result<Vec<Hold>, RetentionError> {
    let rows = client.select(holds_sql(Keeping::WithGrace)?, None, &[table.oid.into()])?;
    rows.map(hold_from_row).collect()
}

/// The active holds scoped to `table` or to no table: what the guard enforces on every role.
/// A released hold's grace protects rows from the extension's own purge, not from their owner.
pub fn active_only(client: &mut SpiClient, table: &Managed) -> Result<Vec<Hold>, RetentionError> {
    read_kept(client, Keeping::Active, table)
}

/// The holds `keeping` counts for `table`, read with the kept statement (a fresh snapshot).
fn read_kept(
    client: &SpiClient,
    keeping: Keeping,
    table: &Managed,
) -> Result<Vec<Hold>, RetentionError> {
    let rows = kept::run(client, holds_sql(keeping)?, &[OID], &[table.oid.into()])?;
    rows.map(hold_from_row).collect()
}

/// Which holds a reader counts.
#[derive(Clone, Copy)]
enum Keeping {
    Active,
    WithGrace,
}

/// The holds query for `keeping`; under a schema older than the library (before ALTER
/// EXTENSION … UPDATE) there is no freeze and no grace.
fn holds_sql(keeping: Keeping) -> Result<&'static str, RetentionError> {
    if !crate::pg::schema_version::at_least(crate::pg::schema_version::HOLD_FREEZE)? {
        return Ok(OLD_SCHEMA_HOLDS);
    }
    Ok(match keeping {
        Keeping::Active => ACTIVE_HOLDS,
        Keeping::WithGrace => KEEPING_HOLDS,
    })
}

/// Active holds first: a row they cover is reported under them rather than a released one.
const KEEPING_HOLDS: &str = "SELECT id, tenant, subject, category, reason, frozen, grace_until
      FROM retention.holds
     WHERE (released_at IS NULL OR grace_until > pg_catalog.now())
       AND (tbl IS NULL OR tbl = $1::oid::regclass)
     ORDER BY released_at IS NOT NULL, id";
const ACTIVE_HOLDS: &str = "SELECT id, tenant, subject, category, reason, frozen, grace_until
      FROM retention.holds
     WHERE released_at IS NULL AND (tbl IS NULL OR tbl = $1::oid::regclass) ORDER BY id";
const OLD_SCHEMA_HOLDS: &str =
    "SELECT id, tenant, subject, category, reason, false, NULL::timestamptz
       FROM retention.holds
      WHERE released_at IS NULL AND (tbl IS NULL OR tbl = $1::oid::regclass) ORDER BY id";

fn hold_from_row(r: pgrx::spi::SpiHeapTupleData) -> Result<Hold, RetentionError> {
    Ok(Hold {
        id: r.get::<i64>(1)?.unwrap_or_default(),
        tenant: r.get::<String>(2)?,
        subject: r.get::<String>(3)?,
        category: r.get::<String>(4)?,
        reason: r.get::<String>(5)?.unwrap_or_default(),
        frozen: r.get::<bool>(6)?.unwrap_or(false),
        grace_until: r.get::<TimestampWithTimeZone>(7)?,
    })
}

/// SQL, over row alias `t`, that is true when `hold` covers the row and false otherwise (never
/// NULL, whatever the row's values); None when the hold can
/// cover no row of this table (or of `category`, when the caller works on one category only).
/// `category_sql` is the row's category expression, for holds scoped to a category.
pub fn covers_sql(
    hold: &Hold,
    table: &Managed,
    category: Option<&str>,
    category_sql: &str,
    params: &mut Params,
) -> Option<String> {
    let mut conditions = Vec::new();
    if let Some(tenant) = &hold.tenant {
        let column = table.tenant_column.as_ref()?;
        conditions.push(format!(
            "t.{}::text = {}",
            quote_identifier(column),
            params.bind(tenant.as_str())
        ));
    }
    if let Some(subject) = &hold.subject {
        let column = table.subject_column.as_ref()?;
        conditions.push(format!(
            "t.{}::text = {}",
            quote_identifier(column),
            params.bind(subject.as_str())
        ));
    }
    if let Some(held) = &hold.category {
        match category {
            Some(c) if c != held => return None,
            Some(_) => {}
            None => conditions.push(format!("{category_sql} = {}", params.bind(held.as_str()))),
        }
    }
    // `IS TRUE`: a hold covers a row only when its scope provably matches. A NULL tenant,
    // subject or category value matches no scope, and the term is false, never NULL: callers
    // negate it (`NOT covers`), and a NULL would drop the row from both the acting and the
    // held side of every statement.
    Some(if conditions.is_empty() {
        "true".into()
    } else {
        format!("(({}) IS TRUE)", conditions.join(" AND "))
    })
}

/// SQL that is true when any of `holds` covers row `t` (None when none can).
pub fn any_covers_sql(
    holds: &[Hold],
    table: &Managed,
    category: Option<&str>,
    category_sql: &str,
    params: &mut Params,
) -> Option<String> {
    let terms: Vec<String> = holds
        .iter()
        .filter_map(|h| covers_sql(h, table, category, category_sql, params))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(format!("({})", terms.join(" OR ")))
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn held_rows_survive_every_purge_path() {
        seed(800);
        let hold = int("SELECT retention.place_hold('litigation', tenant => 't1')");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant = 't1' AND created_at <= now() - interval '1 year'"), 145);
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant <> 't1' AND created_at <= now() - interval '1 year'"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE tenant = 't1'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NOT NULL"),
            1
        );
        assert_eq!(
            int(&format!(
                "SELECT rows FROM retention.preview() WHERE held_by = {hold}"
            )),
            145
        );
        // With no grace, a release frees the rows at once (see release_grace_* for the default).
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
            0
        );
    }

    #[pg_test]
    fn release_grace_keeps_rows_from_the_extension_after_a_release() {
        seed(800);
        let due_t1 = int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                            AND created_at <= now() - interval '1 year'");
        let hold =
            int("SELECT retention.place_hold('litigation', tenant => 't1', notify => false)");
        // The release frees every t1 row (no other hold keeps them) and says so.
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        assert_eq!(
            int(&format!(
                "SELECT rows_freed FROM retention.holds WHERE id = {hold}"
            )),
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'")
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.holds WHERE id = {hold}
                                   AND rows_freed = 267
                                   AND grace_until = released_at + interval '7 days'"
            )),
            1
        );
        // Within the grace, the purge and customer deletions leave the rows alone, and
        // preview shows them under the released hold until its horizon reaches the grace's end.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                          AND created_at <= now() - interval '1 year'"),
            due_t1
        );
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {hold}"
            )),
            due_t1
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.preview('6 days') WHERE held_by = {hold}"
            )),
            1
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.preview('8 days') WHERE held_by = {hold}"
            )),
            0
        );
        assert_eq!(
            int("SELECT retention.request_delete('conversations', ARRAY[1])"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 1);
        // The hold no longer binds the application: its guard is gone.
        assert_eq!(sqlstate("DELETE FROM conversations WHERE id = 4"), "00000");
        // A second hold with a partial overlap frees only what it alone kept.
        let both =
            int("SELECT retention.place_hold('one person', subject => 's1', notify => false)");
        let other =
            int("SELECT retention.place_hold('one customer', tenant => 't0', notify => false)");
        Spi::run(&format!("SELECT retention.release_hold({both}, NULL)")).unwrap();
        assert_eq!(
            int(&format!("SELECT rows_freed FROM retention.holds WHERE id = {both}")),
            int("SELECT count(*) FROM conversations WHERE subject = 's1' AND tenant NOT IN ('t0', 't1')")
        );
        // The grace is an interval of 0 or more; with none, a release frees at once.
        for bad in ["soon", "-1 day"] {
            Spi::run(&format!(
                "SET LOCAL pg_retention.hold_release_grace = '{bad}'"
            ))
            .unwrap();
            assert_eq!(
                sqlstate(&format!("SELECT retention.release_hold({other}, NULL)")),
                "22023"
            );
        }
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({other}, NULL)")).unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        // t0's rows go, but for those of subject s1, which the released `both` still keeps.
        assert_eq!(
            int(
                "SELECT count(*) FROM conversations WHERE tenant = 't0' AND subject <> 's1'
                   AND created_at <= now() - interval '1 year'"
            ),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                          AND created_at <= now() - interval '1 year'"),
            due_t1
        );
    }

    #[pg_test]
    fn holds_match_all_their_scopes() {
        seed(800);
        Spi::run("SELECT retention.place_hold('one person at one customer', tenant => 't1', subject => 's2', notify => false)").unwrap();
        Spi::run("SELECT retention.place_hold('the whole table', tbl => 'conversations', category => 'audit_logs', notify => false)").unwrap();
        Spi::run("UPDATE conversations SET category = 'audit_logs' WHERE id = 800").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        // ids ≡ 1 (mod 3) and ≡ 2 (mod 5), older than a year, are held; id 800 is under the category hold.
        assert_eq!(int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
                   int("SELECT count(*) FROM generate_series(366, 800) i WHERE now() - i * interval '1 day' <= now() - interval '1 year' AND i % 3 = 1 AND i % 5 = 2") + 1);
    }

    #[pg_test]
    fn hold_lifecycle_is_stamped_and_notified() {
        let hold = int("SELECT retention.place_hold('subpoena', tenant => 'acme')");
        assert_eq!(int("SELECT count(*) FROM retention.notifications WHERE payload->>'action' = 'placed' AND (payload->>'hold_id')::bigint = (SELECT max(id) FROM retention.holds)"), 1);
        Spi::run(&format!(
            "SELECT retention.review_hold({hold}, 'still needed')"
        ))
        .unwrap();
        Spi::run(&format!(
            "SELECT retention.release_hold({hold}, 'case closed')"
        ))
        .unwrap();
        assert_eq!(int(&format!("SELECT count(*) FROM retention.holds WHERE id = {hold} AND released_by = current_user AND release_note = 'case closed' AND reviewed_at IS NOT NULL")), 1);
        assert_eq!(int("SELECT count(*) FROM retention.notifications"), 2);
        let quiet =
            int("SELECT retention.place_hold('gag order', tenant => 'acme', notify => false)");
        Spi::run(&format!("SELECT retention.release_hold({quiet}, NULL)")).unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.notifications"), 2);
    }

    #[pg_test]
    fn holds_not_reviewed_within_the_review_period_show_in_status() {
        assert_eq!(
            int("SELECT count(*) FROM pg_catalog.pg_proc
                  WHERE oid = 'retention.hold_review_period()'::regprocedure
                    AND provolatile = 'i' AND retention.hold_review_period() = interval '90 days'"),
            1
        );
        // A hold recorded directly, placed a day before the review period (no table is
        // managed), and one placed a day within it.
        let old = int("INSERT INTO retention.holds (reason, tenant, placed_at)
                       VALUES ('old matter', 'acme', now() - retention.hold_review_period() - interval '1 day')
                       RETURNING id");
        Spi::run("INSERT INTO retention.holds (reason, tenant, placed_at)
                  VALUES ('recent matter', 'acme', now() - retention.hold_review_period() + interval '1 day')")
            .unwrap();
        let fresh = int("SELECT retention.place_hold('new matter', tenant => 'acme')");
        assert_eq!(
            int("SELECT count(*) FROM retention.holds WHERE NOT notify"),
            2,
            "a direct insert does not notify"
        );
        let row = "FROM retention.status WHERE table_name IS NULL";
        assert_eq!(int(&format!("SELECT active_holds {row}")), 3);
        assert_eq!(int(&format!("SELECT holds_due_for_review {row}")), 1);
        assert_eq!(
            int(&format!("SELECT holds_due_for_review_ids[1] {row}")),
            old
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.holds_due_for_review"),
            1
        );
        Spi::run(&format!(
            "SELECT retention.review_hold({old}, 'still needed')"
        ))
        .unwrap();
        assert_eq!(int(&format!("SELECT holds_due_for_review {row}")), 0);
        assert!(fresh > old);
    }

    #[pg_test]
    fn hold_errors_and_guards() {
        assert_eq!(
            sqlstate("SELECT retention.place_hold('everything')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('', tenant => 'a')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold(NULL, tenant => 'a')"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('x', category => 'nope')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.release_hold(424242, 'n')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('x', tenant => 'a', freeze => NULL)"),
            "22004"
        );
        let hold = int("SELECT retention.place_hold('case', tenant => 'acme', notify => false)");
        assert_eq!(sqlstate(&format!("UPDATE retention.holds SET released_at = now() - interval '2 years', released_by = 'bob' WHERE id = {hold}")), "42501");
        assert_eq!(sqlstate(&format!("UPDATE retention.holds SET reviewed_at = now() + interval '1 year' WHERE id = {hold}")), "42501");
        assert_eq!(
            sqlstate(&format!("DELETE FROM retention.holds WHERE id = {hold}")),
            "42501"
        );
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.release_hold({hold}, 'again')")),
            "55000"
        );
        assert_eq!(
            sqlstate(&format!("SELECT retention.review_hold({hold}, 'late')")),
            "55000"
        );
        assert_eq!(int("SELECT count(*) FROM retention.holds"), 1);
    }

    /// Rows with a NULL tenant or subject, a table `t` managed with both columns (issue 19).
    fn null_scope_table() {
        Spi::run(
            "SELECT retention.define_category('c', '1 day');
             CREATE TABLE t (id bigint PRIMARY KEY, tenant text, author text,
                             created_at timestamptz NOT NULL);
             SELECT retention.manage('t', 'c', created_column => 'created_at',
                                     tenant_column => 'tenant', subject_column => 'author');
             INSERT INTO t VALUES (1, NULL, 'bob', now() - interval '10 days'),
                                  (2, NULL, 'bob', now()),
                                  (3, 'b', 'bob', now() - interval '10 days'),
                                  (4, 'b', NULL, now() - interval '10 days'),
                                  (5, NULL, 'carol', now()),
                                  (6, 'b', NULL, now());",
        )
        .unwrap();
    }

    #[pg_test]
    fn null_scope_rows_go_while_unrelated_holds_are_active() {
        null_scope_table();
        Spi::run("SELECT retention.place_hold('unrelated tenant', tenant => 'zzz', notify => false);
                  SELECT retention.place_hold('unrelated person', subject => 'nobody', notify => false)").unwrap();
        // preview, the dry run and run() agree: rows 1, 3 and 4 are due and nothing holds them.
        assert_eq!(
            int("SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by IS NULL"),
            3
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NOT NULL"),
            0
        );
        assert_eq!(
            int("SELECT hard_deleted FROM retention.run(dry_run => true)"),
            3
        );
        assert_eq!(int("SELECT hard_deleted FROM retention.run()"), 3);
        assert_eq!(int("SELECT count(*) FROM t WHERE id IN (1, 3, 4)"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'expired'"),
            3
        );
        // A customer deletion of a NULL-tenant row acts on it (it is not lost, nor queued).
        assert_eq!(int("SELECT retention.request_delete('t', ARRAY[2])"), 1);
        assert_eq!(int("SELECT count(*) FROM t WHERE id = 2"), 0);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_queue"), 0);
        // An erasure of a subject whose row has a NULL tenant completes with the row gone.
        let request = int("SELECT retention.request_erasure('carol')");
        Spi::run(&format!("SELECT retention.verify_erasure({request})")).unwrap();
        assert_eq!(int("SELECT count(*) FROM t WHERE author = 'carol'"), 0);
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_records WHERE id = {request} AND status = 'completed' AND rows_erased = 1 AND rows_held = 0")), 1);
        // Exactly one log entry per removed row.
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 5);
        assert_eq!(
            int("SELECT count(DISTINCT row_key) FROM retention.deletion_log"),
            5
        );
    }

    #[pg_test]
    fn null_scope_rows_stay_under_holds_that_cover_them() {
        null_scope_table();
        let on_table = int("SELECT retention.place_hold('the table', tbl => 't', notify => false)");
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NULL"),
            0
        );
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {on_table}"
            )),
            3
        );
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT retention.request_delete('t', ARRAY[2, 5])"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_queue WHERE done_at IS NULL"),
            2
        );
        Spi::run(&format!("SELECT retention.release_hold({on_table}, NULL)")).unwrap();
        let on_category =
            int("SELECT retention.place_hold('the category', category => 'c', notify => false)");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM t"), 6);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 0);
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {on_category}"
            )),
            3
        );
    }

    #[pg_test]
    fn a_null_tenant_child_does_not_keep_its_parent() {
        Spi::run(
            "SELECT retention.define_category('projects', '1 day');
             SELECT retention.define_category('history', '0', clock => 'parent');
             CREATE TABLE projects (id int PRIMARY KEY, tenant text, created_at timestamptz NOT NULL);
             CREATE TABLE snapshots (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects,
                                     tenant text);
             SELECT retention.manage('projects', 'projects', created_column => 'created_at',
                                     tenant_column => 'tenant');
             SELECT retention.manage('snapshots', 'history', tenant_column => 'tenant');
             INSERT INTO projects VALUES (1, 'a', now() - interval '2 days'), (2, 'a', now());
             INSERT INTO snapshots VALUES (10, 1, NULL), (11, 1, 'a'), (20, 2, NULL);
             SELECT retention.place_hold('unrelated', tenant => 'zzz', notify => false);",
        )
        .unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.run() WHERE error IS NOT NULL"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM projects"), 1);
        assert_eq!(int("SELECT count(*) FROM snapshots"), 1);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'parent_deleted'"),
            2
        );
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[2])"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM snapshots"), 0);
    }
}
