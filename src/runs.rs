//! Purge cycles: `retention.run()` in the calling session, `retention.preview()`, and the
//! `retention.runs` history shared with the background worker.

use crate::catalog;
use crate::error::RetentionError;
use crate::gucs;
use crate::holds::{in_recovery, take_lock, LockKey};
use crate::managed::Managed;
use crate::policy;
use crate::purge::{self, Act, Step};
use crate::regclass::RegClass;
use crate::subxact::isolate;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// What one cycle did to one table.
#[derive(Debug, Default, Clone)]
pub struct TableOutcome {
    pub table_name: String,
    pub soft_deleted: i64,
    pub hard_deleted: i64,
    pub anonymized: i64,
    pub error: Option<String>,
    /// The background worker gave way to a transaction holding a lock it needed.
    pub yielded: bool,
    /// Partitions retired whole (their rows are counted in `hard_deleted`).
    pub retired: Vec<crate::partitions::Retired>,
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
    pub fn add_retired(&mut self, retired: Vec<crate::partitions::Retired>) {
        self.hard_deleted += retired.iter().map(|r| r.rows).sum::<i64>();
        self.retired.extend(retired);
    }

    pub fn total(&self) -> i64 {
        self.soft_deleted + self.hard_deleted + self.anonymized
    }

    fn json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "table": self.table_name,
            "soft_deleted": self.soft_deleted,
            "hard_deleted": self.hard_deleted,
            "anonymized": self.anonymized,
            "error": self.error,
        });
        if self.yielded {
            json["yielded"] = true.into();
        }
        if !self.retired.is_empty() {
            json["retired_partitions"] = self
                .retired
                .iter()
                .map(|r| serde_json::json!({"partition": r.partition, "rows": r.rows}))
                .collect();
        }
        json
    }
}

/// A step every cycle runs after the tables: its name in `retention.runs`, and the work.
pub type CycleStep<'a> = (
    &'a str,
    &'a dyn Fn() -> Result<TableOutcome, RetentionError>,
);

/// The purge steps of one table under the current catalog, at `now() + horizon`.
pub fn table_steps(
    client: &SpiClient,
    table: &Managed,
    horizon: Interval,
) -> Result<Vec<Step>, RetentionError> {
    crate::cascade::check_unlogged_cascades(client, table)?;
    let categories = catalog::load_all(client)?;
    let overrides = policy::overrides(client)?;
    let expiring = policy::segments(client, table, &categories, &overrides, horizon)?;
    let windows = policy::window_segments(table, &categories, &overrides);
    let approved = crate::disposition::approved(client, table)?;
    purge::plan(table, expiring, windows, &approved)
}

