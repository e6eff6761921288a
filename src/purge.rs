//! The purge engine: builds, for one table and one segment of its policy, the set-based
//! statement that acts on at most one batch of due rows and returns their keys, and writes
//! their log entries in the same transaction.
//!
//! A batch is one statement: `WITH due AS (SELECT … ORDER BY clock LIMIT n FOR UPDATE OF t SKIP
//! LOCKED) DELETE … WHERE ctid = ANY(…) RETURNING key, tenant`. The hold check is part of the
//! statement that selects the rows, under the shared hold lock (see holds.rs).

use crate::cascade;
use crate::catalog::Action;
use crate::deletion_log::{self, Entry};
use crate::error::RetentionError;
use crate::holds::{self, take_lock, LockKey};
use crate::managed::Managed;
use crate::owner;
use crate::params::Params;
use crate::policy::Segment;
use crate::windows::Path;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::cell::Cell;

/// What a batch does to its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    SoftDelete,
    HardDelete,
    Anonymize,
}

impl Act {
    /// The deletion log's `action`.
    pub fn log_action(self) -> &'static str {
        match self {
            Act::SoftDelete => "soft_delete",
            Act::HardDelete => "hard_delete",
            Act::Anonymize => "anonymize",
        }
    }
}

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
    pub approval: Option<crate::disposition::Approved>,
    /// The newest clock value this step has acted on in this cycle: its next batch starts the
    /// index range there (see [`batch`]).
    pub resume: Cell<Option<TimestampWithTimeZone>>,
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

