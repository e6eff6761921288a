//! The purge engine: builds, for one table and one segment of its policy, the set-based
//! statement that acts on at most one batch of due rows and returns their keys, and writes
//! their log entries in the same transaction.
//!
//! A batch is one statement: `WITH due AS (SELECT … ORDER BY clock LIMIT n FOR UPDATE OF t SKIP
//! LOCKED) DELETE … WHERE ctid = ANY(…) RETURNING key, tenant`. The hold check is part of the
//! statement that selects the rows, under the shared hold lock (see holds.rs).

use crate::engine::acting::{not_anonymized_sql, row_id_sql, Act, Acted, Acting};
use crate::engine::cascade;
use crate::engine::cascade::act_and_log;
use crate::engine::catalog::Action;
use crate::engine::deletion_log::{self};
use crate::engine::holds;
use crate::engine::managed::Managed;
use crate::engine::policy::{Segment, TenantScope};
use crate::engine::rowset::{Lock, RowSet};
use crate::engine::vocabulary::reason;
use crate::engine::windows::Path;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::params::Params;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::cell::{Cell, RefCell};

/// Which rows of a segment a step works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Rows whose retention ran out (soft-deleted first when the segment has a window).
    Expire,
    /// Soft-deleted rows whose recovery window has passed.
    Finish,
}

/// One unit of purge work: a segment and a phase.
#[derive(Debug, Clone)]
pub struct Step {
    pub segment: Segment,
    pub phase: Phase,
    /// For a reviewed category: the approved disposition batch whose rows this step expires
    /// (its tenant and due day); such a category's rows expire by no other step.
    pub approval: Option<crate::engine::approvals::Approved>,
    /// The newest clock value this step has acted on in this cycle: its next batch starts the
    /// index range there (see [`batch`]).
    pub resume: Cell<Option<TimestampWithTimeZone>>,
    /// For a Citus distributed table: the distribution-key value this step is purging, and the
    /// last one it finished (see [`batch`]).
    pub shard: RefCell<ShardCursor>,
}

/// Where a step stands among a distributed table's distribution-key values (as text): they are
/// purged one at a time, in the column's order.
#[derive(Debug, Clone, Default)]
pub struct ShardCursor {
    pub current: Option<String>,
    pub finished: Option<String>,
}

impl Step {
    /// How long after its clock (Expire) or its soft delete (Finish) a row of this step is due.
    pub fn due_after(&self) -> Interval {
        match self.phase {
            Phase::Expire => self.segment.retain_for,
            Phase::Finish => self.segment.windows.shortest(),
        }
    }

    pub fn act(&self, table: &Managed) -> Act {
        if self.segment.category.action == Action::Anonymize {
            return Act::Anonymize;
        }
        match self.phase {
            Phase::Finish => Act::HardDelete,
            Phase::Expire
                if self.segment.windows.of(Path::Expired).is_some()
                    && table.soft_delete_column.is_some() =>
            {
                Act::SoftDelete
            }
            Phase::Expire => Act::HardDelete,
        }
    }
}

/// The purge steps of one table under the current catalog, at `now() + horizon`.
pub fn table_steps(
    client: &SpiClient,
    table: &Managed,
    horizon: Interval,
) -> Result<Vec<Step>, RetentionError> {
    crate::engine::children::check_unlogged_cascades(client, table)?;
    let categories = crate::engine::catalog::load_all(client)?;
    let overrides = crate::engine::policy::overrides(client)?;
    let expiring =
        crate::engine::policy::segments(client, table, &categories, &overrides, horizon)?;
    let windows = crate::engine::policy::window_segments(table, &categories, &overrides);
    let approved = crate::engine::approvals::approved(client, table)?;
    plan(table, expiring, windows, &approved)
}

/// The steps of a table's purge, in order: expired rows first (soft-deleted when their policy
/// has a window), then soft-deleted rows whose window has passed.
pub fn plan(
    table: &Managed,
    expiring: Vec<Segment>,
    windows: Vec<Segment>,
    approved: &[crate::engine::approvals::Approved],
) -> Result<Vec<Step>, RetentionError> {
    let mut steps = Vec::new();
    for segment in expiring {
        if !workable(table, &segment)? {
            continue;
        }
        // A reviewed category's rows expire only in batches a reviewer approved.
        if segment.category.review.is_some() {
            steps.extend(
                approved
                    .iter()
                    .filter(|a| a.in_segment(&segment))
                    .map(|a| Step {
                        segment: segment.clone(),
                        phase: Phase::Expire,
                        approval: Some(a.clone()),
                        resume: Cell::new(None),
                        shard: Default::default(),
                    }),
            );
            continue;
        }
        steps.push(Step {
            segment,
            phase: Phase::Expire,
            approval: None,
            resume: Cell::new(None),
            shard: Default::default(),
        });
    }
    for segment in windows {
        if segment.category.action == Action::Anonymize {
            continue;
        }
        if !segment.windows.uniform() {
            refuse_on_citus(
                table,
                &segment,
                "has soft-delete windows that differ per path",
            )?;
        }
        steps.push(Step {
            segment,
            phase: Phase::Finish,
            approval: None,
            resume: Cell::new(None),
            shard: Default::default(),
        });
    }
    Ok(steps)
}

