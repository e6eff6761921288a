//! Rows inserted into a table the way logical replication's apply worker inserts them
//! (`ExecSimpleRelationInsert`): the table's `NOT NULL` and `CHECK` constraints checked, the row
//! stored, its index entries added, without parsing, planning or executing an `INSERT`. For the
//! extension's own tables only: no privilege is checked, and a table with an `INSERT` trigger
//! is refused (its writes would not fire it as an `INSERT` statement does).
//!
//! Memory: each row is built and inserted in the executor's per-tuple context, reset before
//! the next one, so a batch of any size reuses the same few kilobytes.

use crate::error::RetentionError;
use pgrx::pg_sys;
use std::ffi::CString;

/// One column's value in a row: a datum, or None for NULL.
pub type Value = Option<pg_sys::Datum>;

/// Inserts `rows` into `schema.table`, whose columns `columns` name in the order of each row's
/// values (columns not named are NULL). `rows` builds each row's datums when asked for it, in
/// a memory context reset after the row is stored. The rows are visible to the transaction's
/// next command.
pub fn insert<const N: usize>(
    schema: &str,
    table: &str,
    columns: &[&str; N],
    rows: impl Iterator<Item = [Value; N]>,
) -> Result<(), RetentionError> {
    let oid = relation_oid(schema, table)?;
    // SAFETY: the relation is opened and locked for the rest of the transaction, and the
    // executor state is released before it is closed; an error on the way aborts the
    // (sub)transaction, whose resource owner releases what is left.
    unsafe {
        let rel = pg_sys::table_open(oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let result = Target::open(rel, schema, table, columns).map(|target| target.insert(rows));
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        result?;
        pg_sys::CommandCounterIncrement();
    }
    Ok(())
}

fn relation_oid(schema: &str, table: &str) -> Result<pg_sys::Oid, RetentionError> {
    let (schema_c, table_c) = (cstring(schema)?, cstring(table)?);
    // SAFETY: catalog lookups by name; a missing schema raises, a missing table is InvalidOid.
    let oid = unsafe {
        pg_sys::get_relname_relid(
            table_c.as_ptr(),
            pg_sys::get_namespace_oid(schema_c.as_ptr(), false),
        )
    };
    if oid == pg_sys::InvalidOid {
        return Err(RetentionError::Unsupported(format!(
            "table {schema}.{table} does not exist: reinstall the extension"
        )));
    }
    Ok(oid)
}

fn cstring(s: &str) -> Result<CString, RetentionError> {
    CString::new(s)
        .map_err(|_| RetentionError::InvalidValue(format!("name {s:?} contains a NUL byte")))
}

/// An open relation ready for inserting: the executor state `ExecSimpleRelationInsert` needs
/// (a range table of the one relation, its result relation with the indexes open), one slot,
/// and the position among the slot's values of each named column.
struct Target<const N: usize> {
    estate: *mut pg_sys::EState,
    result_rel: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    natts: usize,
    positions: [usize; N],
}

impl<const N: usize> Target<N> {
    unsafe fn open(
        rel: pg_sys::Relation,
        schema: &str,
        table: &str,
        columns: &[&str; N],
    ) -> Result<Target<N>, RetentionError> {
        refuse_insert_triggers(rel, schema, table)?;
        let tupdesc = (*rel).rd_att;
        let natts = (*tupdesc).natts as usize;
        let attrs = (*tupdesc).attrs.as_slice(natts);
        let mut positions = [0usize; N];
        for (position, column) in positions.iter_mut().zip(columns) {
            *position = attrs
                .iter()
                .position(|a| !a.attisdropped && pg_sys::name_data_to_str(&a.attname) == *column)
                .ok_or_else(|| RetentionError::UnknownColumn {
                    table: format!("{schema}.{table}"),
                    column: column.to_string(),
                })?;
        }
        let estate = pg_sys::CreateExecutorState();
        let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
            as *mut pg_sys::RangeTblEntry;
        (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
        (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
        (*rte).relid = (*rel).rd_id;
        (*rte).relkind = (*(*rel).rd_rel).relkind;
        (*rte).rellockmode = pg_sys::RowExclusiveLock as i32;
        pg_sys::ExecInitRangeTable(estate, pg_sys::lappend(std::ptr::null_mut(), rte.cast()));
        let result_rel = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
            as *mut pg_sys::ResultRelInfo;
        pg_sys::InitResultRelInfo(result_rel, rel, 1, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(result_rel, false);
        let slot = pg_sys::MakeSingleTupleTableSlot(tupdesc, &raw const pg_sys::TTSOpsVirtual);
        Ok(Target {
            estate,
            result_rel,
            slot,
            natts,
            positions,
        })
    }

    /// Inserts every row, then releases the slot, the indexes and the executor state.
    unsafe fn insert(self, rows: impl Iterator<Item = [Value; N]>) {
        let row_memory = (*pg_sys::MakePerTupleExprContext(self.estate)).ecxt_per_tuple_memory;
        let mut rows = rows;
        loop {
            pg_sys::MemoryContextReset(row_memory);
            let outer = pg_sys::MemoryContextSwitchTo(row_memory);
            let stored = match rows.next() {
                Some(row) => {
                    self.store(row);
                    pg_sys::ExecSimpleRelationInsert(self.result_rel, self.estate, self.slot);
                    pg_sys::ExecClearTuple(self.slot);
                    true
                }
                None => false,
            };
            pg_sys::MemoryContextSwitchTo(outer);
            if !stored {
                break;
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(self.slot);
        pg_sys::ExecCloseIndices(self.result_rel);
        pg_sys::FreeExecutorState(self.estate);
    }

    /// Puts `row` in the slot, the columns not named NULL.
    unsafe fn store(&self, row: [Value; N]) {
        let values = std::slice::from_raw_parts_mut((*self.slot).tts_values, self.natts);
        let nulls = std::slice::from_raw_parts_mut((*self.slot).tts_isnull, self.natts);
        nulls.fill(true);
        for (value, &position) in row.into_iter().zip(&self.positions) {
            if let Some(datum) = value {
                values[position] = datum;
                nulls[position] = false;
            }
        }
        pg_sys::ExecStoreVirtualTuple(self.slot);
    }
}

/// Refuses a table with `INSERT` triggers, which [`insert`] would not fire.
unsafe fn refuse_insert_triggers(
    rel: pg_sys::Relation,
    schema: &str,
    table: &str,
) -> Result<(), RetentionError> {
    let trigdesc = (*rel).trigdesc;
    if !trigdesc.is_null()
        && ((*trigdesc).trig_insert_before_row
            || (*trigdesc).trig_insert_after_row
            || (*trigdesc).trig_insert_instead_row
            || (*trigdesc).trig_insert_before_statement
            || (*trigdesc).trig_insert_after_statement)
    {
        return Err(RetentionError::UnsafeTarget(
            format!(
                "{schema}.{table} has an INSERT trigger, which the extension's writes do not fire"
            ),
            "Drop the trigger: the extension alone writes this table.".to_string(),
        ));
    }
    Ok(())
}