/// Inserts a `running` row into retention.runs and returns its id.
pub fn start(client: &mut SpiClient, trigger: &str) -> Result<i64, RetentionError> {
    Ok(client
        .update(
            "INSERT INTO retention.runs (trigger, actor) VALUES ($1, $2) RETURNING id",
            None,
            &[trigger.into(), crate::identity::caller_name().into()],
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
    let details = serde_json::Value::Array(outcomes.iter().map(TableOutcome::json).collect());
    let rows: i64 = outcomes.iter().map(TableOutcome::total).sum();
    let error_text = if errors.is_empty() {
        None
    } else {
        Some(errors.join("; "))
    };
    client.update(
        "UPDATE retention.runs SET finished_at = clock_timestamp(), rows_acted = $2,
                details = $3, error = $4,
                status = CASE WHEN $4 IS NULL THEN 'succeeded' ELSE 'failed' END
          WHERE id = $1",
        None,
        &[
            run_id.into(),
            rows.into(),
            pgrx::JsonB(details).into(),
            error_text.into(),
        ],
    )?;
    client.update(
        "DELETE FROM retention.runs
          WHERE started_at < now() - make_interval(days => $1) AND status <> 'running'",
        None,
        &[gucs::RUN_HISTORY_DAYS.get().into()],
    )?;
    Ok(())
}

/// Purges one table completely within the current transaction (used by `retention.run`).
fn purge_table(
    table: &Managed,
    run_id: i64,
    batch_size: i64,
) -> Result<TableOutcome, RetentionError> {
    let mut outcome = TableOutcome::new(&table.display_name);
    let steps = Spi::connect_mut(|client| table_steps(client, table, crate::catalog::zero()))?;
    retire_partitions(table, &steps, run_id, &mut outcome)?;
    Spi::connect_mut(|client| {
        let mut progress = crate::progress::Entry::start(false);
        progress.table(&table.display_name, steps.len());
        for (number, step) in steps.iter().enumerate() {
            progress.step(number + 1, purge::estimate(client, table, step)?);
            let act = step.act(table);
            loop {
                let rows = purge::batch(client, table, step, Some(run_id), batch_size)?;
                outcome.add(act, rows);
                progress.rows(rows);
                if rows < batch_size {
                    break;
                }
            }
        }
        Ok(outcome)
    })
}

/// Retires the table's wholly due partitions (partitions.rs), each in a subtransaction: one
/// whose retirement fails (its lock not granted in time, the partition gone meanwhile) is
/// rolled back whole and left to the row-by-row purge.
fn retire_partitions(
    table: &Managed,
    steps: &[Step],
    run_id: i64,
    outcome: &mut TableOutcome,
) -> Result<(), RetentionError> {
    let leaves = Spi::connect(|client| crate::partitions::candidates(client, table, steps))?;
    for leaf in leaves {
        let retired = isolate(|| {
            Spi::connect_mut(|c| crate::partitions::retire(c, table, steps, &leaf, Some(run_id)))
        });
        match retired {
            Ok(Ok(retired)) => outcome.add_retired(retired.into_iter().collect()),
            Ok(Err(e)) => log!("pg_retention: partition {leaf} not retired: {e}"),
            Err(message) => log!("pg_retention: partition {leaf} not retired: {message}"),
        }
    }
    Ok(())
}

/// Runs one part of `run()`'s cycle in a subtransaction: its outcome, or its error under
/// `name` with nothing of its work left. Child-table counts of committed work go to `cascaded`.
fn isolated(
    name: &str,
    cascaded: &mut Vec<(String, i64)>,
    work: impl FnOnce() -> Result<TableOutcome, RetentionError>,
) -> TableOutcome {
    crate::cascade::take_cascaded();
    let error = match isolate(work) {
        Ok(Ok(outcome)) => {
            cascaded.extend(crate::cascade::take_cascaded());
            return outcome;
        }
        Ok(Err(e)) => e.to_string(),
        Err(message) => message,
    };
    TableOutcome {
        error: Some(error),
        ..TableOutcome::new(name)
    }
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

/// The log's own retention, reported like a table.
pub fn trim_log() -> Result<TableOutcome, RetentionError> {
    let trimmed = Spi::connect_mut(crate::deletion_log::trim)?;
    Ok(TableOutcome {
        hard_deleted: trimmed,
        ..TableOutcome::new("retention.deletion_log")
    })
}

/// Customer deletions queued behind holds since released, reported like a table.
pub fn process_queue(run_id: i64) -> Result<TableOutcome, RetentionError> {
    let (soft_deleted, hard_deleted) =
        Spi::connect_mut(|c| crate::customer_delete::process_queue(c, Some(run_id)))?;
    Ok(TableOutcome {
        soft_deleted,
        hard_deleted,
        ..TableOutcome::new("retention.deletion_queue")
    })
}

/// Verified erasure requests, executed as part of a cycle and reported like a table.
pub fn process_erasures(run_id: i64) -> Result<TableOutcome, RetentionError> {
    let (hard_deleted, anonymized) =
        Spi::connect_mut(|c| crate::erasure::process(c, Some(run_id)))?;
    Ok(TableOutcome {
        hard_deleted,
        anonymized,
        ..TableOutcome::new("retention.erasure_requests")
    })
}

/// Counts what a purge of one table would do now; rows its hard deletes would take from
/// parent-bound child tables go to `cascaded`, as a real cycle reports them.
fn dry_run_table(
    table: &Managed,
    cascaded: &mut Vec<(String, i64)>,
) -> Result<TableOutcome, RetentionError> {
    Spi::connect_mut(|client| {
        let mut outcome = TableOutcome::new(&table.display_name);
        for step in table_steps(client, table, crate::catalog::zero())? {
            let rows = purge::preview(client, table, &step, crate::catalog::zero())?
                .iter()
                .filter(|l| l.held_by.is_none())
                .map(|l| l.rows)
                .sum();
            outcome.add(step.act(table), rows);
            if step.act(table) == purge::Act::HardDelete {
                cascaded.extend(purge::preview_descendants(client, table, &step)?);
            }
        }
        Ok(outcome)
    })
}

/// Refuses a change of retention state on a standby (25006), where it could only fail later
/// with an internal error.
pub fn require_primary(function: &str) -> Result<(), RetentionError> {
    if in_recovery() {
        return Err(RetentionError::InRecovery(format!(
            "{function} cannot run on a standby: run it on the primary"
        )));
    }
    Ok(())
}

/// Refuses purging where it cannot be done safely. (Every purge entry point calls it first,
/// which is also where the session forgets child-table counts no cycle collected.)
pub fn check_can_purge() -> Result<(), RetentionError> {
    crate::cascade::take_cascaded();
    if in_recovery() {
        return Err(RetentionError::InRecovery(
            "rows cannot be purged on a standby: run it on the primary".into(),
        ));
    }
    crate::schema_version::require_current()?;
    // The hold check relies on a fresh snapshot per statement (see holds.rs).
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Err(RetentionError::WrongIsolation(
            "purging needs a READ COMMITTED transaction (the hold check reads holds with a fresh snapshot per statement)".into(),
        ));
    }
    Ok(())
}

/// One purge cycle of `run()` over `tables`, each isolated in a subtransaction, then the
/// queue, the erasure requests and the log's own retention; recorded in retention.runs.
fn purge_all(tables: &[Managed], batch_size: i64) -> Result<Vec<TableOutcome>, RetentionError> {
    let run_id = Spi::connect_mut(|client| -> Result<i64, RetentionError> {
        take_lock(LockKey::Purger, true)?;
        start(client, "manual")
    })?;
    let mut outcomes = Vec::with_capacity(tables.len());
    let mut cascaded = Vec::new();
    for table in tables {
        outcomes.push(isolated(&table.display_name, &mut cascaded, || {
            purge_table(table, run_id, batch_size)
        }));
    }
    let steps: [CycleStep; 4] = [
        ("retention.disposition_queue", &|| {
            crate::disposition::refresh(run_id)
        }),
        ("retention.deletion_queue", &|| process_queue(run_id)),
        ("retention.erasure_requests", &|| process_erasures(run_id)),
        ("retention.deletion_log", &trim_log),
    ];
    for (name, step) in steps {
        let outcome = isolated(name, &mut cascaded, step);
        if outcome.total() > 0 || outcome.error.is_some() {
            outcomes.push(outcome);
        }
    }
    add_cascaded(&mut outcomes, cascaded);
    Spi::connect_mut(|client| finish(client, run_id, &outcomes, None))?;
    Ok(outcomes)
}

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn run(
    tbl: default!(Option<RegClass>, "NULL"),
    dry_run: default!(Option<bool>, "false"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(soft_deleted, i64),
            name!(hard_deleted, i64),
            name!(anonymized, i64),
            name!(error, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let dry_run = crate::error::required(dry_run, "dry_run")?;
    let only = tbl.map(|r| r.oid());
    let tables = Spi::connect(|client| -> Result<Vec<Managed>, RetentionError> {
        Ok(match only {
            Some(oid) => vec![Managed::load(client, oid)?],
            None => Managed::load_all(client)?,
        })
    })?;
    let batch_size = gucs::BATCH_SIZE.get() as i64;
    let mut outcomes = Vec::with_capacity(tables.len());
    if dry_run {
        let mut cascaded = Vec::new();
        for table in &tables {
            outcomes.push(dry_run_table(table, &mut cascaded)?);
        }
        add_cascaded(&mut outcomes, cascaded);
    } else {
        check_can_purge()?;
        outcomes = crate::identity::as_extension(|| purge_all(&tables, batch_size))?;
    }
    Ok(TableIterator::new(outcomes.into_iter().map(|o| {
        (
            o.table_name,
            o.soft_deleted,
            o.hard_deleted,
            o.anonymized,
            o.error,
        )
    })))
}

#[allow(clippy::type_complexity)] // the result row, spelled out for pgrx
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn preview(
    horizon: default!(Option<Interval>, "'0'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(category, String),
            name!(tenant, Option<String>),
            name!(action, String),
            name!(rows, i64),
            name!(held_by, Option<i64>),
        ),
    >,
    ErrorReport,
> {
    let horizon = crate::error::required(horizon, "horizon")?;
    catalog::check_interval("horizon", &horizon)?;
    // Read as the extension: the policy-admin and auditor duties hold EXECUTE, not rights on
    // every retention table (application tables are read as their owners, owner.rs).
    let rows = crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Vec<_>, RetentionError> {
            let mut rows = Vec::new();
            for table in Managed::load_all(client)? {
                let steps = table_steps(client, &table, horizon)?;
                // Partitions retired whole: their rows are among the hard_delete lines.
                let held = crate::holds::active_for_reading(client, &table)?;
                for retired in crate::partitions::preview(client, &table, &steps, horizon, &held)? {
                    rows.push((
                        retired.partition,
                        table.category.clone(),
                        None,
                        "retire_partition".to_string(),
                        retired.rows,
                        None,
                    ));
                }
                for step in steps {
                    for line in purge::preview(client, &table, &step, horizon)? {
                        rows.push((
                            table.display_name.clone(),
                            step.segment.category.name.clone(),
                            line.tenant,
                            step.act(&table).log_action().to_string(),
                            line.rows,
                            line.held_by,
                        ));
                    }
                }
            }
            Ok(rows)
        })
    })?;
    Ok(TableIterator::new(rows))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
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
