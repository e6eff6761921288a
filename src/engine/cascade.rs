//! Parent-bound data (clock `parent`): rows of a child table — a managed table whose category
//! uses the parent clock and that has a foreign key to its parent — are hard-deleted with their
//! parent, first, in the same transaction, each logged with reason `parent_deleted`, at any
//! depth. A held descendant keeps its parent (and every ancestor) in place.
//!
//! Postgres' own ON DELETE CASCADE / SET NULL would change rows without a log entry: a purge
//! refuses tables that such foreign keys reference from anything but a parent-bound child.

use crate::engine::acting::{self, Act, Acted, Acting};
use crate::engine::children::{child_fk_types, children, MAX_DEPTH};
use crate::engine::deletion_log::Batch;
use crate::engine::managed::Child;
use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::engine::vocabulary::{reason, LogAction};
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, SpiClient};
use std::cell::RefCell;

thread_local! {
    /// Rows each parent-bound child table lost to cascades since the last `take_cascaded`.
    static CASCADED: RefCell<Vec<(String, i64)>> = const { RefCell::new(Vec::new()) };
}

/// The rows deleted from each child table by cascades since the last call: a cycle reports
/// them under the child's name (and forgets those of work that rolled back).
pub fn take_cascaded() -> Vec<(String, i64)> {
    CASCADED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Refuses purging where it cannot be done safely (pg/preconditions.rs); every path that
/// purges outside a cycle calls it first, which is also where the session forgets the
/// child-table counts of cascades no cycle collected.
pub fn check_can_purge() -> Result<(), RetentionError> {
    take_cascaded();
    crate::pg::preconditions::check_can_purge()
}

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Nesting of [`hard_delete`] (parent → child → …), bounded like the held-descendant check.
struct Depth;

impl Depth {
    fn enter() -> Result<Depth, RetentionError> {
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let guard = Depth;
        if depth > MAX_DEPTH {
            return Err(RetentionError::InvalidValue(format!(
                "parent-bound tables nest deeper than {MAX_DEPTH} levels (or in a cycle)"
            )));
        }
        Ok(guard)
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The rows of each parent-bound descendant table referencing the rows of `table` that
/// `rows` (over `params`) are, children's children included.
pub fn descendant_counts(
    client: &SpiClient,
    table: &Managed,
    rows: &RowSet,
    params: &Params,
    depth: usize,
) -> Result<Vec<(String, i64)>, RetentionError> {
    let mut counts = Vec::new();
    if depth >= MAX_DEPTH {
        return Ok(counts);
    }
    for child in children(client, table)? {
        let referenced: Vec<String> = child
            .parent_columns
            .iter()
            .map(|c| format!("t.{}", quote_identifier(c)))
            .collect();
        let referencing: Vec<String> = child
            .fk_columns
            .iter()
            .map(|c| format!("t.{}", quote_identifier(c)))
            .collect();
        let child_rows = RowSet::of(&child.table).filter(format!(
            "({}) IN (SELECT {} {})",
            referencing.join(", "),
            referenced.join(", "),
            rows.source_sql()
        ));
        let count = executor::select(client, &child.table, &child_rows.count(), params.args())?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0);
        if count > 0 {
            counts.push((child.table.display_name.clone(), count));
            counts.extend(descendant_counts(
                client,
                &child.table,
                &child_rows,
                params,
                depth + 1,
            )?);
        }
    }
    Ok(counts)
}

/// Acts on the rows `acting.due` selects and logs one entry per row; a hard delete takes the
/// rows' parent-bound descendants with them.
pub fn act_and_log(
    client: &mut SpiClient,
    table: &Managed,
    acting: &Acting,
    params: &mut Params,
) -> Result<Acted, RetentionError> {
    if acting.act == Act::HardDelete {
        crate::engine::children::check_unlogged_cascades(client, table)?;
        let kids = crate::engine::children::children(client, table)?;
        if !kids.is_empty() {
            let rows = hard_delete(client, table, kids, acting, params)?;
            return Ok(Acted { rows, newest: None });
        }
    }
    acting::act_without_children(client, table, acting, params)
}

/// Hard-deletes the rows of `table` that `acting.due` selects, their parent-bound descendants
/// first; logs each row (descendants with reason `parent_deleted`). Returns the rows of `table`.
pub fn hard_delete(
    client: &mut SpiClient,
    table: &Managed,
    kids: &[Child],
    acting: &Acting,
    params: &mut Params,
) -> Result<i64, RetentionError> {
    let _depth = Depth::enter()?;
    let Some(locked) = lock_parents(client, table, kids, acting, params)? else {
        return Ok(0);
    };
    for kid in kids {
        delete_children(client, kid, &locked, &acting.log)?;
    }
    // Then the rows themselves, by key (they are locked already).
    // The batch's own parameters stay bound: a distributed table's shard equality uses one.
    let (mut by_key_params, _) =
        params.and(unsafe { DatumWithOid::new(locked.keys, pg_sys::TEXTARRAYOID) });
    let keys_param = by_key_params.args().len();
    let by_key = RowSet::of(table)
        .filters(acting.shard.clone())
        .filter(crate::engine::tagging::key_match_sql(
            client, table, keys_param,
        )?)
        .select(&crate::engine::acting::row_id_sql(
            table,
            acting.shard.is_some(),
        ));
    let by_key_acting = Acting {
        due: &by_key,
        clock: None,
        ..acting.clone()
    };
    Ok(crate::engine::acting::act_without_children(
        client,
        table,
        &by_key_acting,
        &mut by_key_params,
    )?
    .rows)
}

/// The parent rows a cascade removes, locked: their keys (a text[]), and the values of each
/// column their children reference.
struct Locked {
    keys: pg_sys::Datum,
    /// Referenced column → its values among the rows (text).
    values: Vec<(String, Vec<Option<String>>)>,
}

impl Locked {
    /// The values of referenced column `column`.
    fn of(&self, column: &str) -> Vec<Option<String>> {
        self.values
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Locks the rows `acting.due` selects and reads their keys and referenced values (None: no
/// rows).
fn lock_parents(
    client: &mut SpiClient,
    table: &Managed,
    kids: &[Child],
    acting: &Acting,
    params: &Params,
) -> Result<Option<Locked>, RetentionError> {
    let mut referenced: Vec<String> = Vec::new();
    for c in kids.iter().flat_map(|k| &k.parent_columns) {
        if !referenced.contains(c) {
            referenced.push(c.clone());
        }
    }
    let aggregates: Vec<String> = std::iter::once(format!("array_agg({})", table.key_text_sql()))
        .chain(
            referenced
                .iter()
                .map(|c| format!("array_agg(t.{}::text)", quote_identifier(c))),
        )
        .collect();
    let rows = RowSet::of(table).filters(acting.shard.clone()).filter(
        crate::engine::acting::due_rows_sql(table, acting.shard.is_some()),
    );
    let sql = format!(
        "WITH due AS ({}) {}",
        acting.due,
        rows.select(&aggregates.join(", "))
    );
    let row = executor::update(client, table, &sql, params.args())?.first();
    let Some(keys) = row.get_datum_by_ordinal(1)? else {
        return Ok(None);
    };
    let mut values = Vec::with_capacity(referenced.len());
    for (i, column) in referenced.into_iter().enumerate() {
        values.push((
            column,
            row.get::<Vec<Option<String>>>(i + 2)?.unwrap_or_default(),
        ));
    }
    Ok(Some(Locked { keys, values }))
}

/// Hard-deletes (and logs, reason `parent_deleted`) the unheld rows of `kid` that reference
/// the locked parents, their own children first; counts them for the cycle's report.
fn delete_children(
    client: &mut SpiClient,
    kid: &Child,
    locked: &Locked,
    batch: &Batch,
) -> Result<(), RetentionError> {
    let mut kid_params = Params::default();
    let matched = referencing_sql(client, kid, locked, &mut kid_params)?;
    let unheld = crate::engine::keeping::unheld_sql(client, &kid.table, &mut kid_params)?;
    let kid_rows = RowSet::of(&kid.table).filter(matched).filter(unheld);
    let kid_due = crate::engine::acting::lock_all(client, &kid.table, kid_rows, &kid_params)?;
    let kid_acting = Acting::new(
        Act::HardDelete,
        &kid_due,
        Batch {
            action: LogAction::HardDelete,
            table_name: &kid.table.display_name,
            reason: reason::PARENT_DELETED,
            run_id: batch.run_id,
            reason_of_soft_delete: false,
            approval_id: batch.approval_id,
        },
    )
    .under(Some(&kid.category.name), Some(kid.category.retain_for));
    let rows =
        crate::engine::cascade::act_and_log(client, &kid.table, &kid_acting, &mut kid_params)?.rows;
    if rows > 0 {
        CASCADED.with(|c| c.borrow_mut().push((kid.table.display_name.clone(), rows)));
    }
    Ok(())
}

/// SQL over the child's alias `t`: its foreign key references one of the locked parents.
fn referencing_sql(
    client: &mut SpiClient,
    kid: &Child,
    locked: &Locked,
    params: &mut Params,
) -> Result<String, RetentionError> {
    let types = child_fk_types(client, kid)?;
    if kid.fk_columns.len() == 1 {
        return Ok(format!(
            "t.{} = ANY({}::text[]::{}[])",
            quote_identifier(&kid.fk_columns[0]),
            params.bind(locked.of(&kid.parent_columns[0])),
            types[0]
        ));
    }
    let columns: Vec<String> = kid
        .fk_columns
        .iter()
        .map(|c| format!("t.{}", quote_identifier(c)))
        .collect();
    let mut arrays = Vec::new();
    let mut casts = Vec::new();
    for (i, parent_column) in kid.parent_columns.iter().enumerate() {
        arrays.push(format!("{}::text[]", params.bind(locked.of(parent_column))));
        casts.push(format!("u.v{i}::{}", types[i]));
    }
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("v{i}")).collect();
    Ok(format!(
        "({}) IN (SELECT {} FROM unnest({}) AS u({}))",
        columns.join(", "),
        casts.join(", "),
        arrays.join(", "),
        names.join(", ")
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::int;
    use pgrx::prelude::*;

    fn setup() {
        Spi::run(
            "SELECT retention.define_category('projects', '0', clock => 'event', event => 'termination');
             SELECT retention.define_category('project_history', '0', clock => 'parent');
             CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL);
             CREATE TABLE snapshots (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects, tenant text, label text);
             CREATE TABLE branches (id int PRIMARY KEY, snapshot_id int NOT NULL REFERENCES snapshots, tenant text);
             SELECT retention.manage('projects', 'projects', tenant_column => 'tenant');
             SELECT retention.manage('snapshots', 'project_history', tenant_column => 'tenant', subject_column => 'label');
             SELECT retention.manage('branches', 'project_history', tenant_column => 'tenant');
             INSERT INTO projects VALUES (1, 'acme'), (2, 'acme'), (3, 'globex');
             INSERT INTO snapshots VALUES (10, 1, 'acme', 'v1'), (11, 1, 'acme', 'v2'), (20, 2, 'acme', 'keep'), (30, 3, 'globex', 'v1');
             INSERT INTO branches VALUES (100, 10, 'acme'), (200, 20, 'acme');",
        )
        .unwrap();
    }

    #[pg_test]
    fn children_go_first_with_their_parent() {
        setup();
        Spi::run("SELECT retention.record_event('acme', 'termination', now() - interval '1 day'); CREATE TEMP TABLE would AS SELECT * FROM retention.run(dry_run => true); CREATE TEMP TABLE did AS SELECT * FROM retention.run();").unwrap();
        // The dry run predicted every line, children included.
        assert_eq!(
            int("SELECT count(*) FROM would FULL JOIN did USING (table_name)
                  WHERE would.hard_deleted IS DISTINCT FROM did.hard_deleted"),
            0
        );
        // run() reports the children's rows under their own names: its total is the log's.
        assert_eq!(
            int("SELECT hard_deleted FROM did WHERE table_name = 'public.projects'"),
            2
        );
        assert_eq!(
            int("SELECT hard_deleted FROM did WHERE table_name = 'public.snapshots'"),
            3
        );
        assert_eq!(
            int("SELECT hard_deleted FROM did WHERE table_name = 'public.branches'"),
            2
        );
        assert_eq!(
            int("SELECT rows_acted FROM retention.runs ORDER BY id DESC LIMIT 1"),
            7
        );
        assert_eq!(int("SELECT count(*) FROM projects"), 1);
        assert_eq!(int("SELECT count(*) FROM snapshots"), 1);
        assert_eq!(int("SELECT count(*) FROM branches"), 0);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'parent_deleted' AND category = 'project_history'"), 5);
        // Grandchildren, then children, then the parent, in the log's order.
        assert_eq!(
            int("SELECT max(id) FROM retention.deletion_log WHERE table_name = 'public.branches'"),
            int("SELECT min(id) FROM retention.deletion_log WHERE table_name = 'public.snapshots'")
                - 1
        );
        assert!(int("SELECT max(id) FROM retention.deletion_log WHERE table_name = 'public.snapshots'")
                < int("SELECT min(id) FROM retention.deletion_log WHERE table_name = 'public.projects'"));
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
    }

    #[pg_test]
    fn a_held_descendant_keeps_its_ancestors() {
        setup();
        let hold = int("SELECT retention.place_hold('keep this snapshot', tbl => 'snapshots', subject => 'keep', notify => false)");
        Spi::run("SELECT retention.record_event('acme', 'termination', now() - interval '1 day')")
            .unwrap();
        // Previews and dry runs see the hold on the descendant too.
        assert_eq!(
            int("SELECT sum(rows)::bigint FROM retention.preview() WHERE table_name = 'public.projects' AND held_by IS NULL"),
            1
        );
        assert_eq!(
            int(&format!("SELECT sum(rows)::bigint FROM retention.preview() WHERE table_name = 'public.projects' AND held_by = {hold}")),
            1
        );
        assert_eq!(
            int("SELECT hard_deleted FROM retention.run('projects', dry_run => true) WHERE table_name = 'public.projects'"),
            1
        );
        // Project 1 takes snapshots 10 and 11 and branch 100; project 2 waits with its own.
        Spi::run("CREATE TEMP TABLE would AS SELECT * FROM retention.run(dry_run => true); CREATE TEMP TABLE did AS SELECT * FROM retention.run();").unwrap();
        assert_eq!(
            int("SELECT hard_deleted FROM would WHERE table_name = 'public.snapshots'"),
            2
        );
        assert_eq!(
            int("SELECT hard_deleted FROM would WHERE table_name = 'public.branches'"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM would FULL JOIN did USING (table_name)
                  WHERE would.hard_deleted IS DISTINCT FROM did.hard_deleted"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE id = 2"),
            1,
            "project 2 waits on its held snapshot"
        );
        assert_eq!(
            int("SELECT count(*) FROM snapshots WHERE project_id = 2"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM branches WHERE id = 200"),
            1,
            "siblings under the held parent stay too"
        );
        assert_eq!(int("SELECT count(*) FROM projects WHERE id = 1"), 0);
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[2])"),
            0,
            "a customer request is queued"
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 1);
    }

    #[pg_test]
    fn unlogged_database_cascades_are_refused() {
        setup();
        Spi::run("CREATE TABLE comments (id int PRIMARY KEY, project_id int REFERENCES projects ON DELETE CASCADE)").unwrap();
        Spi::run("INSERT INTO comments VALUES (1, 1); SELECT retention.record_event('acme', 'termination', now() - interval '1 day')").unwrap();
        let error = Spi::get_one::<String>(
            "SELECT error FROM retention.run() WHERE table_name = 'public.projects'",
        )
        .unwrap()
        .unwrap_or_default();
        assert!(error.contains("comments"), "{error}");
        assert_eq!(int("SELECT count(*) FROM projects"), 3);
        assert_eq!(int("SELECT count(*) FROM comments"), 1);
        // Every hard-delete path refuses, not only the purge.
        assert_eq!(
            crate::testing::sqlstate("SELECT retention.request_delete('projects', ARRAY[1])"),
            "55000"
        );
        assert_eq!(int("SELECT count(*) FROM comments"), 1);
    }
}
