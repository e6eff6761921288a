//! Locked categories: minimum retention that nobody can shorten, the database's S3 Object Lock
//! compliance mode. `retention.lock_category(name)` (legal duty) records the lock in
//! `retention.category_locks`, a record like a hold: who and when, never removed. From then on
//! the triggers on `category_definitions` and `tenant_policies` (sql/finalize.sql, `ENABLE
//! ALWAYS`, so they bind superusers writing the tables directly as well as every function)
//! let the category's period, window and tenant overrides only grow, and its clock, event and
//! action never change; the category cannot be dropped. Its rows leave only by expiry:
//! `request_delete` refuses them (55006), erasure requests count them exempt, and the trigger
//! `retention_lock_guard` ([`sync`]) refuses anyone's `DELETE` of one before it is due.

use crate::error::RetentionError;
use pgrx::spi::SpiClient;

/// The lock's triggers on application tables: before DELETE, before TRUNCATE, and before
/// UPDATE OF the category, clock and tenant columns (where the table has any).
pub const TRIGGER: &str = "retention_lock_guard";
pub const TRUNCATE_TRIGGER: &str = "retention_lock_guard_truncate";
pub const UPDATE_TRIGGER: &str = "retention_lock_update";

/// Puts `retention_lock_guard` (BEFORE DELETE, ENABLE ALWAYS) on exactly the managed tables that
/// can hold rows of a locked category (by default, or by tag when any category is locked), and
/// takes it off the others. Run, as the extension's owner, by `lock_category()` and `manage()`.
pub fn sync(client: &mut SpiClient) -> Result<(), RetentionError> {
    if !crate::pg::schema_version::at_least(crate::pg::schema_version::CATEGORY_LOCKS)? {
        return Ok(());
    }
    let changes: Vec<(String, bool, bool, Vec<String>)> = client
        .select(
            "SELECT w.tbl::text, w.wanted, w.present, w.columns FROM (
                 SELECT m.tbl,
                        EXISTS (SELECT 1 FROM retention.category_locks l
                                 WHERE l.category = m.category
                                    OR m.category_column IS NOT NULL) AS wanted,
                        (SELECT count(*) FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid = m.tbl AND t.tgname = ANY($1)
                            AND t.tgenabled = 'A')
                          = CASE WHEN cols.names = '{}' THEN 2 ELSE 3 END AS armed,
                        EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = m.tbl AND t.tgname = ANY($1)) AS present,
                        cols.names AS columns
                   FROM retention.managed_tables m
                  CROSS JOIN LATERAL (
                        SELECT coalesce(array_agg(pg_catalog.quote_ident(a.attname) ORDER BY a.attnum),
                                        '{}') AS names
                          FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = m.tbl AND NOT a.attisdropped
                           AND a.attname IN (m.category_column, m.created_column,
                                             m.activity_column, m.tenant_column)) cols) w
              WHERE w.wanted <> w.armed",
            None,
            &[vec![TRIGGER, TRUNCATE_TRIGGER, UPDATE_TRIGGER].into()],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<bool>(2)?.unwrap_or(false),
                r.get::<bool>(3)?.unwrap_or(false),
                r.get::<Vec<String>>(4)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, RetentionError>>()?;
    crate::engine::guard::changing(|| {
        for (table, wanted, present, columns) in changes {
            if present {
                remove(client, &table)?;
            }
            if wanted {
                arm(client, &table, &columns)?;
            }
        }
        Ok(())
    })
}

/// Creates the lock's triggers on `table`, `ENABLE ALWAYS`; the update trigger only where the
/// table has category, clock or tenant `columns` (quoted).
fn arm(client: &mut SpiClient, table: &str, columns: &[String]) -> Result<(), RetentionError> {
    let mut triggers = vec![
        (TRIGGER, format!("BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION retention.lock_guard()")),
        (
            TRUNCATE_TRIGGER,
            format!("BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION retention.lock_guard_truncate()"),
        ),
    ];
    if !columns.is_empty() {
        triggers.push((
            UPDATE_TRIGGER,
            format!(
                "BEFORE UPDATE OF {} ON {table} FOR EACH ROW EXECUTE FUNCTION retention.lock_guard()",
                columns.join(", ")
            ),
        ));
    }
    for (name, definition) in triggers {
        crate::engine::guard::create_always(client, table, name, &definition)?;
    }
    Ok(())
}