/// Puts `steps` in the order a cycle takes them: expiring rows before finishing soft deletes,
/// and among those the table's default category first, its tenants without an override before
/// those with one. The default category's rows (the untagged ones) are most of a table as a
/// rule; purging them first, in clock order, lets their log entries land at the end of the
/// log's `(table_name, row_key)` index, where PostgreSQL inserts without descending the tree.
/// Taken after another category's rows, spread over the whole key range, each entry lands
/// among them and costs a descent: a fifth of a purge's time in a profile of the benchmark.
/// Steps act on disjoint rows, so their order changes nothing else.
pub fn in_purge_order(steps: &mut [Step]) {
    steps.sort_by_key(|step| {
        (
            step.phase != Phase::Expire,
            !step.segment.is_default,
            matches!(step.segment.tenant, TenantScope::Only(_)),
        )
    });
}

/// Whether the table can act on an expiring segment's rows. Rows can carry a category the
/// table cannot act on only by being written directly (tag() refuses it): those are left
/// alone (false); the default category must be workable (an error otherwise).
fn workable(table: &Managed, segment: &Segment) -> Result<bool, RetentionError> {
    let anonymizes = segment.category.action == Action::Anonymize;
    let workable = if anonymizes {
        !table.anonymize.is_empty()
    } else {
        segment.windows.of(Path::Expired).is_none() || table.soft_delete_column.is_some()
    };
    if !workable && !segment.is_default {
        return Ok(false);
    }
    if anonymizes && table.anonymize.is_empty() {
        return Err(RetentionError::MissingColumnRole(
            format!(
                "category \"{}\" anonymizes, and table {} has no anonymize map",
                segment.category.name, table.display_name
            ),
            "Call retention.manage() with anonymize => '{\"column\": null, …}'.".into(),
        ));
    }
    if !anonymizes && !workable {
        return Err(RetentionError::MissingColumnRole(
            format!(
                "the policy of category \"{}\" has a soft-delete window, and table {} has no soft_delete_column",
                segment.category.name, table.display_name
            ),
            "Manage the table with soft_delete_column, or clear the window.".into(),
        ));
    }
    Ok(true)
}

/// Refuses what the purge cannot do yet on a Citus distributed table: a step whose rows are
/// checked one by one against the deletion log (why a row was soft-deleted) through a function
/// that would run on the shards, where the log is empty.
fn refuse_on_citus(table: &Managed, segment: &Segment, what: &str) -> Result<(), RetentionError> {
    if table.distribution.is_none() {
        return Ok(());
    }
    Err(RetentionError::Unsupported(format!(
        "category \"{}\" {what}, and {} is a Citus distributed table: not supported there yet (see the README)",
        segment.category.name, table.display_name
    )))
}

/// The WHERE conditions and ORDER BY of a step's rows, at `now() + horizon`, holds aside.
pub fn step_sql(
    table: &Managed,
    step: &Step,
    horizon: Interval,
    params: &mut Params,
) -> (Vec<String>, Option<String>) {
    let mut conditions = step.segment.rows_sql(table, params);
    let soft = table.soft_delete_column.as_deref().map(quote_identifier);
    let order = match step.phase {
        Phase::Expire => {
            conditions.extend(step.segment.due_sql(horizon, params));
            if let Some(approval) = &step.approval {
                conditions.extend(approval.conditions(table, &step.segment, params));
            }
            match (step.act(table), &soft) {
                (Act::SoftDelete, Some(soft)) => conditions.push(format!("t.{soft} IS NULL")),
                // A distributed table's batches test their rows against the marks of one
                // distribution-key value at a time (see `batch`).
                (Act::Anonymize, _) if table.distribution.is_none() => {
                    conditions.push(not_anonymized_sql(table, params))
                }
                _ => {}
            }
            step.segment.order_sql()
        }
        Phase::Finish => {
            let soft = format!("t.{}", soft.unwrap_or_default());
            let at = format!("(now() + {}::interval)", params.bind(horizon));
            let path = table.soft_delete_path_sql(params);
            conditions.extend(step.segment.windows.finished_sql(&soft, &at, &path, params));
            Some(soft)
        }
    };
    (conditions, order)
}

