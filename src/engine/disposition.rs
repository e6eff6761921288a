//! Disposition review: a category with a reviewing role (`review => 'role'`) does not expire
//! its rows by itself. Each cycle gathers its due rows into batches, one per table, category,
//! tenant and due day (UTC), in `retention.disposition_batches`; a member of the role approves
//! (`retention.approve_disposition`) or rejects (`retention.reject_disposition`, keeping the
//! rows for a while) each batch, or the category approves pending batches by itself after
//! `auto_approve_after`. The purge expires an approved batch's rows only, each log entry
//! carrying the batch id as its `approval_id`. Holds still win: a held row is in no batch, and
//! an approved batch's held rows stay.

use crate::engine::catalog::{self, Category};
use crate::engine::holds;
use crate::engine::managed::Managed;
use crate::engine::policy::{self, Segment};
use crate::engine::purge::{self, Phase, Step};
use crate::engine::rowset::RowSet;
use crate::engine::runs::TableOutcome;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use pgrx::datum::Date;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::Cell;

/// What one refresh reads once for every table: the reviewed categories, the tenant
/// overrides, and the tables with open batches.
struct Policy {
    reviewed: Vec<Category>,
    overrides: std::collections::BTreeMap<String, Vec<policy::Override>>,
    open: Vec<pg_sys::Oid>,
}

/// Due, unheld rows of a reviewed segment, per tenant and due day.
struct Group {
    category: String,
    tenant: Option<String>,
    due_day: Date,
    rows: i64,
    reviewer: String,
}

/// Counts a reviewed segment's due rows that no hold keeps, per tenant and due day.
fn groups(
    client: &SpiClient,
    table: &Managed,
    segment: Segment,
    held: &[holds::Hold],
) -> Result<Vec<Group>, RetentionError> {
    let reviewer = segment.category.review.clone().unwrap_or_default();
    let category = segment.category.name.clone();
    let step = Step {
        segment,
        phase: Phase::Expire,
        approval: None,
        resume: Cell::new(None),
        shard: Default::default(),
    };
    let mut params = Params::default();
    let (conditions, _) = purge::unheld_step_sql(
        table,
        &step,
        crate::engine::period::zero(),
        held,
        &mut params,
    );
    let day = step.segment.due_day_sql(&mut params);
    let tenant = table.tenant_text_sql();
    let sql = RowSet::of(table)
        .filters(conditions)
        .grouped(&format!("{tenant}, {day}, count(*)"), "1, 2");
    executor::select(client, table, &sql, params.args())?
        .map(|row| {
            Ok(Group {
                category: category.clone(),
                tenant: row.get::<String>(1)?,
                due_day: row
                    .get::<Date>(2)?
                    .ok_or(RetentionError::NullArgument("due_day"))?,
                rows: row.get::<i64>(3)?.unwrap_or(0),
                reviewer: reviewer.clone(),
            })
        })
        .collect()
}

/// Brings one table's batches up to date: queues new groups of due rows, recounts open
/// batches, drops pending batches whose rows are gone (never decided, nothing to keep),
/// closes approved batches with nothing left and rejections whose keeping has ended, and
/// approves pending batches of categories that approve by themselves.
fn refresh_table(
    client: &mut SpiClient,
    table: &Managed,
    policy: &Policy,
    run_id: i64,
) -> Result<(), RetentionError> {
    let segments = policy::segments(
        client,
        table,
        &policy.reviewed,
        &policy.overrides,
        crate::engine::period::zero(),
    )?;
    if segments.is_empty() && !policy.open.contains(&table.oid) {
        return Ok(());
    }
    let held = holds::active_for_reading(client, table)?;
    let mut found = Vec::new();
    for segment in segments {
        found.extend(groups(client, table, segment, &held)?);
    }
    close_finished(client, table, run_id)?;
    let keys = GroupKeys::of(&found);
    queue(client, table, &keys, &found)?;
    client.update(
        "WITH gone AS (
             SELECT b.id FROM retention.disposition_batches b
              WHERE b.tbl = $1 AND b.closed_at IS NULL AND b.status <> 'rejected'
                AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::date[])
                                           AS u(c, tn, d)
                                 WHERE u.c = b.category AND u.tn IS NOT DISTINCT FROM b.tenant
                                   AND u.d = b.due_day)),
         dropped AS (DELETE FROM retention.disposition_batches b USING gone
                      WHERE b.id = gone.id AND b.status = 'pending' RETURNING b.id)
         UPDATE retention.disposition_batches b SET closed_at = now()
           FROM gone WHERE b.id = gone.id AND b.status = 'approved'",
        None,
        &[
            table.oid.into(),
            keys.categories.into(),
            keys.tenants.into(),
            keys.days.into(),
        ],
    )?;
    auto_approve(client, table)
}

