//! The one purge cycle, driven alike by `retention.run()` and by the background worker: each
//! managed table (its wholly due partitions retired, then its steps batch by batch), then the
//! cycle steps after the tables (disposition queue, deletion queue, erasure requests, the log's
//! own retention). The two differ only in how work is isolated (`run()`: one subtransaction of
//! the caller's transaction per table, nested ones for what may fail alone; the worker: a
//! transaction of its own per unit) and in the worker's pacing.

use crate::engine::cascade::take_cascaded;
use crate::engine::managed::Managed;
use crate::engine::purge::{self, Step};
use crate::engine::runs::add_cascaded;
use crate::engine::runs::{self, TableOutcome};
use crate::engine::vocabulary::Trigger;
use crate::error::RetentionError;
use crate::pg::gucs;
use crate::pg::locks::lock_was_busy;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::progress::Entry;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::time::{Duration, Instant};

/// How a cycle's work is isolated and paced.
pub trait Isolation {
    /// Runs one unit of a table's purge (its plan, an estimate, a batch): kept when it returns
    /// Ok. When it fails, none of it is kept (the worker), or the table's purge fails whole
    /// (`run()`, see [`Isolation::table`]); the error's message is returned.
    fn unit<R>(&mut self, work: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, String>;
    /// Runs a unit whose failure leaves the rest of the table alone (a partition's retirement,
    /// a step after the tables): all of it kept, or none.
    fn attempt<R>(&mut self, work: impl FnOnce() -> Result<R, RetentionError>)
        -> Result<R, String>;
    /// Runs one table's purge. `run()`: in one subtransaction, rolled back whole when one of
    /// its units fails (the outcome is then the error alone, as if nothing was done); the
    /// worker: as it is, its units committed one by one.
    fn table(&mut self, name: &str, purge: impl FnOnce(&mut Self) -> TableOutcome) -> TableOutcome;
    /// Whether this is the background worker's cycle (as `retention.progress` shows it).
    fn is_worker(&self) -> bool;
    /// Whether the cycle must end before its next unit (shutdown).
    fn stopping(&mut self) -> bool;
    /// Whether purging was disabled: the cycle moves on to the steps after the tables.
    fn disabled(&self) -> bool;
    /// Whether to give way to a `retention.run()` waiting for this cycle.
    fn give_way(&self) -> bool;
    /// Rows for the next batch.
    fn batch_size(&self) -> i64;
    /// After a batch of `rows` that took `spent`: waits as the throttle asks; false to stop.
    fn pace(&mut self, rows: i64, spent: Duration, progress: &Entry) -> bool;
}

/// `retention.run()`'s isolation: each table one subtransaction of the caller's transaction
/// (a few per cycle: a transaction's subtransactions past 64 slow every session's visibility
/// checks), a retirement or a step after the tables one nested in it; it never stops early,
/// never gives way and is not throttled.
pub struct InSession;

impl Isolation for InSession {
    fn unit<R>(&mut self, work: impl FnOnce() -> Result<R, RetentionError>) -> Result<R, String> {
        // Inside the table's subtransaction: an error raised here rolls the table back whole.
        work().map_err(|e| e.to_string())
    }

    fn attempt<R>(
        &mut self,
        work: impl FnOnce() -> Result<R, RetentionError>,
    ) -> Result<R, String> {
        crate::pg::xact::attempt(work)
    }

    fn table(&mut self, name: &str, purge: impl FnOnce(&mut Self) -> TableOutcome) -> TableOutcome {
        let purged = crate::pg::xact::isolate(|| {
            let outcome = purge(self);
            match outcome.error {
                Some(_) => Err(outcome),
                None => Ok(outcome),
            }
        });
        match purged {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(failed)) => TableOutcome {
                error: failed.error,
                ..TableOutcome::new(name)
            },
            Err(message) => TableOutcome::new(name).failed(message),
        }
    }

    fn is_worker(&self) -> bool {
        false
    }

    fn stopping(&mut self) -> bool {
        false
    }

    fn disabled(&self) -> bool {
        false
    }

    fn give_way(&self) -> bool {
        false
    }

    fn batch_size(&self) -> i64 {
        gucs::BATCH_SIZE.get() as i64
    }

    fn pace(&mut self, _rows: i64, _spent: Duration, _progress: &Entry) -> bool {
        true
    }
}