/// [`step_sql`] with the hold predicate: a step's rows that none of `held` covers (parent-bound
/// descendants aside, which only hard deletes and previews of them check).
pub fn unheld_step_sql(
    table: &Managed,
    step: &Step,
    horizon: Interval,
    held: &[holds::Hold],
    params: &mut Params,
) -> (Vec<String>, Option<String>) {
    let (mut conditions, order) = step_sql(table, step, horizon, params);
    let category = step.segment.category.name.as_str();
    if let Some(covered) = holds::any_covers_sql(held, table, Some(category), "", params) {
        conditions.push(format!("NOT {covered}"));
    }
    (conditions, order)
}

/// Acts on one batch of a step's due rows and logs them; returns the number of rows, fewer
/// than `batch_size` only when the step has no more due rows it can take now.
///
/// A Citus distributed table's batch is made of statements that each carry the equality on
/// one distribution-key value, in the selecting and in the acting statement, so that Citus
/// routes them (and their row locks) to one shard: multi-shard `FOR UPDATE` is refused. The
/// step takes the values in order, each until a statement comes back short.
pub fn batch(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
    run_id: Option<i64>,
    batch_size: i64,
) -> Result<i64, RetentionError> {
    take_lock(LockKey::Holds, false)?;
    let held = holds::active_for(client, table)?;
    let mut done = 0;
    while done < batch_size {
        let mut params = Params::default();
        let (mut conditions, order) = unheld_step_sql(
            table,
            step,
            crate::engine::period::zero(),
            &held,
            &mut params,
        );
        let mut shard = None;
        if let Some(dist) = &table.distribution {
            let Some(key) = shard_key(client, table, step, &conditions, &mut params)? else {
                break;
            };
            if step.act(table) == Act::Anonymize {
                conditions.push(crate::engine::acting::not_anonymized_in_sql(
                    client,
                    table,
                    Some(&key),
                    &mut params,
                )?);
            }
            let placeholder = params.bind(key);
            shard = Some((
                format!(
                    "t.{} = {placeholder}::{}",
                    quote_identifier(&dist.column),
                    dist.type_name
                ),
                placeholder,
            ));
        }
        let value = shard.as_ref().map(|(_, placeholder)| placeholder.as_str());
        if step.act(table) == Act::HardDelete {
            if let Some(blocked) =
                crate::engine::keeping::held_descendant_sql(client, table, &mut params, value)?
            {
                conditions.push(format!("NOT {blocked}"));
            }
        }
        let shard = shard.map(|(equality, _)| equality);
        conditions.extend(shard.clone());
        let limit = batch_size - done;
        let query = DueQuery {
            conditions,
            order,
            shard,
            limit,
        };
        let rows = act_on(client, table, step, run_id, query, &mut params)?;
        done += rows;
        if table.distribution.is_none() {
            break;
        }
        if rows < limit {
            let mut cursor = step.shard.borrow_mut();
            cursor.finished = cursor.current.take();
            step.resume.set(None);
        }
    }
    Ok(done)
}

/// The distribution-key value (as text) a distributed table's step purges next: the current
/// one, else the first after the last finished one that has a row matching `conditions` (the
/// step's unheld rows: a value whose rows all have held descendants comes back empty and is
/// passed), read across shards without locks, as the table's owner; None when there is none.
fn shard_key(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
    conditions: &[String],
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    let Some(dist) = &table.distribution else {
        return Ok(None);
    };
    let mut cursor = step.shard.borrow_mut();
    if cursor.current.is_some() {
        return Ok(cursor.current.clone());
    }
    let column = format!("t.{}", quote_identifier(&dist.column));
    let mut rows = RowSet::of(table).filters(conditions.iter().cloned());
    if let Some(finished) = &cursor.finished {
        let after = params.bind(finished.clone());
        rows = rows.filter(format!("{column} > {after}::{}", dist.type_name));
    }
    let sql = rows
        .order_by(Some(column.clone()))
        .limit(params.bind(1i64))
        .select(&format!("{column}::text"));
    cursor.current = match executor::select(client, table, &sql, params.args())?.next() {
        Some(row) => row.get::<String>(1)?,
        None => None,
    };
    Ok(cursor.current.clone())
}

/// One statement's worth of a step's due rows.
struct DueQuery {
    conditions: Vec<String>,
    order: Option<String>,
    /// The distribution-key equality, for a Citus distributed table.
    shard: Option<String>,
    limit: i64,
}

