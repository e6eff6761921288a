//! Purge cycles: `retention.run()` in the calling session, `retention.preview()`, and the
//! `retention.runs` history shared with the background worker.

use crate::engine::acting::Act;
use crate::engine::vocabulary::{RunStatus, Trigger};
use crate::error::RetentionError;
use crate::pg::gucs;
use pgrx::spi::SpiClient;
use serde::Serialize;

/// What one cycle did to one table: an element of `retention.runs.details`, which the
/// `status` view reads.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TableOutcome {
    #[serde(rename = "table")]
    pub table_name: String,
    pub soft_deleted: i64,
    pub hard_deleted: i64,
    pub anonymized: i64,
    pub error: Option<String>,
    /// The background worker gave way to a transaction holding a lock it needed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub yielded: bool,
    /// Partitions retired whole (their rows are counted in `hard_deleted`).
    #[serde(rename = "retired_partitions", skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<crate::engine::partitions::Retired>,
}

impl TableOutcome {
    pub fn new(table_name: &str) -> Self {
        TableOutcome {
            table_name: table_name.to_string(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, act: Act, rows: i64) {
        match act {
            Act::SoftDelete => self.soft_deleted += rows,
            Act::HardDelete => self.hard_deleted += rows,
            Act::Anonymize => self.anonymized += rows,
        }
    }

    /// Counts partitions retired whole.
    pub fn add_retired(&mut self, retired: Vec<crate::engine::partitions::Retired>) {
        self.hard_deleted += retired.iter().map(|r| r.rows).sum::<i64>();
        self.retired.extend(retired);
    }

    /// This outcome, stopped by `error`.
    pub fn failed(mut self, error: String) -> Self {
        self.error = Some(error);
        self
    }

    pub fn total(&self) -> i64 {
        self.soft_deleted + self.hard_deleted + self.anonymized
    }
}

/// Inserts a `running` row into retention.runs and returns its id.
pub fn start(client: &mut SpiClient, trigger: Trigger) -> Result<i64, RetentionError> {
    Ok(client
        .update(
            "INSERT INTO retention.runs (trigger, actor) VALUES ($1, $2) RETURNING id",
            None,
            &[
                trigger.as_str().into(),
                crate::pg::identity::caller_name().into(),
            ],
        )?
        .first()
        .get_one::<i64>()?
        .unwrap_or_default())
}

/// Stamps a run finished with its per-table outcomes, and prunes old history.
pub fn finish(
    client: &mut SpiClient,
    run_id: i64,
    outcomes: &[TableOutcome],
    error: Option<String>,
) -> Result<(), RetentionError> {
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.table_name)))
        .chain(error)
        .collect();
    let details = serde_json::to_value(outcomes)?;
    let rows: i64 = outcomes.iter().map(TableOutcome::total).sum();
    let (error_text, status) = if errors.is_empty() {
        (None, RunStatus::Succeeded)
    } else {
        (Some(errors.join("; ")), RunStatus::Failed)
    };
    client.update(
        "UPDATE retention.runs SET finished_at = clock_timestamp(), rows_acted = $2,
                details = $3, error = $4, status = $5
          WHERE id = $1",
        None,
        &[
            run_id.into(),
            rows.into(),
            pgrx::JsonB(details).into(),
            error_text.into(),
            status.as_str().into(),
        ],
    )?;
    client.update(
        "DELETE FROM retention.runs
          WHERE started_at < now() - make_interval(days => $1) AND status <> $2",
        None,
        &[
            gucs::RUN_HISTORY_DAYS.get().into(),
            RunStatus::Running.as_str().into(),
        ],
    )?;
    Ok(())
}

/// Marks the runs of `trigger` left "running" as failed: they were cut short (a crash, a
/// kill, a shutdown), with the rows their committed batches logged.
pub fn close_interrupted(client: &mut SpiClient, trigger: Trigger) -> Result<(), RetentionError> {
    client.update(
        "UPDATE retention.runs r SET status = $2, finished_at = clock_timestamp(),
                error = 'the worker stopped before the run finished',
                rows_acted = (SELECT count(*) FROM retention.deletion_log l WHERE l.run_id = r.id)
          WHERE status = $3 AND trigger = $1",
        None,
        &[
            trigger.as_str().into(),
            RunStatus::Failed.as_str().into(),
            RunStatus::Running.as_str().into(),
        ],
    )?;
    Ok(())
}

