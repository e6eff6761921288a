//! Parent-bound child tables: a managed table whose category uses the parent clock and that
//! has a foreign key to its parent. Found once per loaded table; a table that foreign keys
//! with ON DELETE CASCADE / SET NULL reference from anything but such a child is refused (its
//! rows would change without a log entry).

use crate::engine::catalog::{self, Clock};
use crate::engine::managed::{Child, Managed};
use crate::error::RetentionError;
use crate::pg::executor;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

/// How deep parent → child → grandchild chains are followed.
pub const MAX_DEPTH: usize = 8;

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
    let offender = executor::first_name(client, UNLOGGED_CASCADES, table.oid)?;
    match offender {
        Some(fk) => Err(RetentionError::UnsafeTarget(
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

/// The SQL types of the child's foreign-key columns.
pub fn child_fk_types(client: &SpiClient, child: &Child) -> Result<Vec<String>, RetentionError> {
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