/// What one cycle did, as it goes.
struct Cycle {
    run_id: i64,
    outcomes: Vec<TableOutcome>,
    /// Rows cascades took from parent-bound child tables in committed units.
    cascaded: Vec<(String, i64)>,
    progress: Entry,
}

/// Runs the cycle `run_id` over `tables` and returns its outcomes (per table, then per cycle
/// step with something to report), ready for `runs::finish`.
pub fn drive(iso: &mut impl Isolation, run_id: i64, tables: &[Managed]) -> Vec<TableOutcome> {
    let mut cycle = Cycle {
        run_id,
        outcomes: Vec::with_capacity(tables.len()),
        cascaded: Vec::new(),
        progress: Entry::start(iso.is_worker()),
    };
    for table in tables {
        if iso.stopping() || iso.disabled() {
            break;
        }
        let kept = cycle.cascaded.len();
        let outcome = iso.table(&table.display_name, |iso| cycle.purge_table(iso, table));
        if outcome.total() == 0 {
            // Rolled back whole (run()), or nothing committed: no child rows went either.
            cycle.cascaded.truncate(kept);
        }
        cycle.outcomes.push(outcome);
        if iso.give_way() {
            break;
        }
    }
    // A retention.run() waiting for the worker takes over: it runs a whole cycle itself.
    let taken_over = iso.give_way();
    if taken_over {
        log!(
            "pg_retention: gave way to retention.run() in this database; the next cycle continues"
        );
    }
    for step in after_tables(run_id) {
        if taken_over || iso.stopping() {
            break;
        }
        cycle.after_tables_step(iso, step);
    }
    add_cascaded(&mut cycle.outcomes, cycle.cascaded);
    log_yielded(&cycle.outcomes);
    cycle.outcomes
}

/// The log's own retention, reported like a table.
pub fn trim_log() -> Result<TableOutcome, RetentionError> {
    let trimmed = Spi::connect_mut(crate::engine::deletion_log::trim)?;
    Ok(TableOutcome {
        hard_deleted: trimmed,
        ..TableOutcome::new("retention.deletion_log")
    })
}

/// Customer deletions queued behind holds since released, reported like a table.
pub fn process_queue(run_id: i64) -> Result<TableOutcome, RetentionError> {
    let (soft_deleted, hard_deleted) =
        Spi::connect_mut(|c| crate::engine::customer_delete::process_queue(c, Some(run_id)))?;
    Ok(TableOutcome {
        soft_deleted,
        hard_deleted,
        ..TableOutcome::new("retention.deletion_queue")
    })
}

/// Verified erasure requests, executed as part of a cycle and reported like a table.
pub fn process_erasures(run_id: i64) -> Result<TableOutcome, RetentionError> {
    let (hard_deleted, anonymized) =
        Spi::connect_mut(|c| crate::engine::erasure::process(c, Some(run_id)))?;
    Ok(TableOutcome {
        hard_deleted,
        anonymized,
        ..TableOutcome::new("retention.erasure_requests")
    })
}

/// A step of the cycle after the tables: its name in `retention.runs`, and the work.
type CycleStep = (
    &'static str,
    Box<dyn Fn() -> Result<TableOutcome, RetentionError>>,
);

/// The steps after the tables, in order.
fn after_tables(run_id: i64) -> [CycleStep; 4] {
    [
        (
            "retention.disposition_queue",
            Box::new(move || crate::engine::disposition::refresh(run_id)),
        ),
        (
            "retention.deletion_queue",
            Box::new(move || process_queue(run_id)),
        ),
        (
            "retention.erasure_requests",
            Box::new(move || process_erasures(run_id)),
        ),
        ("retention.deletion_log", Box::new(trim_log)),
    ]
}

/// Tells the server log which parts of the cycle gave way to a lock holder.
fn log_yielded(outcomes: &[TableOutcome]) {
    let yielded: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.yielded)
        .map(|o| o.table_name.as_str())
        .collect();
    if !yielded.is_empty() {
        log!(
            "pg_retention: gave way to another transaction holding the hold or deletion-log lock ({}); the next cycle continues",
            yielded.join(", ")
        );
    }
}

impl Cycle {
    /// Runs one unit through `iso`; child-table counts are kept only when it is kept.
    fn unit<R>(
        &mut self,
        iso: &mut impl Isolation,
        work: impl FnOnce() -> Result<R, RetentionError>,
    ) -> Result<R, String> {
        self.counting(|| iso.unit(work))
    }