/// The (category, tenant, due day) of each group found, as arrays.
struct GroupKeys {
    categories: Vec<String>,
    tenants: Vec<Option<String>>,
    days: Vec<Date>,
}

impl GroupKeys {
    fn of(found: &[Group]) -> GroupKeys {
        GroupKeys {
            categories: found.iter().map(|g| g.category.clone()).collect(),
            tenants: found.iter().map(|g| g.tenant.clone()).collect(),
            days: found.iter().map(|g| g.due_day).collect(),
        }
    }
}

/// Closes a rejection whose keeping has ended, and an approval this cycle's purge carried out
/// (rows of its group still here, held or due since, wait in a new batch).
fn close_finished(
    client: &mut SpiClient,
    table: &Managed,
    run_id: i64,
) -> Result<(), RetentionError> {
    client.update(
        "UPDATE retention.disposition_batches SET closed_at = now()
          WHERE tbl = $1 AND closed_at IS NULL
            AND ((status = 'rejected' AND keep_until <= now())
                 OR (status = 'approved'
                     AND decided_at < (SELECT started_at FROM retention.runs WHERE id = $2)))",
        None,
        &[table.oid.into(), run_id.into()],
    )?;
    Ok(())
}

/// Queues each group found as a pending batch, or recounts its pending batch.
fn queue(
    client: &mut SpiClient,
    table: &Managed,
    keys: &GroupKeys,
    found: &[Group],
) -> Result<(), RetentionError> {
    let rows: Vec<i64> = found.iter().map(|g| g.rows).collect();
    let reviewers: Vec<String> = found.iter().map(|g| g.reviewer.clone()).collect();
    client.update(
        "INSERT INTO retention.disposition_batches AS b
                (tbl, category, tenant, due_day, rows_due, reviewer)
         SELECT $1, u.c, u.tn, u.d, u.n, u.r
           FROM unnest($2::text[], $3::text[], $4::date[], $5::bigint[], $6::text[])
                AS u(c, tn, d, n, r)
         ON CONFLICT (tbl, category, tenant, due_day) WHERE closed_at IS NULL
         DO UPDATE SET rows_due = CASE WHEN b.status = 'pending' THEN excluded.rows_due
                                       ELSE b.rows_due END,
                       reviewer = CASE WHEN b.status = 'pending' THEN excluded.reviewer
                                       ELSE b.reviewer END",
        None,
        &[
            table.oid.into(),
            keys.categories.clone().into(),
            keys.tenants.clone().into(),
            keys.days.clone().into(),
            rows.into(),
            reviewers.into(),
        ],
    )?;
    Ok(())
}

/// Approves the pending batches of categories that approve by themselves after a while.
fn auto_approve(client: &mut SpiClient, table: &Managed) -> Result<(), RetentionError> {
    client.update(
        "UPDATE retention.disposition_batches b
            SET status = 'approved', decided_at = now(), decided_by = $2, auto_approved = true,
                note = 'approved automatically after ' || c.auto_approve_after::text
           FROM retention.category_definitions c
          WHERE c.name = b.category AND b.tbl = $1 AND b.status = 'pending'
            AND b.closed_at IS NULL AND c.auto_approve_after IS NOT NULL
            AND b.queued_at + c.auto_approve_after <= now()",
        None,
        &[table.oid.into(), crate::pg::identity::caller_name().into()],
    )?;
    Ok(())
}