/// The steps of a table's purge, in order: expired rows first (soft-deleted when their policy
/// has a window), then soft-deleted rows whose window has passed.
pub fn plan(
    table: &Managed,
    expiring: Vec<Segment>,
    windows: Vec<Segment>,
    approved: &[crate::disposition::Approved],
) -> Result<Vec<Step>, RetentionError> {
    let mut steps = Vec::new();
    for segment in expiring {
        // Rows can carry a category the table cannot act on only by being written directly
        // (tag() refuses it): those are left alone; the default category must be workable.
        let anonymizes = segment.category.action == Action::Anonymize;
        let workable = if anonymizes {
            !table.anonymize.is_empty()
        } else {
            segment.windows.of(Path::Expired).is_none() || table.soft_delete_column.is_some()
        };
        if !workable && !segment.is_default {
            continue;
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
        if !anonymizes
            && segment.windows.of(Path::Expired).is_some()
            && table.soft_delete_column.is_none()
        {
            return Err(RetentionError::MissingColumnRole(
                format!(
                    "the policy of category \"{}\" has a soft-delete window, and table {} has no soft_delete_column",
                    segment.category.name, table.display_name
                ),
                "Manage the table with soft_delete_column, or clear the window.".into(),
            ));
        }
        // A reviewed category's rows expire only in batches a reviewer approved.
        if segment.category.review.is_some() {
            steps.extend(crate::disposition::approved_steps(&segment, approved));
            continue;
        }
        steps.push(Step {
            segment,
            phase: Phase::Expire,
            approval: None,
            resume: Cell::new(None),
        });
    }
    steps.extend(
        windows
            .into_iter()
            .filter(|s| s.category.action != Action::Anonymize)
            .map(|segment| Step {
                segment,
                phase: Phase::Finish,
                approval: None,
                resume: Cell::new(None),
            }),
    );
    Ok(steps)
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
            conditions.extend(crate::disposition::approval_sql(table, step, params));
            match (step.act(table), &soft) {
                (Act::SoftDelete, Some(soft)) => conditions.push(format!("t.{soft} IS NULL")),
                (Act::Anonymize, _) => conditions.push(not_anonymized_sql(table, params)),
                _ => {}
            }
            step.segment.order_sql()
        }
        Phase::Finish => {
            let soft = format!("t.{}", soft.unwrap_or_default());
            let at = format!("(now() + {}::interval)", params.bind(horizon));
            let path = crate::windows::path_sql(table, params);
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

/// SQL, over row alias `t`, that is true when the row has not been anonymized yet, or holds
/// other values than those it was anonymized to (the application wrote new data into it, or
/// a new row took its key). Marks from 0.1.0 carry no fingerprint and count as anonymized.
/// It runs as the table's owner, who cannot read retention.anonymized_rows: the marks are read
/// through `retention.is_anonymized`, which answers for tables the caller owns only.
pub fn not_anonymized_sql(table: &Managed, params: &mut Params) -> String {
    format!(
        "NOT retention.is_anonymized({}::oid::regclass, {}, {})",
        params.bind(table.oid),
        table.key_json_sql(),
        table.anonymized_fingerprint_sql()
    )
}

/// SQL that acts on the rows selected by `due` (a query returning `ctid`, or the key columns
/// of a partitioned table) and returns each row's key (jsonb text), tenant, `clock` (a
/// timestamptz expression over the row, or NULL) and, for anonymizations, the fingerprint of
/// the anonymized values. It touches the application table only: it runs as its owner.
pub fn act_sql(
    table: &Managed,
    act: Act,
    due: &str,
    params: &mut Params,
    clock: Option<&str>,
) -> String {
    let matching = due_rows_sql(table);
    let tenant = table.tenant_text_sql();
    let verb = match act {
        Act::HardDelete => format!("DELETE FROM {} AS t", table.display_name),
        Act::SoftDelete => format!(
            "UPDATE {} AS t SET {} = now()",
            table.display_name,
            quote_identifier(table.soft_delete_column.as_deref().unwrap_or_default()),
        ),
        Act::Anonymize => format!(
            "UPDATE {} AS t SET {}",
            table.display_name,
            table.anonymize_set_sql(params)
        ),
    };
    let fingerprint = if act == Act::Anonymize {
        table.anonymized_fingerprint_sql()
    } else {
        "NULL::text".to_string()
    };
    let clock = clock.unwrap_or("NULL::timestamptz");
    format!(
        "WITH due AS ({due}),
              acted AS ({verb} WHERE {matching}
                        RETURNING {} AS k, {tenant} AS tn, {clock} AS clk, {fingerprint} AS fp)
         SELECT k::text, tn, clk, fp FROM acted",
        table.key_json_sql()
    )
}

/// Marks anonymized rows (keys as jsonb text) with the fingerprints of their new values.
fn mark_anonymized(
    client: &mut SpiClient,
    table: &Managed,
    keys: Vec<String>,
    fingerprints: Vec<Option<String>>,
) -> Result<(), RetentionError> {
    client.update(
        "INSERT INTO retention.anonymized_rows (tbl, row_key, fingerprint)
         SELECT $1::oid::regclass, u.k::jsonb, u.fp FROM unnest($2::text[], $3::text[]) AS u(k, fp)
         ON CONFLICT (tbl, row_key) DO UPDATE
            SET fingerprint = excluded.fingerprint, anonymized_at = excluded.anonymized_at",
        None,
        &[table.oid.into(), keys.into(), fingerprints.into()],
    )?;
    Ok(())
}

/// Sets each entry's reason to that of the soft delete in force on its row, from the row's
/// latest `soft_delete` or `restore` log entry (none when that is a restore, or when the row
/// was soft-deleted outside the extension).
fn soft_deletion_reasons(
    client: &mut SpiClient,
    table: &Managed,
    entries: &mut [Entry],
) -> Result<(), RetentionError> {
    let keys: Vec<String> = entries.iter().map(|e| e.row_key.clone()).collect();
    let reasons = client.select(
        "SELECT (SELECT CASE WHEN l.action = 'soft_delete' THEN l.reason END
                   FROM retention.deletion_log l
                  WHERE l.table_name = $1 AND l.row_key = u.k::jsonb
                    AND l.action IN ('soft_delete', 'restore')
                  ORDER BY l.id DESC LIMIT 1)
           FROM unnest($2::text[]) WITH ORDINALITY AS u(k, n) ORDER BY u.n",
        None,
        &[table.display_name.as_str().into(), keys.into()],
    )?;
    for (entry, row) in entries.iter_mut().zip(reasons) {
        entry.reason = row.get::<String>(1)?;
    }
    Ok(())
}

/// The `due` query of a path that must act on every row it matches (a request, a cascade, a
/// reapply: not a batch, which may leave rows to the next cycle), after locking those rows in
/// a statement of its own, waiting for concurrent writers. The acting statement that follows
/// takes a newer snapshot, which sees the versions those writers committed. Locked only inside
/// the acting statement, a row updated meanwhile is returned at its new ctid, which that
/// statement's older snapshot cannot see: the row would be left in place, silently.
pub fn lock_all(
    client: &mut SpiClient,
    table: &Managed,
    conditions: &[String],
    params: &Params,
) -> Result<String, RetentionError> {
    let due = format!(
        "SELECT {} FROM {} AS t WHERE {} FOR UPDATE OF t",
        row_id_sql(table),
        table.display_name,
        conditions.join(" AND ")
    );
    owner::update(client, table, &due, params.args())?;
    Ok(due)
}

/// SQL over row alias `t` matching the rows a `due` CTE selected with [`row_id_sql`].
pub fn due_rows_sql(table: &Managed) -> String {
    if table.partitioned {
        format!("({}) IN (SELECT * FROM due)", row_id_sql(table))
    } else {
        "t.ctid = ANY(ARRAY(SELECT ctid FROM due))".to_string()
    }
}

/// The select list that identifies rows for [`act_sql`].
pub fn row_id_sql(table: &Managed) -> String {
    if table.partitioned {
        let keys: Vec<String> = table
            .key_columns
            .iter()
            .map(|c| format!("t.{}", quote_identifier(c)))
            .collect();
        keys.join(", ")
    } else {
        "t.ctid".into()
    }
}

/// Acts on the rows `due` selects (see [`act_sql`]) and logs one entry per row, with the given
/// category and period; returns the number of rows. A hard delete takes the rows'
/// parent-bound descendants with them (see cascade.rs).
#[allow(clippy::too_many_arguments)]
pub fn act_and_log(
    client: &mut SpiClient,
    table: &Managed,
    act: Act,
    due: &str,
    params: &mut Params,
    batch: &deletion_log::Batch,
    category: Option<&str>,
    retain_for: Option<Interval>,
) -> Result<i64, RetentionError> {
    Ok(act_and_log_tracking(
        client, table, act, due, params, batch, category, retain_for, None,
    )?
    .0)
}

/// [`act_and_log`], also returning the newest `clock` value (a timestamptz expression over the
/// row) among the rows acted on, where a step's next batch resumes.
#[allow(clippy::too_many_arguments)]
pub fn act_and_log_tracking(
    client: &mut SpiClient,
    table: &Managed,
    act: Act,
    due: &str,
    params: &mut Params,
    batch: &deletion_log::Batch,
    category: Option<&str>,
    retain_for: Option<Interval>,
    clock: Option<&str>,
) -> Result<(i64, Option<TimestampWithTimeZone>), RetentionError> {
    if act == Act::HardDelete {
        cascade::check_unlogged_cascades(client, table)?;
        let kids = cascade::children(client, table)?;
        if !kids.is_empty() {
            let rows = cascade::hard_delete(
                client, table, kids, due, params, batch, category, retain_for,
            )?;
            return Ok((rows, None));
        }
    }
    act_without_children(
        client, table, act, due, params, batch, category, retain_for, clock,
    )
}

/// [`act_and_log`] for rows without parent-bound children.
#[allow(clippy::too_many_arguments)]
pub fn act_without_children(
    client: &mut SpiClient,
    table: &Managed,
    act: Act,
    due: &str,
    params: &mut Params,
    batch: &deletion_log::Batch,
    category: Option<&str>,
    retain_for: Option<Interval>,
    clock: Option<&str>,
) -> Result<(i64, Option<TimestampWithTimeZone>), RetentionError> {
    let sql = act_sql(table, act, due, params, clock);
    let mut newest: Option<TimestampWithTimeZone> = None;
    let mut fingerprints = Vec::new();
    let mut entries: Vec<Entry> = owner::update(client, table, &sql, params.args())?
        .map(|row| {
            if let Some(at) = row.get::<TimestampWithTimeZone>(3)? {
                if newest.is_none_or(|n| i64::from(n) < i64::from(at)) {
                    newest = Some(at);
                }
            }
            fingerprints.push(row.get::<String>(4)?);
            Ok(Entry {
                row_key: row.get::<String>(1)?.unwrap_or_default(),
                tenant: row.get::<String>(2)?,
                category: category.map(str::to_string),
                retain_for,
                reason: None,
            })
        })
        .collect::<Result<_, RetentionError>>()?;
    if act == Act::Anonymize && !entries.is_empty() {
        let keys = entries.iter().map(|e| e.row_key.clone()).collect();
        mark_anonymized(client, table, keys, fingerprints)?;
    }
    if batch.reason_of_soft_delete && !entries.is_empty() {
        soft_deletion_reasons(client, table, &mut entries)?;
    }
    deletion_log::append(client, batch, &entries)?;
    Ok((entries.len() as i64, newest))
}

/// Acts on one batch of a step's due rows and logs them; returns the number of rows.
pub fn batch(
    client: &mut SpiClient,
    table: &Managed,
    step: &Step,
    run_id: Option<i64>,
    batch_size: i64,
) -> Result<i64, RetentionError> {
    take_lock(LockKey::Holds, false)?;
    let held = holds::active_for(client, table)?;
    let mut params = Params::default();
    let (mut conditions, order) =
        unheld_step_sql(table, step, crate::catalog::zero(), &held, &mut params);
    if step.act(table) == Act::HardDelete {
        if let Some(blocked) = cascade::held_descendant_sql(client, table, &mut params)? {
            conditions.push(format!("NOT {blocked}"));
        }
    }
    if conditions.is_empty() {
        conditions.push("true".into());
    }
    // Keyset: resume the clock-ordered range where this step's previous batch stopped, so a
    // cycle does not walk again, batch after batch, over rows it has passed (other segments'
    // rows, held or locked rows, and inside one run() transaction the rows it deleted itself):
    // that made a cycle quadratic in the table's size. Rows skipped this way (locked, or
    // written with an older clock during the cycle) are due again at the next cycle.
    if let (Some(order), Some(after)) = (&order, step.resume.get()) {
        conditions.push(format!("{order} >= {}::timestamptz", params.bind(after)));
    }
    let due = format!(
        "SELECT {} FROM {} AS t WHERE {} {} LIMIT {} FOR UPDATE OF t SKIP LOCKED",
        row_id_sql(table),
        table.display_name,
        conditions.join(" AND "),
        order
            .as_ref()
            .map(|o| format!("ORDER BY {o}"))
            .unwrap_or_default(),
        params.bind(batch_size)
    );
    let act = step.act(table);
    let clock = order.as_ref().map(|o| format!("{o}::timestamptz"));
    let (rows, newest) = act_and_log_tracking(
        client,
        table,
        act,
        &due,
        &mut params,
        &deletion_log::Batch {
            action: act.log_action(),
            table_name: &table.display_name,
            reason: "expired",
            run_id,
            reason_of_soft_delete: step.phase == Phase::Finish,
            approval_id: step.approval.as_ref().map(|a| a.id),
        },
        Some(&step.segment.category.name),
        Some(step.segment.retain_for),
        clock.as_deref(),
    )?;
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
    let (mut conditions, _) = step_sql(table, step, crate::catalog::zero(), &mut params);
    conditions.push("true".into());
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} AS t WHERE {}",
        table.display_name,
        conditions.join(" AND ")
    );
    // A read-write SPI call: PostgreSQL refuses EXPLAIN in a read-only one.
    let plan = owner::update(client, table, &sql, params.args())?
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
    let (mut conditions, _) =
        unheld_step_sql(table, step, crate::catalog::zero(), &held, &mut params);
    // A row with a held descendant stays, and so do all its descendants.
    if let Some(held_below) = cascade::descendant_hold_sql(client, table, &mut params)? {
        conditions.push(format!("{held_below} IS NULL"));
    }
    let rows = format!(
        "FROM {} AS t WHERE {}",
        table.display_name,
        conditions.join(" AND ")
    );
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
    let (conditions, order) = step_sql(table, step, horizon, &mut params);
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
        cascade::descendant_hold_sql(client, table, &mut params)?
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
    let sql =
        format!(
        "SELECT {tenant}, {held_by}, count(*), {oldest} FROM {} AS t WHERE {} GROUP BY 1, 2 ORDER BY 1, 2",
        table.display_name,
        if conditions.is_empty() { "true".into() } else { conditions.join(" AND ") }
    );
    owner::select(client, table, &sql, params.args())?
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