    /// [`Cycle::unit`] for a unit whose failure leaves the rest alone (`Isolation::attempt`).
    fn attempt<R>(
        &mut self,
        iso: &mut impl Isolation,
        work: impl FnOnce() -> Result<R, RetentionError>,
    ) -> Result<R, String> {
        self.counting(|| iso.attempt(work))
    }

    /// Runs `isolated` and keeps the child-table counts of its cascades when it succeeds.
    fn counting<R>(&mut self, isolated: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
        take_cascaded();
        let result = isolated();
        let children = take_cascaded();
        if result.is_ok() {
            self.cascaded.extend(children);
        }
        result
    }

    /// Purges one table batch by batch: what was done, with the error that stopped it, or
    /// `yielded` when it gave way to a transaction holding one of the extension's locks.
    fn purge_table(&mut self, iso: &mut impl Isolation, table: &Managed) -> TableOutcome {
        let mut outcome = TableOutcome::new(&table.display_name);
        let planned = self.unit(iso, || {
            Spi::connect(|c| purge::table_steps(c, table, crate::engine::period::zero()))
        });
        let steps = match planned {
            Ok(mut steps) => {
                purge::in_purge_order(&mut steps);
                steps
            }
            Err(e) => return outcome.failed(e),
        };
        if let Err(e) = self.retire_partitions(iso, table, &steps, &mut outcome) {
            return outcome.failed(e);
        }
        self.progress.table(&table.display_name, steps.len());
        for (number, step) in steps.iter().enumerate() {
            if outcome.yielded || iso.stopping() {
                break;
            }
            let estimate = self.unit(iso, || {
                Spi::connect_mut(|c| purge::estimate(c, table, step))
            });
            self.progress.step(number + 1, estimate.unwrap_or(0));
            if let Err(e) = self.purge_step(iso, table, step, &mut outcome) {
                return outcome.failed(e);
            }
        }
        outcome
    }

