//! Parent-bound data (clock `parent`): rows of a child table — a managed table whose category
//! uses the parent clock and that has a foreign key to its parent — are hard-deleted with their
//! parent, first, in the same transaction, each logged with reason `parent_deleted`, at any
//! depth. A held descendant keeps its parent (and every ancestor) in place.
//!
//! Postgres' own ON DELETE CASCADE / SET NULL would change rows without a log entry: a purge
//! refuses tables that such foreign keys reference from anything but a parent-bound child.

use crate::catalog::{self, Category, Clock};
use crate::deletion_log::Batch;
use crate::error::RetentionError;
use crate::holds;
use crate::managed::Managed;
use crate::owner;
use crate::params::Params;
use crate::purge::{self, Act};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
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
use pgrx::spi::{quote_identifier, SpiClient};

/// How deep parent → child → grandchild chains are followed.
const MAX_DEPTH: usize = 8;

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

/// A parent-bound child of a table, through one foreign key.
#[derive(Debug, Clone)]
pub struct Child {
    pub table: Managed,
    pub category: Category,
    /// The child's foreign-key columns and the parent columns they reference, in order.
    pub fk_columns: Vec<String>,
    pub parent_columns: Vec<String>,
}

const FK_COLUMNS: &str = "
    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)";

/// The parent-bound children of `table`, looked up once per loaded `Managed` (a cycle, a call):
/// every batch of a cycle asks again, at every level of the hierarchy.
pub fn children<'a>(client: &SpiClient, table: &'a Managed) -> Result<&'a [Child], RetentionError> {
    if table.children.get().is_none() {
        let _ = table.children.set(load_children(client, table)?);
    }
    Ok(table.children.get().map(Vec::as_slice).unwrap_or_default())
}

fn load_children(client: &SpiClient, table: &Managed) -> Result<Vec<Child>, RetentionError> {
    let rows: Vec<(pg_sys::Oid, Vec<String>, Vec<String>)> = client
        .select(
            &format!(
                "SELECT c.conrelid, {FK_COLUMNS}
                   FROM pg_catalog.pg_constraint c
                   JOIN retention.managed_tables m ON m.tbl = c.conrelid
                   JOIN retention.categories k ON k.name = m.category
                  WHERE c.contype = 'f' AND c.confrelid = $1 AND c.conrelid <> c.confrelid
                    AND k.clock = 'parent'
                  ORDER BY c.conrelid, c.conname"
            ),
            None,
            &[table.oid.into()],
        )?
        .map(|r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<Vec<String>>(2)?.unwrap_or_default(),
                r.get::<Vec<String>>(3)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, RetentionError>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (oid, fk_columns, parent_columns) in rows {
        let child = Managed::load(client, oid)?;
        let category = catalog::load(client, &child.category)?;
        debug_assert_eq!(category.clock, Clock::Parent);
        out.push(Child {
            table: child,
            category,
            fk_columns,
            parent_columns,
        });
    }
    Ok(out)
}

const UNLOGGED_CASCADES: &str = "
    SELECT c.conrelid::regclass::text || ' (' || c.conname || ')'
      FROM pg_catalog.pg_constraint c
     WHERE c.contype = 'f' AND c.confrelid = $1 AND c.confdeltype IN ('c', 'n', 'd')
       AND NOT EXISTS (SELECT 1 FROM retention.managed_tables m
                         JOIN retention.categories k ON k.name = m.category
                        WHERE m.tbl = c.conrelid AND k.clock = 'parent')";

/// Refuses to purge a table that foreign keys reference with ON DELETE CASCADE, SET NULL or
/// SET DEFAULT from tables that are not its parent-bound children: deleting a parent row would
/// change those rows without a log entry. Checked once per loaded `Managed`, like `children`.
pub fn check_unlogged_cascades(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    if table.cascades_checked.get() {
        return Ok(());
    }
    let offender = owner::first_name(client, UNLOGGED_CASCADES, table.oid)?;
    match offender {
        Some(fk) => Err(RetentionError::MissingColumnRole(
            format!(
                "foreign key {fk} would delete or change rows referencing {} without a log entry",
                table.display_name
            ),
            "Manage the referencing table with a category using clock => 'parent', or make the foreign key ON DELETE NO ACTION.".into(),
        )),
        None => {
            table.cascades_checked.set(true);
            Ok(())
        }
    }
}

/// The rows of each parent-bound descendant table referencing the rows of `table` that
/// `rows` (`FROM … AS t WHERE …`, over `params`) selects, children's children included.
pub fn descendant_counts(
    client: &SpiClient,
    table: &Managed,
    rows: &str,
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
        let child_rows = format!(
            "FROM {} AS t WHERE ({}) IN (SELECT {} {rows})",
            child.table.display_name,
            referencing.join(", "),
            referenced.join(", ")
        );
        let count = owner::select(
            client,
            &child.table,
            &format!("SELECT count(*) {child_rows}"),
            params.args(),
        )?
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

/// SQL over row alias `t` of `table`: true when a held row descends from it. None when the
/// table has no parent-bound children. Holds are read with a fresh snapshot (purge batches).
pub fn held_descendant_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    Ok(
        descendant_terms(client, table, params, 0, Reading::Fresh, Answer::Exists)?
            .map(|terms| format!("({})", terms.join(" OR "))),
    )
}

/// SQL over row alias `t` of `table`: the id of a hold on one of its descendants, or NULL
/// (previews and dry runs: holds read in the statement's snapshot, standby included). None
/// when the table has no parent-bound children.
pub fn descendant_hold_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    Ok(
        descendant_terms(client, table, params, 0, Reading::Snapshot, Answer::HoldId)?
            .map(|terms| format!("coalesce({})", terms.join(", "))),
    )
}