/// The cycle's disposition step: refreshes the batches of every managed table that has a
/// reviewed category or open batches. Reported like a table (it acts on no row).
pub fn refresh(run_id: i64) -> Result<TableOutcome, RetentionError> {
    Spi::connect_mut(|client| {
        // Batches of tables no longer managed (unmanaged, dropped) close.
        client.update(
            "UPDATE retention.disposition_batches b SET closed_at = now()
              WHERE b.closed_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM retention.managed_tables m WHERE m.tbl = b.tbl)",
            None,
            &[],
        )?;
        let reviewed: Vec<Category> = catalog::load_all(client)?
            .into_iter()
            .filter(|c| c.review.is_some())
            .collect();
        if reviewed.is_empty() {
            client.update(
                "UPDATE retention.disposition_batches SET closed_at = now()
                  WHERE closed_at IS NULL AND status <> 'rejected'",
                None,
                &[],
            )?;
        } else {
            let policy = Policy {
                reviewed,
                overrides: policy::overrides(client)?,
                open: client
                    .select(
                        "SELECT DISTINCT tbl::oid FROM retention.disposition_batches
                          WHERE closed_at IS NULL",
                        None,
                        &[],
                    )?
                    .map(|r| Ok(r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid)))
                    .collect::<Result<_, RetentionError>>()?,
            };
            for table in Managed::load_all(client)? {
                refresh_table(client, &table, &policy, run_id)?;
            }
        }
        Ok(TableOutcome::new("retention.disposition_queue"))
    })
}