/// Acts on the rows `query` selects (at most its limit, locked rows skipped) and logs them;
/// moves the step's keyset resume point to the newest clock acted on.
fn act_on(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
    run_id: Option<i64>,
    query: DueQuery,
    params: &mut Params,
) -> Result<i64, RetentionError> {
    let DueQuery {
        mut conditions,
        order,
        shard,
        limit,
    } = query;
    // Keyset: resume the clock-ordered range where this step's previous batch stopped, so a
    // cycle does not walk again, batch after batch, over rows it has passed (other segments'
    // rows, held or locked rows, and inside one run() transaction the rows it deleted itself):
    // that made a cycle quadratic in the table's size. Rows skipped this way (locked, or
    // written with an older clock during the cycle) are due again at the next cycle.
    if let (Some(order), Some(after)) = (&order, step.resume.get()) {
        conditions.push(format!("{order} >= {}::timestamptz", params.bind(after)));
    }
    let due = RowSet::of(table)
        .filters(conditions)
        .order_by(order.clone())
        .limit(params.bind(limit))
        .lock(Lock::SkipLocked)
        .select(&row_id_sql(table, shard.is_some()));
    let act = step.act(table);
    let clock = order.as_ref().map(|o| format!("{o}::timestamptz"));
    let acting = Acting {
        clock: clock.as_deref(),
        shard,
        ..Acting::new(
            act,
            &due,
            deletion_log::Batch {
                action: act.log_action(),
                table_name: &table.display_name,
                reason: reason::EXPIRED,
                run_id,
                reason_of_soft_delete: step.phase == Phase::Finish,
                approval_id: step.approval.as_ref().map(|a| a.id),
            },
        )
        .under(
            Some(&step.segment.category.name),
            Some(step.segment.retain_for),
        )
    };
    let Acted { rows, newest } = act_and_log(client, table, &acting, params)?;
    if let Some(at) = newest {
        if step
            .resume
            .get()
            .is_none_or(|r| i64::from(r) < i64::from(at))
        {
            step.resume.set(Some(at));
        }
    }
    Ok(rows)
}

/// The planner's estimate of a step's due rows now, for `retention.progress` (no rows are
/// read: EXPLAIN, as the table's owner).
pub fn estimate(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
) -> Result<i64, RetentionError> {
    let mut params = Params::default();
    let (conditions, _) = step_sql(table, step, crate::engine::period::zero(), &mut params);
    let sql = format!(
        "EXPLAIN (FORMAT JSON) {}",
        RowSet::of(table).filters(conditions).select("1")
    );
    // A read-write SPI call: PostgreSQL refuses EXPLAIN in a read-only one.
    let plan = executor::update(client, table, &sql, params.args())?
        .first()
        .get_one::<pgrx::Json>()?;
    Ok(plan
        .and_then(|p| p.0[0]["Plan"]["Plan Rows"].as_f64())
        .unwrap_or(0.0) as i64)
}

/// One line of a preview: rows of a step due by `now() + horizon`, per tenant, and the hold
/// keeping them back (None: they will be acted on).
pub struct PreviewLine {
    pub tenant: Option<String>,
    pub held_by: Option<i64>,
    pub rows: i64,
    /// The oldest clock (or soft delete) among the rows: the longest overdue.
    pub oldest: Option<TimestampWithTimeZone>,
}

/// For a dry run: the rows a step's hard deletes would take now from each parent-bound child
/// table (children's children included), changing nothing.
pub fn preview_descendants(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
) -> Result<Vec<(String, i64)>, RetentionError> {
    let held = holds::active_for_reading(client, table)?;
    let mut params = Params::default();
    let (mut conditions, _) = unheld_step_sql(
        table,
        step,
        crate::engine::period::zero(),
        &held,
        &mut params,
    );
    // A row with a held descendant stays, and so do all its descendants.
    if let Some(held_below) =
        crate::engine::keeping::descendant_hold_sql(client, table, &mut params)?
    {
        conditions.push(format!("{held_below} IS NULL"));
    }
    let rows = RowSet::of(table).filters(conditions);
    cascade::descendant_counts(client, table, &rows, &params, 0)
}

/// The holds that still keep rows at `now() + horizon`: every active hold, and the released
/// ones whose grace ends later. A row a released hold frees is due at the end of its grace.
fn holds_by(
    client: &SpiClient,
    table: &Managed,
    horizon: Interval,
) -> Result<Vec<holds::Hold>, RetentionError> {
    let at = client
        .select("SELECT now() + $1", Some(1), &[horizon.into()])?
        .first()
        .get_one::<TimestampWithTimeZone>()?
        .map(i64::from);
    Ok(holds::active_for_reading(client, table)?
        .into_iter()
        .filter(|h| match (h.grace_until, at) {
            (Some(until), Some(at)) => i64::from(until) > at,
            _ => true,
        })
        .collect())
}