#[derive(Clone, Copy)]
enum Reading {
    Fresh,
    Snapshot,
}

#[derive(Clone, Copy)]
enum Answer {
    /// Boolean terms: a held descendant exists.
    Exists,
    /// Bigint terms: the id of a hold on a descendant, or NULL.
    HoldId,
}

/// One term per parent-bound child through which a held row can descend from `t`.
fn descendant_terms(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
    depth: usize,
    reading: Reading,
    answer: Answer,
) -> Result<Option<Vec<String>>, RetentionError> {
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    let mut terms = Vec::new();
    for child in children(client, table)? {
        let held = match reading {
            Reading::Fresh => holds::active_for(client, &child.table)?,
            Reading::Snapshot => holds::active_for_reading(client, &child.table)?,
        };
        let category = child.table.category_sql(params);
        let deeper = descendant_terms(client, &child.table, params, depth + 1, reading, answer)?;
        // The parent's referenced values go through `p` so that the child can be `t` inside.
        let parent_values: Vec<String> = child
            .parent_columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{} AS v{i}", quote_identifier(c)))
            .collect();
        let join: Vec<String> = child
            .fk_columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{} = p.v{i}", quote_identifier(c)))
            .collect();
        let (parent_values, join) = (parent_values.join(", "), join.join(" AND "));
        match answer {
            Answer::Exists => {
                let mut covered: Vec<String> =
                    holds::any_covers_sql(&held, &child.table, None, &category, params)
                        .into_iter()
                        .collect();
                covered.extend(deeper.map(|d| d.join(" OR ")));
                if covered.is_empty() {
                    continue;
                }
                terms.push(format!(
                    "EXISTS (SELECT 1 FROM (SELECT {parent_values}) AS p CROSS JOIN LATERAL
                               (SELECT 1 FROM {} AS t WHERE {join} AND ({}) LIMIT 1) AS held)",
                    child.table.display_name,
                    covered.join(" OR ")
                ));
            }
            Answer::HoldId => {
                let whens: Vec<String> = held
                    .iter()
                    .filter_map(|h| {
                        holds::covers_sql(h, &child.table, None, &category, params)
                            .map(|covers| format!("WHEN {covers} THEN {}::bigint", h.id))
                    })
                    .collect();
                let deeper = deeper.map(|d| format!("coalesce({})", d.join(", ")));
                let id = match (whens.is_empty(), deeper) {
                    (true, None) => continue,
                    (true, Some(deeper)) => deeper,
                    (false, deeper) => format!(
                        "CASE {} {} END",
                        whens.join(" "),
                        deeper.map(|d| format!("ELSE {d}")).unwrap_or_default()
                    ),
                };
                terms.push(format!(
                    "(SELECT held.id FROM (SELECT {parent_values}) AS p CROSS JOIN LATERAL
                        (SELECT {id} AS id FROM {} AS t WHERE {join}) AS held
                      WHERE held.id IS NOT NULL LIMIT 1)",
                    child.table.display_name
                ));
            }
        }
    }
    Ok((!terms.is_empty()).then_some(terms))
}