    /// Runs one step's batches until a short batch, a stop, or a lock holder to give way to.
    fn purge_step(
        &mut self,
        iso: &mut impl Isolation,
        table: &Managed,
        step: &Step,
        outcome: &mut TableOutcome,
    ) -> Result<(), String> {
        let run_id = self.run_id;
        loop {
            let batch_size = iso.batch_size();
            let started = Instant::now();
            let result = self.unit(iso, || {
                Spi::connect_mut(|c| purge::batch(c, table, step, Some(run_id), batch_size))
            });
            match result {
                Ok(rows) => {
                    outcome.add(step.act(table), rows);
                    self.progress.rows(rows);
                    if iso.give_way() {
                        outcome.yielded = true;
                        return Ok(());
                    }
                    if !iso.pace(rows, started.elapsed(), &self.progress) || rows < batch_size {
                        return Ok(());
                    }
                }
                Err(_) if lock_was_busy() => {
                    outcome.yielded = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Retires the table's wholly due partitions (partitions.rs), each its own unit: one whose
    /// retirement fails (its lock not granted in time, the partition gone meanwhile) is rolled
    /// back whole and left to the row-by-row purge; giving way to a lock holder stops the table.
    fn retire_partitions(
        &mut self,
        iso: &mut impl Isolation,
        table: &Managed,
        steps: &[Step],
        outcome: &mut TableOutcome,
    ) -> Result<(), String> {
        use crate::engine::partitions;
        let leaves = self.unit(iso, || {
            Spi::connect(|c| partitions::candidates(c, table, steps))
        })?;
        let run_id = Some(self.run_id);
        for leaf in leaves {
            let retired = self.attempt(iso, || {
                Spi::connect_mut(|c| partitions::retire(c, table, steps, &leaf, run_id))
            });
            match retired {
                Ok(retired) => outcome.add_retired(retired.into_iter().collect()),
                Err(_) if lock_was_busy() => {
                    outcome.yielded = true;
                    return Ok(());
                }
                Err(e) => log!(
                    "pg_retention: partition {leaf} of {} not retired: {e}",
                    table.display_name
                ),
            }
            if iso.stopping() {
                break;
            }
        }
        Ok(())
    }

    /// Runs one step after the tables; what it did is reported when there is something to say.
    fn after_tables_step(&mut self, iso: &mut impl Isolation, (name, work): CycleStep) {
        let outcome = match self.attempt(iso, work) {
            Ok(outcome) => outcome,
            Err(_) if lock_was_busy() => TableOutcome {
                yielded: true,
                ..TableOutcome::new(name)
            },
            Err(e) => TableOutcome::new(name).failed(e),
        };
        if outcome.total() > 0 || outcome.error.is_some() || outcome.yielded {
            self.outcomes.push(outcome);
        }
    }
}

/// `retention.run()`'s cycle over `tables` in the caller's transaction, each unit of work a
/// subtransaction (cycle.rs), recorded in retention.runs.
pub fn purge_all(tables: &[Managed]) -> Result<Vec<TableOutcome>, RetentionError> {
    let run_id = Spi::connect_mut(|client| -> Result<i64, RetentionError> {
        take_lock(LockKey::Purger, true)?;
        runs::start(client, Trigger::Manual)
    })?;
    let outcomes = drive(&mut InSession, run_id, tables);
    Spi::connect_mut(|client| runs::finish(client, run_id, &outcomes, None))?;
    Ok(outcomes)
}

/// Counts what a purge of one table would do now; rows its hard deletes would take from
/// parent-bound child tables go to `cascaded`, as a real cycle reports them.
pub fn dry_run_table(
    table: &Managed,
    cascaded: &mut Vec<(String, i64)>,
) -> Result<TableOutcome, RetentionError> {
    Spi::connect_mut(|client| {
        let mut outcome = TableOutcome::new(&table.display_name);
        let steps = purge::table_steps(client, table, crate::engine::period::zero())?;
        announce_retirements(client, table, &steps)?;
        for step in steps {
            let rows = purge::preview(client, table, &step, crate::engine::period::zero())?
                .iter()
                .filter(|l| l.held_by.is_none())
                .map(|l| l.rows)
                .sum();
            outcome.add(step.act(table), rows);
            if step.act(table) == crate::engine::acting::Act::HardDelete {
                cascaded.extend(purge::preview_descendants(client, table, &step)?);
            }
        }
        Ok(outcome)
    })
}

/// Tells the caller of a dry run, one NOTICE each, which partitions a real cycle would retire
/// whole (their rows are in the table's line, as a real cycle counts them).
fn announce_retirements(
    client: &SpiClient,
    table: &Managed,
    steps: &[Step],
) -> Result<(), RetentionError> {
    let held = crate::engine::holds::active_for_reading(client, table)?;
    let zero = crate::engine::period::zero();
    for retired in crate::engine::partitions::preview(client, table, steps, zero, &held)? {
        notice!(
            "dry run: partition {} of {} would be retired whole ({} rows)",
            retired.partition,
            table.display_name,
            retired.rows
        );
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, seed};
    use pgrx::prelude::*;

    /// `run()` purges each table in one subtransaction: a table whose purge fails half-way is
    /// rolled back whole (no row gone, no entry), the error is reported, and the next table is
    /// purged.
    #[pg_test]
    fn run_rolls_a_failing_table_back_whole_and_goes_on() {
        seed(800);
        Spi::run(
            "CREATE TABLE notes (id int PRIMARY KEY, created_at timestamptz NOT NULL);
             INSERT INTO notes SELECT i, now() - interval '2 years' FROM generate_series(1, 50) i;
             SELECT retention.manage('notes', 'conversations', created_column => 'created_at');
             CREATE FUNCTION refuse_late() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF OLD.id = 30 THEN RAISE EXCEPTION 'notes: row 30 refuses'; END IF;
                 RETURN OLD;
             END $$;
             CREATE TRIGGER refuse_late BEFORE DELETE ON notes FOR EACH ROW EXECUTE FUNCTION refuse_late();
             SET pg_retention.batch_size = 10;",
        )
        .unwrap();
        let due =
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'");
        assert!(due > 0);
        assert_eq!(
            int(
                "SELECT count(*) FROM retention.run() WHERE table_name = 'public.notes'
                   AND hard_deleted = 0 AND error LIKE '%row 30 refuses%'"
            ),
            1
        );
        // Batches of 10: those before the one that met row 30 were rolled back with it.
        assert_eq!(int("SELECT count(*) FROM notes"), 50);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.notes'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.conversations'"),
            due
        );
    }
}