/// Takes the lock's triggers off `table` (`sync`, `unmanage()`).
pub fn remove(client: &mut SpiClient, table: &str) -> Result<(), RetentionError> {
    let ours = [TRIGGER, TRUNCATE_TRIGGER, UPDATE_TRIGGER];
    crate::engine::guard::changing(|| crate::pg::triggers::drop_present(client, table, &ours))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    fn audit_logs() {
        seed(0);
        Spi::run(
            "CREATE TABLE audit (id int PRIMARY KEY, subject text, created_at timestamptz NOT NULL);
             SELECT retention.manage('audit', 'audit_logs', created_column => 'created_at',
                                     subject_column => 'subject');
             INSERT INTO audit VALUES (1, 's1', now() - interval '1 year'),
                                      (2, 's1', now() - interval '7 years 1 day');
             SELECT retention.lock_category('audit_logs');
             SELECT retention.define_category('vault', '5 years', soft_delete_window => '30 days');
             SELECT retention.lock_category('vault');",
        )
        .unwrap();
    }

    #[pg_test]
    fn a_locked_period_only_grows() {
        audit_logs();
        for sql in [
            "SELECT retention.define_category('audit_logs', '6 years', erasure_exempt => true)",
            "SELECT retention.define_category('vault', '5 years', clock => 'last_activity')",
            "SELECT retention.define_category('vault', '5 years', soft_delete_window => '1 day')",
            "SELECT retention.define_category('vault', '5 years', action => 'anonymize')",
            "SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => false)",
            "UPDATE retention.category_definitions SET retain_for = '1 day' WHERE name = 'audit_logs'",
            "DELETE FROM retention.category_definitions WHERE name = 'audit_logs'",
            "SELECT retention.set_tenant_policy('t1', 'audit_logs', '1 year')",
            "DELETE FROM retention.category_locks",
            "UPDATE retention.category_locks SET category = 'x'",
            "TRUNCATE retention.category_locks",
        ] {
            assert_eq!(sqlstate(sql), "42501", "{sql}");
        }
        assert_eq!(
            sqlstate("SELECT retention.drop_category('audit_logs')"),
            "2BP01"
        );
        assert_eq!(int("SELECT count(*) FROM retention.categories WHERE name = 'audit_logs' AND retain_for = '7 years' AND locked"), 1);
        Spi::run(
            "SELECT retention.define_category('audit_logs', '8 years', erasure_exempt => true)",
        )
        .unwrap();
        Spi::run("SELECT retention.set_tenant_policy('t1', 'audit_logs', '10 years')").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.set_tenant_policy('t1', 'audit_logs', '9 years')"),
            "42501"
        );
        assert_eq!(
            sqlstate("SELECT retention.clear_tenant_policy('t1', 'audit_logs')"),
            "42501"
        );
        assert_eq!(int("SELECT count(*) FROM retention.category_locks WHERE category = 'audit_logs' AND locked_by = current_user"), 1);
    }

    #[pg_test]
    fn locked_rows_leave_only_by_expiry() {
        Spi::run(
            "SELECT retention.define_category('ledgers', '7 years');
             CREATE TABLE ledger (id int PRIMARY KEY, subject text, created_at timestamptz NOT NULL);
             SELECT retention.manage('ledger', 'ledgers', created_column => 'created_at',
                                     subject_column => 'subject');
             INSERT INTO ledger VALUES (1, 's1', now() - interval '1 year'),
                                       (2, 's1', now() - interval '7 years 1 day');
             SELECT retention.lock_category('ledgers');",
        )
        .unwrap();
        assert_eq!(
            sqlstate("SELECT retention.request_delete('ledger', ARRAY[1])"),
            "55006"
        );
        let id = int("SELECT retention.request_erasure('s1')");
        Spi::run(&format!("SELECT retention.verify_erasure({id})")).unwrap();
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.erasure_requests WHERE id = {id} AND rows_exempt = 2
                    AND details::text LIKE '%locked categories: ledgers%'"
            )),
            1
        );
        assert_eq!(int("SELECT count(*) FROM ledger"), 2);
        // Nobody deletes a young row directly; an expired one may go.
        assert_eq!(sqlstate("DELETE FROM ledger WHERE id = 1"), "55006");
        assert_eq!(sqlstate("DELETE FROM ledger"), "55006");
        assert_eq!(sqlstate("TRUNCATE ledger"), "55006");
        // Nor re-times or re-tags it to leave sooner; a later clock is fine.
        assert_eq!(
            sqlstate(
                "UPDATE ledger SET created_at = created_at - interval '10 years' WHERE id = 1"
            ),
            "55006"
        );
        Spi::run("SELECT retention.define_category('short', '1 day')").unwrap();
        Spi::run("UPDATE ledger SET created_at = created_at + interval '1 day' WHERE id = 1")
            .unwrap();
        for ddl in [
            "DROP TRIGGER retention_lock_guard ON ledger",
            "ALTER TABLE ledger DISABLE TRIGGER retention_lock_guard_truncate",
        ] {
            assert_eq!(sqlstate(ddl), "2BP01", "{ddl}");
        }
        assert_eq!(int("SELECT count(*) FROM ledger"), 2);
        // Expiry removes the expired row, with its log entry.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM ledger WHERE id = 1"), 1);
        assert_eq!(int("SELECT count(*) FROM ledger"), 1);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE category = 'ledgers' AND reason = 'expired'"),
            1
        );
    }

    #[pg_test]
    fn a_locked_row_is_not_tagged_out_of_its_lock() {
        seed(10);
        Spi::run(
            "SELECT retention.define_category('ledgers', '7 years');
             SELECT retention.tag('conversations', 'ledgers', ARRAY[1, 2]);
             SELECT retention.lock_category('ledgers');",
        )
        .unwrap();
        assert_eq!(
            sqlstate("SELECT retention.tag('conversations', 'conversations', ARRAY[1])"),
            "55006"
        );
        assert_eq!(
            sqlstate("UPDATE conversations SET category = NULL WHERE id = 2"),
            "55006"
        );
        assert_eq!(sqlstate("DELETE FROM conversations WHERE id = 1"), "55006");
        // Rows of other categories are free to change and go.
        Spi::run("UPDATE conversations SET category = 'ledgers' WHERE id = 3").unwrap();
        Spi::run("DELETE FROM conversations WHERE id = 4").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE category = 'ledgers'"),
            3
        );
    }

    #[pg_test]
    fn the_deletion_log_category_can_be_locked() {
        Spi::run("SELECT retention.lock_category('deletion_log')").unwrap();
        Spi::run("SELECT retention.lock_category('deletion_log')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.category_locks"), 1);
        assert_eq!(
            sqlstate("SELECT retention.define_category('deletion_log', '2 years')"),
            "42501"
        );
        Spi::run("SELECT retention.define_category('deletion_log', '8 years')").unwrap();
        assert_eq!(sqlstate("SELECT retention.lock_category(NULL)"), "22004");
        assert_eq!(
            sqlstate("SELECT retention.lock_category('nosuch')"),
            "42704"
        );
    }
}