/// Records a reviewer's decision on a pending batch: the caller must be a member of the
/// batch's reviewing role.
pub fn decide(
    batch_id: i64,
    status: &str,
    note: Option<&str>,
    keep_for: Option<Interval>,
) -> Result<(), RetentionError> {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "SELECT status, reviewer, closed_at IS NOT NULL,
                        EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                                 WHERE r.rolname = b.reviewer
                                   AND pg_catalog.pg_has_role($2::oid, r.oid, 'MEMBER'))
                   FROM retention.disposition_batches b WHERE id = $1 FOR UPDATE",
                Some(1),
                &[batch_id.into(), crate::pg::identity::caller_oid().into()],
            )?
            .next()
            .ok_or(RetentionError::UnknownDisposition(batch_id))?;
        let found = row.get::<String>(1)?.unwrap_or_default();
        let reviewer = row.get::<String>(2)?.unwrap_or_default();
        if row.get::<bool>(4)? != Some(true) {
            return Err(RetentionError::InsufficientPrivilege(format!(
                "deciding disposition batch {batch_id} needs membership in its reviewing role \"{reviewer}\""
            )));
        }
        if found != "pending" || row.get::<bool>(3)? == Some(true) {
            return Err(RetentionError::DispositionDecided(batch_id, found));
        }
        client.update(
            "UPDATE retention.disposition_batches
                SET status = $2, decided_at = now(), decided_by = $3, note = $4,
                    keep_until = now() + $5
              WHERE id = $1",
            None,
            &[
                batch_id.into(),
                status.into(),
                crate::pg::identity::caller_name().into(),
                note.into(),
                keep_for.into(),
            ],
        )?;
        Ok(())
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    /// Contracts: 1 year, reviewed by role `records_officer`; rows of tenants a and b, 400 and
    /// 800 days old (two due days per tenant), and one new row.
    fn setup() {
        Spi::run(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'records_officer') THEN
                     CREATE ROLE records_officer;
                 END IF;
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bystander') THEN
                     CREATE ROLE bystander;
                 END IF;
             END $$;
             SELECT retention.define_category('contracts', '1 year', review => 'records_officer');
             CREATE TABLE contracts (id int PRIMARY KEY, tenant text, signed_at timestamptz NOT NULL);
             SELECT retention.manage('contracts', 'contracts', created_column => 'signed_at',
                                     tenant_column => 'tenant');
             INSERT INTO contracts VALUES
                 (1, 'a', now() - interval '400 days'), (2, 'a', now() - interval '400 days'),
                 (3, 'a', now() - interval '800 days'), (4, 'b', now() - interval '400 days'),
                 (5, 'b', now()), (6, NULL, now() - interval '400 days');",
        )
        .unwrap();
    }

    fn batch(tenant: &str, days_old: i32) -> i64 {
        int(&format!(
            "SELECT batch_id FROM retention.disposition_queue
              WHERE tenant IS NOT DISTINCT FROM {tenant}
                AND due_day = ((now() - interval '{days_old} days' + interval '1 year') AT TIME ZONE 'UTC')::date"
        ))
    }

    #[pg_test]
    fn due_rows_wait_for_approval_and_carry_it_into_the_log() {
        setup();
        // The first cycle acts on nothing and queues four batches.
        assert_eq!(
            int("SELECT coalesce(sum(hard_deleted), 0)::bigint FROM retention.run()"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM contracts"), 6);
        assert_eq!(
            int("SELECT count(*) FROM retention.disposition_queue WHERE status = 'pending'"),
            4
        );
        assert_eq!(int("SELECT rows FROM retention.disposition_queue WHERE tenant = 'a' ORDER BY due_day DESC LIMIT 1"), 2);
        // Only a member of the reviewing role decides.
        let a400 = batch("'a'", 400);
        Spi::run("SET LOCAL ROLE bystander").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.approve_disposition({a400})")),
            "42501"
        );
        Spi::run("RESET ROLE").unwrap();
        Spi::run(&format!(
            "SELECT retention.approve_disposition({a400}, 'checked against the register')"
        ))
        .unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.approve_disposition({a400})")),
            "55000"
        );
        // The next cycle disposes of that batch only, each entry naming the approval.
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            2
        );
        assert_eq!(int("SELECT count(*) FROM contracts WHERE id IN (1, 2)"), 0);
        assert_eq!(int("SELECT count(*) FROM contracts"), 4);
        assert_eq!(
            int(&format!("SELECT count(*) FROM retention.deletion_log WHERE approval_id = {a400} AND reason = 'expired'")),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE approval_id IS NULL"),
            0
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
        // The approved batch is closed once its rows are gone.
        assert_eq!(int(&format!("SELECT count(*) FROM retention.disposition_batches WHERE id = {a400} AND closed_at IS NOT NULL")), 1);
    }

    #[pg_test]
    fn a_rejection_keeps_the_rows_until_a_new_review() {
        setup();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        let b400 = batch("'b'", 400);
        assert_eq!(
            sqlstate(&format!(
                "SELECT retention.reject_disposition({b400}, 'dispute pending', '6 months')"
            )),
            "00000"
        );
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM contracts WHERE id = 4"), 1);
        assert_eq!(int(&format!("SELECT count(*) FROM retention.disposition_queue WHERE batch_id = {b400} AND status = 'rejected'")), 1);
        // When the keeping ends, the rows wait for a new review.
        Spi::run(&format!("UPDATE retention.disposition_batches SET keep_until = now() - interval '1 second' WHERE id = {b400}")).unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM contracts WHERE id = 4"), 1);
        assert_eq!(int(&format!("SELECT count(*) FROM retention.disposition_queue WHERE tenant = 'b' AND status = 'pending' AND batch_id <> {b400}")), 1);
    }

    #[pg_test]
    fn holds_win_over_approvals_and_auto_approval_needs_no_reviewer() {
        setup();
        Spi::run("SELECT retention.define_category('contracts', '1 year', review => 'records_officer', auto_approve_after => '0')").unwrap();
        Spi::run("SELECT retention.place_hold('audit', tenant => 'a', notify => false)").unwrap();
        // First cycle: queued and approved automatically; held rows are in no batch.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.disposition_batches WHERE tenant = 'a'"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.disposition_batches WHERE status = 'approved' AND auto_approved"), 2);
        // Second cycle: the approved batches go (b's and the tenantless row), a's stay.
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            2
        );
        assert_eq!(int("SELECT count(*) FROM contracts WHERE tenant = 'a'"), 3);
        assert_eq!(int("SELECT count(*) FROM contracts WHERE id = 6"), 0);
    }
}