/// Counts a step's due rows per tenant and covering hold, changing nothing.
pub fn preview(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
    horizon: Interval,
) -> Result<Vec<PreviewLine>, RetentionError> {
    let held = holds_by(client, table, horizon)?;
    let mut params = Params::default();
    let (mut conditions, order) = step_sql(table, step, horizon, &mut params);
    if step.act(table) == Act::Anonymize && table.distribution.is_some() {
        conditions.push(crate::engine::acting::not_anonymized_in_sql(
            client,
            table,
            None,
            &mut params,
        )?);
    }
    let oldest = order
        .map(|o| format!("min({o})::timestamptz"))
        .unwrap_or_else(|| "NULL::timestamptz".into());
    let cases: Vec<String> = held
        .iter()
        .filter_map(|h| {
            holds::covers_sql(h, table, Some(&step.segment.category.name), "", &mut params)
                .map(|covers| format!("WHEN {covers} THEN {}::bigint", h.id))
        })
        .collect();
    // A hard delete also waits for holds on the row's parent-bound descendants.
    let descendant = if step.act(table) == Act::HardDelete {
        crate::engine::keeping::descendant_hold_sql(client, table, &mut params)?
    } else {
        None
    };
    let held_by = match (cases.is_empty(), descendant) {
        (true, None) => "NULL::bigint".to_string(),
        (true, Some(descendant)) => descendant,
        (false, descendant) => format!(
            "CASE {} {} END",
            cases.join(" "),
            descendant.map(|d| format!("ELSE {d}")).unwrap_or_default()
        ),
    };
    let tenant = table.tenant_text_sql();
    let sql = RowSet::of(table).filters(conditions).grouped(
        &format!("{tenant}, {held_by}, count(*), {oldest}"),
        "1, 2 ORDER BY 1, 2",
    );
    executor::select(client, table, &sql, params.args())?
        .map(|row| {
            Ok(PreviewLine {
                tenant: row.get::<String>(1)?,
                held_by: row.get::<i64>(2)?,
                rows: row.get::<i64>(3)?.unwrap_or(0),
                oldest: row.get::<TimestampWithTimeZone>(4)?,
            })
        })
        .collect()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{batch, table_steps};
    use crate::engine::managed::Managed;
    use crate::pg::citus::Distribution;
    use crate::testing::{int, seed};
    use pgrx::prelude::*;

    /// The per-distribution-key batches of a Citus distributed table, driven on a local table
    /// described as distributed by tenant (the statements are valid there too): each batch is
    /// filled across tenants, taken in order, and every due row is deleted once and logged.
    #[pg_test]
    fn a_distributed_tables_batches_take_each_distribution_key_in_turn() {
        seed(400);
        Spi::run("SELECT retention.place_hold('subject s1', subject => 's1', notify => false)")
            .unwrap();
        let due = int("SELECT count(*) FROM conversations
                        WHERE created_at <= now() - interval '1 year' AND subject <> 's1'");
        assert!(due > 20);
        let held = int("SELECT count(*) FROM conversations WHERE subject = 's1'");
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'conversations'::regclass::oid")
            .unwrap()
            .unwrap();
        let acted = Spi::connect_mut(|client| {
            let mut table = Managed::load(client, oid)?;
            table.distribution = Some(Distribution {
                column: "tenant".into(),
                type_name: "text".into(),
            });
            let steps = table_steps(client, &table, crate::engine::period::zero())?;
            let mut batches = Vec::new();
            for step in &steps {
                let mut of_step = Vec::new();
                loop {
                    let rows = batch(client, &table, step, None, 7)?;
                    of_step.push(rows);
                    if rows < 7 {
                        break;
                    }
                }
                batches.push(of_step);
            }
            Ok::<_, crate::error::RetentionError>(batches)
        })
        .unwrap();
        // In each step, full batches until the last key runs out: batches span keys (each
        // tenant has fewer than 7 due rows here, three tenants fill two batches).
        assert_eq!(acted.iter().flatten().sum::<i64>(), due);
        for of_step in &acted {
            assert!(of_step[..of_step.len() - 1].iter().all(|&rows| rows == 7));
        }
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), due);
        assert_eq!(
            int("SELECT count(*) FROM conversations
                  WHERE created_at <= now() - interval '1 year' AND subject <> 's1'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE subject = 's1'"),
            held
        );
    }
}
