//! Rows inserted into a table the way `COPY` inserts them: the table's `NOT NULL` and `CHECK`
//! constraints checked, the rows of a group stored together (`heap_multi_insert`: one WAL
//! record and one buffer lock per page), then their index entries added, without parsing,
//! planning or executing an `INSERT`. For the extension's own tables only: no privilege is
//! checked, and a table with an `INSERT` trigger, or stored by another access method than heap,
//! is refused (its triggers would not fire as they do for an `INSERT` statement).
//!
//! Memory: a group's rows are built in one context kept for the backend's life and reset after
//! each group, whose first block is large enough for a group: memory already mapped is reused
//! (new pages are slow to fault in on some virtual machines).

use crate::error::RetentionError;
use pgrx::pg_sys;
use std::ffi::CString;

/// One column's value in a row: a datum, or None for NULL.
pub type Value = Option<pg_sys::Datum>;

/// Inserts `rows` into `schema.table`, whose columns `columns` name in the order of each row's
/// values (columns not named are NULL). `rows` builds each row's datums when asked for it, in
/// a memory context reset after the row's group is stored. The rows are visible to the
/// transaction's next command.
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

/// Rows buffered before they are stored together (`heap_multi_insert`, as `COPY` stores rows):
/// one WAL record and one buffer lock per page filled instead of per row. A group of log
/// entries fills about four pages, and its slots stay in the processor's cache until their
/// index entries are added: with groups of 1,000, forming the index entries re-read the slots
/// from memory and cost 2–3% of a purge's CPU time (perf, session 32).
const BUFFERED: usize = 100;

/// The memory of one group's rows and slots: a context kept for the backend's life whose first
/// block (1 MB; a group of log entries needs about 100 kB) survives each reset, so that a group
/// reuses memory already mapped rather than fresh pages.
fn group_memory() -> pg_sys::MemoryContext {
    thread_local! {
        static GROUP: std::cell::Cell<pg_sys::MemoryContext> =
            const { std::cell::Cell::new(std::ptr::null_mut()) };
    }
    GROUP.with(|group| {
        if group.get().is_null() {
            const SIZE: usize = 1 << 20;
            // SAFETY: a child of TopMemoryContext, which lives as long as the backend.
            group.set(unsafe {
                pg_sys::AllocSetContextCreateInternal(
                    pg_sys::TopMemoryContext,
                    c"pg_retention direct insert".as_ptr(),
                    SIZE,
                    SIZE,
                    2 * SIZE,
                )
            });
        }
        group.get()
    })
}

/// An open relation ready for inserting: the executor state index maintenance and constraint
/// checks need (a range table of the one relation, its result relation with the indexes open),
/// and the position among a row's values of each named column.
struct Target<const N: usize> {
    estate: *mut pg_sys::EState,
    result_rel: *mut pg_sys::ResultRelInfo,
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
        refuse_unsupported(rel, schema, table)?;
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
        Ok(Target {
            estate,
            result_rel,
            natts,
            positions,
        })
    }

    /// Inserts every row, in groups of [`BUFFERED`] built in [`group_memory`], then releases the
    /// indexes and the executor state.
    unsafe fn insert(self, rows: impl Iterator<Item = [Value; N]>) {
        let memory = group_memory();
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            pg_sys::MemoryContextReset(memory);
            let outer = pg_sys::MemoryContextSwitchTo(memory);
            // A copy, not reference-counted: the slots go with the memory, pinning nothing.
            let tupdesc = pg_sys::CreateTupleDescCopy((*(*self.result_rel).ri_RelationDesc).rd_att);
            let slots: Vec<_> = rows
                .by_ref()
                .take(BUFFERED)
                .map(|row| self.slot_of(tupdesc, row))
                .collect();
            self.store(&slots);
            pg_sys::MemoryContextSwitchTo(outer);
        }
        pg_sys::MemoryContextReset(memory);
        pg_sys::ExecCloseIndices(self.result_rel);
        pg_sys::FreeExecutorState(self.estate);
    }

    /// A slot holding `row` (the columns not named NULL), its constraints checked.
    unsafe fn slot_of(
        &self,
        tupdesc: pg_sys::TupleDesc,
        row: [Value; N],
    ) -> *mut pg_sys::TupleTableSlot {
        let slot = pg_sys::MakeSingleTupleTableSlot(tupdesc, &raw const pg_sys::TTSOpsVirtual);
        let values = std::slice::from_raw_parts_mut((*slot).tts_values, self.natts);
        let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, self.natts);
        nulls.fill(true);
        for (value, &position) in row.into_iter().zip(&self.positions) {
            if let Some(datum) = value {
                values[position] = datum;
                nulls[position] = false;
            }
        }
        pg_sys::ExecStoreVirtualTuple(slot);
        if !(*tupdesc).constr.is_null() {
            pg_sys::ExecConstraints(self.result_rel, slot, self.estate);
        }
        slot
    }

    /// Stores the rows of `slots` together, then adds their index entries one by one (as `COPY`
    /// does).
    unsafe fn store(&self, slots: &[*mut pg_sys::TupleTableSlot]) {
        pg_sys::heap_multi_insert(
            (*self.result_rel).ri_RelationDesc,
            slots.as_ptr().cast_mut(),
            slots.len() as i32,
            pg_sys::GetCurrentCommandId(true),
            0,
            std::ptr::null_mut(),
        );
        for &slot in slots {
            // The extension's tables have no deferred or exclusion constraints: nothing to
            // recheck.
            let recheck = pg_sys::ExecInsertIndexTuples(
                self.result_rel,
                slot,
                self.estate,
                false,
                false,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            if !recheck.is_null() {
                pg_sys::list_free(recheck);
            }
        }
        let per_row = (*self.estate).es_per_tuple_exprcontext;
        if !per_row.is_null() {
            pg_sys::MemoryContextReset((*per_row).ecxt_per_tuple_memory);
        }
    }
}

/// Refuses a table [`insert`] cannot write as an `INSERT` would: one stored by another access
/// method than heap, or with `INSERT` triggers, which it would not fire.
unsafe fn refuse_unsupported(
    rel: pg_sys::Relation,
    schema: &str,
    table: &str,
) -> Result<(), RetentionError> {
    if (*rel).rd_tableam != pg_sys::GetHeapamTableAmRoutine() {
        return Err(RetentionError::UnsafeTarget(
            format!("{schema}.{table} is not stored as a heap table"),
            "Set its access method back to heap: the extension writes it directly.".to_string(),
        ));
    }
    refuse_insert_triggers(rel, schema, table)
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