/// Counts rows that cascades deleted from parent-bound child tables under those tables' names
/// (a child not in `outcomes`, as in `run(tbl)`, gets a line of its own).
pub fn add_cascaded(outcomes: &mut Vec<TableOutcome>, cascaded: Vec<(String, i64)>) {
    for (table, rows) in cascaded {
        match outcomes.iter_mut().find(|o| o.table_name == table) {
            Some(outcome) => outcome.hard_deleted += rows,
            None => outcomes.push(TableOutcome {
                hard_deleted: rows,
                ..TableOutcome::new(&table)
            }),
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn run_purges_exactly_the_expired_rows() {
        seed(800);
        let due =
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'");
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run(dry_run => true)"),
            due
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations"),
            800,
            "a dry run changes nothing"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log"),
            0,
            "a dry run logs nothing"
        );
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            due
        );
        assert_eq!(int("SELECT count(*) FROM conversations"), 800 - due);
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete' AND reason = 'expired' AND category = 'conversations' AND retain_for = '1 year'"), due);
        assert_eq!(int("SELECT count(*) FROM retention.runs WHERE trigger = 'manual' AND status = 'succeeded'"), 1);
        assert_eq!(
            int("SELECT rows_acted FROM retention.runs WHERE trigger = 'manual'"),
            due
        );
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            0,
            "a second run finds nothing"
        );
    }

    #[pg_test]
    fn tenant_overrides_come_first() {
        seed(800);
        Spi::run("SELECT retention.set_tenant_policy('t1', 'conversations', '30 days'); SELECT retention.set_tenant_policy('t2', 'conversations', '2 years')").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant = 't1' AND created_at <= now() - interval '30 days'"), 0);
        assert!(int("SELECT count(*) FROM conversations WHERE tenant = 't1'") > 0);
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant = 't2' AND created_at <= now() - interval '2 years'"), 0);
        assert!(int("SELECT count(*) FROM conversations WHERE tenant = 't2' AND created_at <= now() - interval '1 year'") > 0, "t2 keeps two years");
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant = 't0' AND created_at <= now() - interval '1 year'"), 0);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE tenant = 't1' AND retain_for <> '30 days'"), 0);
    }

    #[pg_test]
    fn tagged_rows_follow_their_category_and_zero_retention_purges_at_once() {
        seed(800);
        Spi::run("SELECT retention.define_category('raw_audio', '0'); SELECT retention.tag_where('conversations', 'audit_logs', 'id > 700'); SELECT retention.tag('conversations', 'raw_audio', ARRAY[1, 2])").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE id > 700"),
            100,
            "audit logs keep 7 years"
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE id IN (1, 2)"),
            0,
            "zero retention"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE category = 'raw_audio'"),
            2
        );
    }

    #[pg_test]
    fn last_activity_clock_and_preview_horizon() {
        Spi::run(
            "SELECT retention.define_category('support_records', '3 years', clock => 'last_activity');
             CREATE TABLE tickets (id int PRIMARY KEY, opened_at timestamptz, last_activity_at timestamptz);
             SELECT retention.manage('tickets', 'support_records', activity_column => 'last_activity_at');
             INSERT INTO tickets VALUES (1, now() - interval '5 years', now() - interval '4 years'),
                                        (2, now() - interval '5 years', now() - interval '1 year'),
                                        (3, now() - interval '5 years', now() - interval '2 years 11 months');",
        )
        .unwrap();
        assert_eq!(int("SELECT sum(rows)::bigint FROM retention.preview()"), 1);
        assert_eq!(
            int("SELECT sum(rows)::bigint FROM retention.preview('60 days')"),
            2
        );
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM tickets"), 2);
        assert_eq!(int("SELECT count(*) FROM tickets WHERE id = 1"), 0);
    }

    #[pg_test]
    fn run_refuses_where_it_cannot_purge_safely() {
        assert_eq!(sqlstate("SELECT retention.preview('-1 day')"), "22023");
        assert_eq!(sqlstate("SELECT * FROM retention.run('pg_class')"), "42704");
    }

    #[pg_test]
    fn anonymizing_categories_rewrite_rows_once() {
        Spi::run(
            "SELECT retention.define_category('marketing', '2 years', clock => 'last_activity', action => 'anonymize');
             CREATE TABLE contacts (id int PRIMARY KEY, email text, name text, phone text, score int, last_engaged timestamptz);
             SELECT retention.manage('contacts', 'marketing', activity_column => 'last_engaged',
                 anonymize => '{\"email\": \"hash\", \"name\": null, \"phone\": \"REDACTED\", \"score\": 0}');
             INSERT INTO contacts VALUES (1, 'a@x.io', 'Ann', '555-1', 7, now() - interval '3 years'),
                                         (2, 'b@x.io', 'Ben', '555-2', 9, now() - interval '1 year');",
        )
        .unwrap();
        assert_eq!(
            int("SELECT sum(anonymized)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM contacts WHERE id = 1 AND email = encode(sha256('a@x.io'), 'hex') AND name IS NULL AND phone = 'REDACTED' AND score = 0"), 1);
        assert_eq!(
            int("SELECT count(*) FROM contacts WHERE id = 2 AND email = 'b@x.io' AND name = 'Ben'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE action = 'anonymize' AND row_key = '{\"id\": 1}'"), 1);
        assert_eq!(
            int("SELECT sum(anonymized)::bigint FROM retention.run()"),
            0,
            "never anonymized twice"
        );
        // Still anonymized under other session settings (the fingerprint does not read them).
        Spi::run("SET LOCAL TimeZone = 'Pacific/Auckland'; SET LOCAL DateStyle = 'SQL, DMY'; SET LOCAL extra_float_digits = -3").unwrap();
        assert_eq!(
            int("SELECT sum(anonymized)::bigint FROM retention.run()"),
            0
        );
        // Managed again with another map: the rows anonymized before are not anonymized again.
        Spi::run(
            "SELECT retention.unmanage('contacts');
             SELECT retention.manage('contacts', 'marketing', activity_column => 'last_engaged',
                 anonymize => '{\"email\": \"hash\", \"name\": null, \"phone\": \"REDACTED\", \"score\": 0, \"last_engaged\": \"2000-01-01\"}');",
        )
        .unwrap();
        assert_eq!(
            int("SELECT sum(anonymized)::bigint FROM retention.run()"),
            0
        );
        // The application writes a person's data into the anonymized row again: anonymized
        // again, logged again; and an erasure request for that person finds it.
        Spi::run("UPDATE contacts SET email = 'c@x.io', name = 'Cy' WHERE id = 1").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.preview() WHERE action = 'anonymize' AND held_by IS NULL AND rows = 1"), 1);
        assert_eq!(
            int("SELECT sum(anonymized)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM contacts WHERE id = 1 AND email = encode(sha256('c@x.io'), 'hex') AND name IS NULL"), 1);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE action = 'anonymize' AND row_key = '{\"id\": 1}'"), 2);

        assert_eq!(
            sqlstate("SELECT retention.manage('contacts', 'marketing')"),
            "42710"
        );
        Spi::run("CREATE TABLE c2 (id int PRIMARY KEY, n int, t timestamptz)").unwrap();
        assert_eq!(sqlstate("SELECT retention.manage('c2', 'marketing', activity_column => 't', anonymize => '{\"n\": \"hash\"}')"), "42804");
        assert_eq!(sqlstate("SELECT retention.manage('c2', 'marketing', activity_column => 't', anonymize => '{\"n\": \"abc\"}')"), "22P02");
        assert_eq!(
            sqlstate("SELECT retention.manage('c2', 'marketing', activity_column => 't')"),
            "55000"
        );
        Spi::run("CREATE TABLE c3 (id int PRIMARY KEY, code varchar(8), t timestamptz)").unwrap();
        assert_eq!(sqlstate("SELECT retention.manage('c3', 'marketing', activity_column => 't', anonymize => '{\"code\": \"hash\"}')"), "42804");
        // After a restore, anonymized rows that came back readable are anonymized again.
        Spi::run("UPDATE contacts SET email = 'a@x.io', name = 'Ann' WHERE id = 1; DELETE FROM retention.anonymized_rows").unwrap();
        assert_eq!(
            int("SELECT retention.reapply_deletions(now() - interval '1 hour')"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM contacts WHERE id = 1 AND name IS NULL AND email = encode(sha256('a@x.io'), 'hex')"), 1);
    }
}