/// Hard-deletes the rows of `table` that `due` selects, their parent-bound descendants first;
/// logs each row (descendants with reason `parent_deleted`). Returns the rows of `table`.
#[allow(clippy::too_many_arguments)]
pub fn hard_delete(
    client: &mut SpiClient,
    table: &Managed,
    kids: &[Child],
    due: &str,
    params: &mut Params,
    batch: &Batch,
    category: Option<&str>,
    retain_for: Option<Interval>,
) -> Result<i64, RetentionError> {
    let _depth = Depth::enter()?;
    // Lock the rows and collect their keys and the values their children reference.
    let mut referenced: Vec<String> = Vec::new();
    for kid in kids {
        for c in &kid.parent_columns {
            if !referenced.contains(c) {
                referenced.push(c.clone());
            }
        }
    }
    let aggregates: Vec<String> = std::iter::once(format!("array_agg({})", table.key_text_sql()))
        .chain(
            referenced
                .iter()
                .map(|c| format!("array_agg(t.{}::text)", quote_identifier(c))),
        )
        .collect();
    let matching = purge::due_rows_sql(table);
    let locked = owner::update(
        client,
        table,
        &format!(
            "WITH due AS ({due}) SELECT {} FROM {} AS t WHERE {matching}",
            aggregates.join(", "),
            table.display_name
        ),
        params.args(),
    )?;
    let row = locked.first();
    let Some(keys) = row.get_datum_by_ordinal(1)? else {
        return Ok(0);
    };
    let mut values = Vec::with_capacity(referenced.len());
    for i in 0..referenced.len() {
        values.push(row.get::<Vec<Option<String>>>(i + 2)?.unwrap_or_default());
    }

    for kid in kids {
        let mut kid_params = Params::default();
        let types = child_fk_types(client, kid)?;
        let matched = if kid.fk_columns.len() == 1 {
            let v = &values[referenced
                .iter()
                .position(|c| c == &kid.parent_columns[0])
                .unwrap_or(0)];
            format!(
                "t.{} = ANY({}::text[]::{}[])",
                quote_identifier(&kid.fk_columns[0]),
                kid_params.bind(v.clone()),
                types[0]
            )
        } else {
            let columns: Vec<String> = kid
                .fk_columns
                .iter()
                .map(|c| format!("t.{}", quote_identifier(c)))
                .collect();
            let mut arrays = Vec::new();
            let mut casts = Vec::new();
            for (i, parent_column) in kid.parent_columns.iter().enumerate() {
                let v = &values[referenced
                    .iter()
                    .position(|c| c == parent_column)
                    .unwrap_or(0)];
                arrays.push(format!("{}::text[]", kid_params.bind(v.clone())));
                casts.push(format!("u.v{i}::{}", types[i]));
            }
            let names: Vec<String> = (0..arrays.len()).map(|i| format!("v{i}")).collect();
            format!(
                "({}) IN (SELECT {} FROM unnest({}) AS u({}))",
                columns.join(", "),
                casts.join(", "),
                arrays.join(", "),
                names.join(", ")
            )
        };
        let unheld = holds::unheld_sql(client, &kid.table, &mut kid_params)?;
        let kid_due = purge::lock_all(client, &kid.table, &[matched, unheld], &kid_params)?;
        let rows = purge::act_and_log(
            client,
            &kid.table,
            Act::HardDelete,
            &kid_due,
            &mut kid_params,
            &Batch {
                action: "hard_delete",
                table_name: &kid.table.display_name,
                reason: "parent_deleted",
                run_id: batch.run_id,
                reason_of_soft_delete: false,
                approval_id: batch.approval_id,
            },
            Some(&kid.category.name),
            Some(kid.category.retain_for),
        )?;
        if rows > 0 {
            CASCADED.with(|c| c.borrow_mut().push((kid.table.display_name.clone(), rows)));
        }
    }

    // Then the rows themselves, by key (they are locked already).
    let mut final_params = Params::default();
    final_params.bind(unsafe { DatumWithOid::new(keys, pg_sys::TEXTARRAYOID) });
    let by_key = format!(
        "SELECT {} FROM {} AS t WHERE {}",
        purge::row_id_sql(table),
        table.display_name,
        crate::tagging::key_match_sql(client, table, 1)?
    );
    Ok(purge::act_without_children(
        client,
        table,
        Act::HardDelete,
        &by_key,
        &mut final_params,
        batch,
        category,
        retain_for,
        None,
    )?
    .0)
}

fn child_fk_types(client: &SpiClient, child: &Child) -> Result<Vec<String>, RetentionError> {
    let mut types = Vec::new();
    for column in &child.fk_columns {
        types.push(
            client
                .select(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
                      WHERE attrelid = $1 AND attname = $2",
                    Some(1),
                    &[child.table.oid.into(), column.as_str().into()],
                )?
                .first()
                .get_one::<String>()?
                .unwrap_or_else(|| "text".into()),
        );
    }
    Ok(types)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
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
