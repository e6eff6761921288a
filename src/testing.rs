//! Helpers shared by the `#[pg_test]`s of every module.

use pgrx::prelude::*;

/// The SQLSTATE `sql` raises, or "00000" when it succeeds (run in a subtransaction).
pub fn sqlstate(sql: &str) -> String {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(cmd text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN EXECUTE cmd; RETURN '00000'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$",
    )
    .unwrap();
    Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()])
        .unwrap()
        .unwrap()
}

/// A bigint query result (0 for NULL).
pub fn int(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql).unwrap().unwrap_or(0)
}

/// The seed's categories and a managed conversations table with rows 1..=n days old
/// (tenants t0, t1, t2 by id % 3; subject s<id % 5>).
pub fn seed(n: i64) {
    Spi::run(&format!(
        "SELECT retention.define_category('conversations', '1 year');
         SELECT retention.define_category('support_records', '3 years', clock => 'last_activity');
         SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true);
         CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, subject text,
             created_at timestamptz NOT NULL, category text, deleted_at timestamptz, body text);
         CREATE INDEX ON conversations (created_at);
         SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
             tenant_column => 'tenant', subject_column => 'subject', category_column => 'category',
             soft_delete_column => 'deleted_at');
         INSERT INTO conversations (id, tenant, subject, created_at, body)
         SELECT i, 't' || i % 3, 's' || i % 5, now() - i * interval '1 day', 'secret'
           FROM generate_series(1, {n}) i;"
    ))
    .unwrap();
}
