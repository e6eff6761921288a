//! The hold guard: triggers the extension puts on every managed table an active hold can cover
//! ([`sync`]), so that retention wins over deletion whoever deletes. While an active hold covers
//! a row, a `DELETE` of it, an `UPDATE` that moves it out of the hold's scope (its tenant,
//! subject or category column) or changes its clock column, and a `TRUNCATE` of its table are
//! refused with `55006`, naming the hold. A content `UPDATE` of a held row is allowed: a hold
//! preserves the record, it does not freeze the application; a hold placed with
//! `freeze => true` refuses content updates of its rows too. The triggers are `ENABLE ALWAYS`
//! (`session_replication_role = replica` does not skip them), and the event trigger
//! `retention_guard_ddl` refuses to drop or disable them, or to drop or rename a column the
//! policy reads, while a hold covers the table.
//!
//! Cost: a table no active hold can cover carries no trigger and pays nothing. The row trigger
//! fires before `DELETE`, the scope trigger after `UPDATE OF` the scope and clock columns only
//! (a content update calls neither, unless a frozen hold covers the table). The scope
//! trigger's column list also makes PostgreSQL itself refuse `ALTER COLUMN … TYPE` of those
//! columns while the table is guarded.
//! Per row, it reads the scope columns' bytes (no output function for text columns) and
//! compares them with the holds'. The first row a transaction touches takes the hold lock
//! (shared, as a purge batch does: a hold placed later waits for this transaction) and
//! processes pending cache invalidations. What the guard knows of a table is read once and kept
//! across transactions until a hold, a managed table or a category changes (a relcache
//! invalidation of retention.holds, sent by the functions that change them).

use crate::engine::holds::{self, Hold};
use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::locks::LockKey;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;

/// How the guard turns a column's value into the text the holds' scopes are compared with:
/// exactly as the SQL predicate's `t.col::text` does (holds.rs).
#[derive(Clone, Copy)]
enum TextForm {
    /// A text type (or one binary-coercible to text): the value's own bytes.
    Bytes,
    /// A cast function to text (`bpchar` trims, `bool` spells `true`, `inet` keeps its mask).
    Cast(pg_sys::Oid),
    /// No cast: the type's output function (CoerceViaIO).
    Output(pg_sys::Oid),
}

/// One column the guard reads.
#[derive(Clone, Copy)]
struct Column {
    attnum: i32,
    form: TextForm,
    byval: bool,
    len: i16,
}

/// What the guard knows of one guarded table.
struct Guarded {
    display_name: String,
    default_category: String,
    /// The active holds that can cover the table.
    holds: Vec<Hold>,
    tenant: Option<Column>,
    subject: Option<Column>,
    category: Option<Column>,
    clocks: Vec<Column>,
    /// Whether some hold scopes by tenant, subject, category: only those columns are read.
    scoped: [bool; 3],
}

thread_local! {
    /// What the guard read of each table, kept across transactions until a change of holds,
    /// managed tables or categories (or of the table) invalidates it (see [`invalidated`]).
    static GUARDED: RefCell<HashMap<pg_sys::Oid, Rc<Guarded>>> = RefCell::new(HashMap::new());
    /// The relations whose invalidation clears [`GUARDED`]: retention.holds,
    /// retention.managed_tables and retention.category_definitions.
    static WATCHED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// The transaction that last took the hold lock in the guard.
    static LOCKED_IN: crate::pg::xact::Mark = const { Cell::new(None) };
    /// Set only while [`sync`] changes the guard's triggers (see [`guard_changing`]).
    static CHANGING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is inside the extension's own change of the guard's triggers.
pub fn is_changing() -> bool {
    CHANGING.with(|c| c.get())
}

/// Registers the cache's invalidation callback (from `_PG_init`).
pub fn init() {
    // SAFETY: registers a static callback, as extensions do in _PG_init.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(invalidated), pg_sys::Datum::from(0)) };
}

/// Relcache invalidation: forgets the cache when a watched relation, a guarded table (or every
/// relation) is invalidated. Runs inside invalidation processing: no catalog access here.
#[pg_guard]
unsafe extern "C-unwind" fn invalidated(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid
        || WATCHED.with(|w| w.borrow().contains(&relid))
        || GUARDED.with(|g| g.borrow().contains_key(&relid))
    {
        forget();
    }
}

/// Tells every backend's guard (this one's at once, the others' at commit) that holds,
/// managed tables or categories changed: called by every function that changes them.
pub fn invalidate(client: &pgrx::spi::SpiClient) -> Result<(), RetentionError> {
    let holds = client
        .select("SELECT 'retention.holds'::regclass::oid", Some(1), &[])?
        .first()
        .get_one::<pg_sys::Oid>()?;
    if let Some(holds) = holds {
        // SAFETY: a valid relation oid; the message is sent at commit.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(holds) };
    }
    forget();
    Ok(())
}

/// The guard's view of table `oid` (a managed table, or a partition of one). Once per
/// transaction the guard takes the hold lock (shared: a hold placed later waits for this
/// transaction) and processes pending invalidations, so a hold committed before is seen; the
/// view itself is read once and kept.
fn guarded(oid: pg_sys::Oid, tupdesc: pg_sys::TupleDesc) -> Result<Rc<Guarded>, RetentionError> {
    if LOCKED_IN.with(|mark| crate::pg::xact::first_in_transaction(mark, false)) {
        crate::pg::locks::take_lock(LockKey::Holds, false)?;
        // SAFETY: processes the shared invalidation queue, as a lock acquisition does.
        unsafe { pg_sys::AcceptInvalidationMessages() };
    }
    if let Some(found) = GUARDED.with(|g| g.borrow().get(&oid).cloned()) {
        return Ok(found);
    }
    // The catalog and the holds are read as the extension (the deleting role, or the table's
    // owner inside a purge, has no rights on them); the row values are read as the caller.
    let loaded = Rc::new(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| load(client, oid, tupdesc))
    })?);
    GUARDED.with(|g| g.borrow_mut().insert(oid, loaded.clone()));
    Ok(loaded)
}

/// Reads what the guard needs of table `oid`, whose rows have `tupdesc`.
fn load(
    client: &mut pgrx::spi::SpiClient,
    oid: pg_sys::Oid,
    tupdesc: pg_sys::TupleDesc,
) -> Result<Guarded, RetentionError> {
    watch(client)?;
    let table = Managed::load(client, managed_ancestor(client, oid)?)?;
    let holds: Vec<Hold> = holds::active_only(client, &table)?
        .into_iter()
        .filter(|h| can_cover(h, &table))
        .collect();
    let column = |name: &Option<String>| -> Result<Option<Column>, RetentionError> {
        name.as_deref()
            .map(|c| describe(client, tupdesc, c))
            .transpose()
    };
    let (tenant, subject, category) = (
        column(&table.tenant_column)?,
        column(&table.subject_column)?,
        column(&table.category_column)?,
    );
    let clocks = [&table.created_column, &table.activity_column]
        .into_iter()
        .filter_map(|c| column(c).transpose())
        .collect::<Result<_, _>>()?;
    let scoped = [
        holds.iter().any(|h| h.tenant.is_some()),
        holds.iter().any(|h| h.subject.is_some()),
        holds.iter().any(|h| h.category.is_some()),
    ];
    Ok(Guarded {
        scoped,
        holds,
        tenant,
        subject,
        category,
        clocks,
        default_category: table.category,
        display_name: table.display_name,
    })
}

/// The managed table whose guard fired: `oid` itself, or the partitioned table it is a
/// partition of (row triggers on a partitioned table fire on its partitions).
fn managed_ancestor(
    client: &pgrx::spi::SpiClient,
    oid: pg_sys::Oid,
) -> Result<pg_sys::Oid, RetentionError> {
    Ok(client
        .select(
            "SELECT coalesce((SELECT a.relid::oid
                                FROM pg_catalog.pg_partition_ancestors($1::oid::regclass)
                                     WITH ORDINALITY AS a(relid, n)
                                JOIN retention.managed_tables m ON m.tbl = a.relid
                               ORDER BY a.n LIMIT 1), $1)",
            Some(1),
            &[oid.into()],
        )?
        .first()
        .get_one::<pg_sys::Oid>()?
        .unwrap_or(oid))
}

/// Records the oids of the relations whose invalidation clears the cache.
fn watch(client: &pgrx::spi::SpiClient) -> Result<(), RetentionError> {
    if WATCHED.with(|w| !w.borrow().is_empty()) {
        return Ok(());
    }
    let oids: Vec<pg_sys::Oid> = client
        .select(
            "SELECT unnest(ARRAY['retention.holds'::regclass, 'retention.managed_tables'::regclass,
                                 'retention.category_definitions'::regclass])::oid",
            None,
            &[],
        )?
        .map(|r| r.get::<pg_sys::Oid>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    WATCHED.with(|w| *w.borrow_mut() = oids);
    Ok(())
}

/// Whether a hold's scopes can match rows of `table` at all.
fn can_cover(hold: &Hold, table: &Managed) -> bool {
    (hold.tenant.is_none() || table.tenant_column.is_some())
        && (hold.subject.is_none() || table.subject_column.is_some())
        && (hold.category.is_none()
            || hold.category.as_deref() == Some(table.category.as_str())
            || table.category_column.is_some())
}

/// Column `name` of `tupdesc`: its number, and how its text is formed (the cast to text of its
/// base type, as `::text` resolves it).
fn describe(
    client: &pgrx::spi::SpiClient,
    tupdesc: pg_sys::TupleDesc,
    name: &str,
) -> Result<Column, RetentionError> {
    let cname = CString::new(name).unwrap_or_default();
    // SAFETY: a valid tuple descriptor and a NUL-terminated name.
    let attnum = unsafe { pg_sys::SPI_fnumber(tupdesc, cname.as_ptr()) };
    if attnum <= 0 {
        return Err(RetentionError::MissingColumnRole(
            format!("column \"{name}\" the retention policy reads is missing"),
            "Manage the table again with retention.manage().".into(),
        ));
    }
    // SAFETY: a valid attribute number of `tupdesc`; catalog lookups of its type.
    let (typid, base, len, byval) = unsafe {
        let typid = pg_sys::SPI_gettypeid(tupdesc, attnum);
        let (mut len, mut byval) = (0i16, false);
        pg_sys::get_typlenbyval(typid, &mut len, &mut byval);
        (typid, pg_sys::getBaseType(typid), len, byval)
    };
    let cast = client
        .select(
            "SELECT c.castmethod::text, c.castfunc FROM pg_catalog.pg_cast c
              WHERE c.castsource = $1 AND c.casttarget = 'pg_catalog.text'::pg_catalog.regtype",
            Some(1),
            &[base.into()],
        )?
        .next()
        .map(|r| -> Result<_, RetentionError> {
            Ok((r.get::<String>(1)?, r.get::<pg_sys::Oid>(2)?))
        })
        .transpose()?;
    let form = match cast {
        _ if base == pg_sys::TEXTOID || base == pg_sys::VARCHAROID => TextForm::Bytes,
        Some((Some(method), _)) if method == "b" => TextForm::Bytes,
        Some((Some(method), Some(func))) if method == "f" => TextForm::Cast(func),
        _ => {
            let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
            // SAFETY: a valid type oid.
            unsafe { pg_sys::getTypeOutputInfo(typid, &mut output, &mut varlena) };
            TextForm::Output(output)
        }
    };
    Ok(Column {
        attnum,
        form,
        byval,
        len,
    })
}

impl Column {
    /// The value of this column in `tuple`; None for NULL.
    ///
    /// SAFETY: `tuple` is a valid tuple of `tupdesc`.
    unsafe fn datum(
        &self,
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> Option<pg_sys::Datum> {
        let mut isnull = false;
        let datum = pg_sys::SPI_getbinval(tuple, tupdesc, self.attnum, &mut isnull);
        (!isnull).then_some(datum)
    }

    /// The text form of this column in `tuple` (None for NULL), in memory of the current
    /// (per-tuple) context: valid for the rest of this trigger call.
    ///
    /// SAFETY: `tuple` is a valid tuple of `tupdesc`.
    unsafe fn text<'t>(
        &self,
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> Option<&'t [u8]> {
        let datum = self.datum(tuple, tupdesc)?;
        Some(match self.form {
            TextForm::Bytes => varlena_bytes(datum),
            TextForm::Cast(func) => varlena_bytes(pg_sys::OidFunctionCall1Coll(
                func,
                pg_sys::DEFAULT_COLLATION_OID,
                datum,
            )),
            TextForm::Output(func) => {
                std::ffi::CStr::from_ptr(pg_sys::OidOutputFunctionCall(func, datum)).to_bytes()
            }
        })
    }

    /// Whether the column has the same value in `old` and `new`: the same bytes, or else the
    /// same text (two encodings of one value, as a compressed and a plain copy).
    ///
    /// SAFETY: both tuples are valid tuples of `tupdesc`.
    unsafe fn same(
        &self,
        old: pg_sys::HeapTuple,
        new: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> bool {
        let (a, b) = match (self.datum(old, tupdesc), self.datum(new, tupdesc)) {
            (None, None) => return true,
            (Some(a), Some(b)) => (a, b),
            _ => return false,
        };
        let equal_bytes = if self.byval {
            a == b
        } else if self.len > 0 {
            let n = self.len as usize;
            std::slice::from_raw_parts(a.cast_mut_ptr::<u8>(), n)
                == std::slice::from_raw_parts(b.cast_mut_ptr::<u8>(), n)
        } else if self.len == -1 {
            varlena_bytes(a) == varlena_bytes(b)
        } else {
            false
        };
        equal_bytes || self.text(old, tupdesc) == self.text(new, tupdesc)
    }
}

/// The bytes of a varlena datum (detoasted, in the current memory context when it had to be).
///
/// SAFETY: `datum` is a varlena.
pub unsafe fn varlena_bytes<'t>(datum: pg_sys::Datum) -> &'t [u8] {
    pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()))
}

impl Guarded {
    /// The holds covering row `tuple` (the predicate of holds.rs, over the row's values).
    ///
    /// SAFETY: `tuple` is a valid tuple of `tupdesc`.
    unsafe fn covering(
        &self,
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> impl Iterator<Item = &Hold> {
        let read = |column: &Option<Column>, needed: bool| {
            column
                .filter(|_| needed)
                .and_then(|c| c.text(tuple, tupdesc))
        };
        let [by_tenant, by_subject, by_category] = self.scoped;
        let tenant = read(&self.tenant, by_tenant);
        let subject = read(&self.subject, by_subject);
        let category =
            read(&self.category, by_category).unwrap_or(self.default_category.as_bytes());
        self.holds.iter().filter(move |h| {
            h.tenant
                .as_ref()
                .is_none_or(|t| tenant == Some(t.as_bytes()))
                && h.subject
                    .as_ref()
                    .is_none_or(|s| subject == Some(s.as_bytes()))
                && h.category.as_ref().is_none_or(|c| category == c.as_bytes())
        })
    }

    /// Whether an update changes a column a hold's scope or the policy's clock reads.
    ///
    /// SAFETY: both tuples are valid tuples of `tupdesc`.
    unsafe fn moves(
        &self,
        old: pg_sys::HeapTuple,
        new: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> bool {
        [self.tenant, self.subject, self.category]
            .into_iter()
            .flatten()
            .chain(self.clocks.iter().copied())
            .any(|c| !c.same(old, new, tupdesc))
    }
}

fn refuse(what: &str, table: &str, hold: &Hold) -> ! {
    pgrx::ereport!(
        PgLogLevel::ERROR,
        PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
        format!(
            "{what} a row of {table} under legal hold {} ({}) is not allowed",
            hold.id, hold.reason
        ),
        "Legal releases the hold with retention.release_hold()."
    );
    unreachable!()
}

/// Raises `e` as a Postgres error with its SQLSTATE.
fn raise(e: RetentionError) -> ! {
    pgrx::ereport!(PgLogLevel::ERROR, e.sqlstate(), e.to_string());
    unreachable!()
}

/// `retention.hold_guard()`: the row triggers of guarded tables (`BEFORE DELETE`, `AFTER UPDATE
/// OF` the scope and clock columns, and `BEFORE UPDATE` of any column while a frozen hold covers
/// the table).
#[pg_trigger]
fn hold_guard<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, RetentionError> {
    let data = trigger.trigger_data();
    // SAFETY: the trigger manager's relation and tuples, valid during this call.
    let (oid, tupdesc) = unsafe { ((*data.tg_relation).rd_id, (*data.tg_relation).rd_att) };
    let guarded = match guarded(oid, tupdesc) {
        Ok(guarded) => guarded,
        Err(RetentionError::NotManaged(_)) => return Ok(pass(trigger)),
        Err(e) => raise(e),
    };
    if guarded.holds.is_empty() {
        return Ok(pass(trigger));
    }
    let (old, new) = (data.tg_trigtuple, data.tg_newtuple);
    // SAFETY: the old (and, for an update, new) tuple of this row event, of `tupdesc`.
    unsafe {
        let mut covering = guarded.covering(old, tupdesc).peekable();
        let Some(&first) = covering.peek() else {
            return Ok(pass(trigger));
        };
        let table = &guarded.display_name;
        if new.is_null() {
            refuse("deleting", table, first);
        }
        if let Some(frozen) = covering.find(|h| h.frozen) {
            refuse("changing (the hold is frozen)", table, frozen);
        }
        if guarded.moves(old, new, tupdesc) {
            refuse(
                "moving out of its hold's scope (or re-timing)",
                table,
                first,
            );
        }
    }
    Ok(pass(trigger))
}

/// The tuple a BEFORE row trigger returns to let the change proceed.
fn pass<'a>(trigger: &'a PgTrigger<'a>) -> Option<PgHeapTuple<'a, AllocatedByPostgres>> {
    trigger.new().or_else(|| trigger.old())
}

/// `retention.hold_guard_truncate()`: BEFORE TRUNCATE on every guarded table; refuses while an
/// active hold covers a row of the table.
#[pg_trigger]
fn hold_guard_truncate<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, RetentionError> {
    let data = trigger.trigger_data();
    // SAFETY: the trigger manager's relation, valid during this call.
    let oid = unsafe { (*data.tg_relation).rd_id };
    match crate::pg::identity::as_extension(|| Spi::connect_mut(|client| held_row(client, oid))) {
        Ok(None) => Ok(None),
        Ok(Some(hold)) => {
            pgrx::ereport!(
                PgLogLevel::ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!(
                    "table {} has rows under legal hold {hold}: it cannot be truncated",
                    oid_name(oid)
                ),
                "Legal releases the hold with retention.release_hold()."
            );
            unreachable!()
        }
        Err(e) => raise(e),
    }
}

/// The relation's name, for messages.
fn oid_name(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::oid::regclass::text", &[oid.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The id of an active hold covering some row of managed table `oid`, if any.
fn held_row(
    client: &mut pgrx::spi::SpiClient,
    oid: pg_sys::Oid,
) -> Result<Option<i64>, RetentionError> {
    let Ok(table) = Managed::load(client, oid) else {
        return Ok(None);
    };
    crate::pg::locks::take_lock(LockKey::Holds, false)?;
    let active = holds::active_only(client, &table)?;
    let mut params = crate::pg::params::Params::default();
    let category = table.category_sql(&mut params);
    let cases: Vec<String> = active
        .iter()
        .filter_map(|h| {
            holds::covers_sql(h, &table, None, &category, &mut params)
                .map(|covers| format!("WHEN {covers} THEN {}::bigint", h.id))
        })
        .collect();
    if cases.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT held FROM ({}) r WHERE held IS NOT NULL LIMIT 1",
        RowSet::of(&table).select(&format!("CASE {} END AS held", cases.join(" ")))
    );
    let found = crate::pg::executor::select(client, &table, &sql, params.args())?;
    Ok(found
        .into_iter()
        .next()
        .map(|r| r.get::<i64>(1))
        .transpose()?
        .flatten())
}

/// Whether the guard's functions exist in this schema: under a schema older than the library
/// (before ALTER EXTENSION … UPDATE) they may not, and the update re-synchronizes every table.
fn ready(client: &pgrx::spi::SpiClient) -> Result<bool, RetentionError> {
    Ok(client
        .select(
            "SELECT to_regprocedure('retention.covering_holds(regclass)') IS NOT NULL",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// What the guard's triggers on one table should be, where they are not.
struct Wanted {
    table: String,
    armed: bool,
    frozen: bool,
    /// The scope and clock columns (quoted), in column order: the row trigger's `UPDATE OF`.
    columns: Vec<String>,
}

/// Puts the guard's triggers on exactly the managed tables an active hold can cover, as
/// `ENABLE ALWAYS` triggers, and drops them elsewhere. Disabled BEFORE ROW triggers are not
/// free (PostgreSQL still fetches and locks each old row for them), so a table no hold can
/// cover carries none. Run, as the extension's owner, by every function that changes holds or
/// managed tables; a table is altered (a short ShareRowExclusiveLock, which waits for
/// transactions writing to it) only when its triggers must change.
pub fn sync(client: &mut pgrx::spi::SpiClient) -> Result<(), RetentionError> {
    if !ready(client)? {
        return Ok(());
    }
    // Citus refuses triggers on distributed tables: holds protect them in the purge's own
    // statements only (README, "Citus").
    let distributed = crate::pg::citus::distributed_tables(client)?;
    let changes: Vec<Wanted> = client
        .select(
            SYNC_SQL,
            None,
            &[
                vec![TRIGGER, FREEZE_TRIGGER, TRUNCATE_TRIGGER, SCOPE_TRIGGER].into(),
                distributed.into(),
            ],
        )?
        .map(|r| {
            Ok(Wanted {
                table: r.get::<String>(1)?.unwrap_or_default(),
                armed: r.get::<bool>(2)?.unwrap_or(false),
                frozen: r.get::<bool>(3)?.unwrap_or(false),
                columns: r.get::<Vec<String>>(4)?.unwrap_or_default(),
            })
        })
        .collect::<Result<_, RetentionError>>()?;
    changing(|| {
        for wanted in &changes {
            remove(client, &wanted.table)?;
            if wanted.armed {
                arm(client, wanted)?;
            }
        }
        Ok(())
    })
}

/// Managed tables (Citus distributed ones, `$2`, aside) whose guard triggers differ from what
/// their holds want: the table, whether an active hold can cover it, whether a frozen one
/// can, and the scope and clock columns.
const SYNC_SQL: &str = "
    SELECT w.tbl::text, w.armed, w.frozen, w.names
      FROM (SELECT m.tbl,
                   EXISTS (SELECT 1 FROM retention.covering_holds(m.tbl)) AS armed,
                   EXISTS (SELECT 1 FROM retention.covering_holds(m.tbl) h WHERE h.frozen) AS frozen,
                   coalesce(array_agg(a.attnum ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL),
                            '{}') AS nums,
                   coalesce(array_agg(pg_catalog.quote_ident(a.attname) ORDER BY a.attnum)
                              FILTER (WHERE a.attnum IS NOT NULL), '{}') AS names
              FROM retention.managed_tables m
              LEFT JOIN pg_catalog.pg_attribute a
                ON a.attrelid = m.tbl AND NOT a.attisdropped
               AND a.attname IN (m.tenant_column, m.subject_column, m.category_column,
                                 m.created_column, m.activity_column)
             WHERE m.tbl::oid <> ALL($2::oid[])
             GROUP BY m.tbl) w
     CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE t.tgname = $1[1]) > 0 AS has_row,
                   count(*) FILTER (WHERE t.tgname = $1[2]) > 0 AS has_freeze,
                   count(*) FILTER (WHERE t.tgname = $1[3]) > 0 AS has_truncate,
                   -- int2vector is zero-based: compare the lists as text.
                   max(pg_catalog.array_to_string(t.tgattr::int2[], ','))
                       FILTER (WHERE t.tgname = $1[4]) AS attrs
              FROM pg_catalog.pg_trigger t
             WHERE t.tgrelid = w.tbl AND t.tgname = ANY($1) AND t.tgenabled = 'A') c
     WHERE (w.armed, w.armed, w.frozen,
            CASE WHEN w.armed AND cardinality(w.nums) > 0
                 THEN pg_catalog.array_to_string(w.nums, ',') END)
           IS DISTINCT FROM (c.has_row, c.has_truncate, c.has_freeze, c.attrs)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = w.tbl AND t.tgname = ANY($1) AND t.tgenabled <> 'A')
     ORDER BY w.tbl";

/// Creates the guard's triggers on a table, `ENABLE ALWAYS`: the row trigger before each
/// `DELETE`; the scope trigger after each `UPDATE OF` the scope and clock columns (after, so
/// that a content update does not make PostgreSQL fetch and lock each old row for a `BEFORE`
/// trigger, and so that it sees the row as the statement left it); the truncate trigger; and,
/// while a frozen hold can cover the table, the freeze trigger before every `UPDATE`.
fn arm(client: &mut pgrx::spi::SpiClient, wanted: &Wanted) -> Result<(), RetentionError> {
    let table = &wanted.table;
    let mut triggers = vec![
        (TRIGGER, "BEFORE DELETE".to_string(), "ROW", "hold_guard"),
        (
            TRUNCATE_TRIGGER,
            "BEFORE TRUNCATE".into(),
            "STATEMENT",
            "hold_guard_truncate",
        ),
    ];
    if !wanted.columns.is_empty() {
        let columns = wanted.columns.join(", ");
        triggers.push((
            SCOPE_TRIGGER,
            format!("AFTER UPDATE OF {columns}"),
            "ROW",
            "hold_guard",
        ));
    }
    if wanted.frozen {
        triggers.push((FREEZE_TRIGGER, "BEFORE UPDATE".into(), "ROW", "hold_guard"));
    }
    for (name, events, level, function) in triggers {
        create_always(
            client,
            table,
            name,
            &format!(
                "{events} ON {table} FOR EACH {level} EXECUTE FUNCTION retention.{function}()"
            ),
        )?;
    }
    Ok(())
}

/// Creates trigger `name` on `table` (`definition`: what follows the name in `CREATE
/// TRIGGER`), `ENABLE ALWAYS`: it fires for the application, for session_replication_role
/// `replica` and for logical replication alike. Every trigger the extension puts on an
/// application table (hold guard, redaction, lock guard) is made here.
pub fn create_always(
    client: &mut pgrx::spi::SpiClient,
    table: &str,
    name: &str,
    definition: &str,
) -> Result<(), RetentionError> {
    let name = quote_identifier(name);
    client.update(&format!("CREATE TRIGGER {name} {definition}"), None, &[])?;
    client.update(
        &format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"),
        None,
        &[],
    )?;
    Ok(())
}

/// Removes the guard's triggers from `table`, where present (run by `unmanage()` and `sync`).
pub fn remove(client: &mut pgrx::spi::SpiClient, table: &str) -> Result<(), RetentionError> {
    let ours = [TRIGGER, FREEZE_TRIGGER, TRUNCATE_TRIGGER, SCOPE_TRIGGER];
    changing(|| crate::pg::triggers::drop_present(client, table, &ours))
}

/// Runs `f` with [`guard_changing`] true; cleared even when `f` raises.
pub fn changing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            CHANGING.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CHANGING.with(|c| c.replace(true)));
    f()
}

/// The guard's trigger names on a managed table.
pub const TRIGGER: &str = "retention_hold_guard";
pub const SCOPE_TRIGGER: &str = "retention_hold_scope";
pub const FREEZE_TRIGGER: &str = "retention_hold_freeze";
pub const TRUNCATE_TRIGGER: &str = "retention_hold_guard_truncate";

/// Forgets what the guard read.
fn forget() {
    GUARDED.with(|g| g.borrow_mut().clear());
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn held_rows_cannot_be_deleted_moved_or_truncated() {
        seed(800);
        // ids ≡ 1 (mod 3) belong to tenant t1 (267 rows), and are i days old.
        let hold =
            int("SELECT retention.place_hold('litigation', tenant => 't1', notify => false)");
        for (sql, state) in [
            ("DELETE FROM conversations WHERE id = 1", "55006"),
            ("DELETE FROM conversations WHERE id = 3", "00000"),
            (
                "UPDATE conversations SET tenant = 't2' WHERE id = 4",
                "55006",
            ),
            (
                "UPDATE conversations SET category = 'audit_logs' WHERE id = 4",
                "55006",
            ),
            (
                "UPDATE conversations SET created_at = now() WHERE id = 4",
                "55006",
            ),
            (
                "UPDATE conversations SET body = 'kept, edited' WHERE id = 4",
                "00000",
            ),
            (
                "UPDATE conversations SET tenant = 't1' WHERE id = 6",
                "00000",
            ),
            ("TRUNCATE conversations", "55006"),
        ] {
            assert_eq!(sqlstate(sql), state, "{sql}");
        }
        // A superuser in replica mode (triggers ENABLE ALWAYS) is refused too.
        Spi::run("SET LOCAL session_replication_role = replica").unwrap();
        assert_eq!(
            sqlstate("DELETE FROM conversations WHERE tenant = 't1'"),
            "55006"
        );
        Spi::run("SET LOCAL session_replication_role = origin").unwrap();
        // The purge acts around the held rows, through the guard.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant <> 't1' AND created_at <= now() - interval '1 year'"), 0);
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'"),
            268
        );
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        assert_eq!(sqlstate("DELETE FROM conversations WHERE id = 1"), "00000");
        assert_eq!(sqlstate("TRUNCATE conversations"), "00000");
    }

    #[pg_test]
    fn a_frozen_hold_refuses_every_update_of_its_rows() {
        seed(30);
        let guards = || {
            int(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'conversations'::regclass
                   AND tgname LIKE 'retention_hold_%' AND tgenabled = 'A'",
            )
        };
        let plain = int("SELECT retention.place_hold('a', tenant => 't2', notify => false)");
        assert_eq!(guards(), 3, "delete, scope and truncate triggers");
        assert_eq!(
            sqlstate("UPDATE conversations SET body = 'edited' WHERE id = 2"),
            "00000"
        );
        let frozen = int(
            "SELECT retention.place_hold('b', tenant => 't1', notify => false, freeze => true)",
        );
        assert_eq!(guards(), 4, "a frozen hold adds the BEFORE UPDATE trigger");
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.holds WHERE id = {frozen} AND frozen"
            )),
            1
        );
        // Tenant t1 (id ≡ 1 mod 3) is frozen; t2 only held; t0 free.
        for (sql, state) in [
            (
                "UPDATE conversations SET body = 'edited' WHERE id = 1",
                "55006",
            ),
            ("UPDATE conversations SET body = body WHERE id = 4", "55006"),
            (
                "UPDATE conversations SET body = 'edited' WHERE id = 2",
                "00000",
            ),
            (
                "UPDATE conversations SET tenant = 't0' WHERE id = 2",
                "55006",
            ),
            (
                "UPDATE conversations SET body = 'edited' WHERE id = 3",
                "00000",
            ),
        ] {
            assert_eq!(sqlstate(sql), state, "{sql}");
        }
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1' AND body = 'secret'"),
            10
        );
        Spi::run(&format!("SELECT retention.release_hold({frozen}, NULL)")).unwrap();
        assert_eq!(guards(), 3);
        assert_eq!(
            sqlstate("UPDATE conversations SET body = 'edited' WHERE id = 1"),
            "00000"
        );
        Spi::run(&format!("SELECT retention.release_hold({plain}, NULL)")).unwrap();
        assert_eq!(guards(), 0);
    }

    #[pg_test]
    fn ddl_cannot_take_the_guard_or_the_policy_columns_away() {
        seed(30);
        Spi::run("SELECT retention.place_hold('case', tenant => 't1', notify => false)").unwrap();
        for (sql, state) in [
            (
                "DROP TRIGGER retention_hold_guard ON conversations",
                "55006",
            ),
            (
                "DROP TRIGGER retention_hold_scope ON conversations",
                "55006",
            ),
            (
                "ALTER TABLE conversations DISABLE TRIGGER retention_hold_scope",
                "55006",
            ),
            (
                "DROP TRIGGER retention_hold_guard_truncate ON conversations",
                "55006",
            ),
            (
                "ALTER TABLE conversations DISABLE TRIGGER retention_hold_guard",
                "55006",
            ),
            ("ALTER TABLE conversations DISABLE TRIGGER ALL", "55006"),
            (
                "ALTER TABLE conversations ENABLE REPLICA TRIGGER retention_hold_guard",
                "55006",
            ),
            (
                "ALTER TRIGGER retention_hold_guard ON conversations RENAME TO x",
                "55006",
            ),
            // The row trigger depends on the scope and clock columns it watches.
            (
                "ALTER TABLE conversations ALTER COLUMN tenant TYPE varchar(10)",
                "0A000",
            ),
            (
                "ALTER TABLE conversations ALTER COLUMN tenant TYPE text USING 'free'",
                "0A000",
            ),
            (
                "ALTER TABLE conversations ALTER COLUMN created_at TYPE timestamptz USING now()",
                "0A000",
            ),
            (
                "ALTER TABLE conversations DROP COLUMN tenant CASCADE",
                "2BP01",
            ),
            ("ALTER TABLE conversations DROP COLUMN subject", "2BP01"),
            (
                "ALTER TABLE conversations RENAME COLUMN category TO kind",
                "2BP01",
            ),
            ("ALTER TABLE conversations DROP COLUMN deleted_at", "2BP01"),
            ("ALTER TABLE conversations DROP COLUMN body", "00000"),
            ("ALTER TABLE conversations ADD COLUMN note text", "00000"),
        ] {
            assert_eq!(sqlstate(sql), state, "{sql}");
        }
        assert_eq!(
            sqlstate("DELETE FROM conversations WHERE tenant = 't1'"),
            "55006",
            "the guard is still there"
        );
    }

    #[pg_test]
    fn the_guard_compares_scopes_as_the_purge_does() {
        Spi::run(
            "SELECT retention.define_category('c', '1 day');
             CREATE TABLE codes (id int PRIMARY KEY, tenant char(8), num int, created_at timestamptz NOT NULL)
                 PARTITION BY RANGE (id);
             CREATE TABLE codes_1 PARTITION OF codes FOR VALUES FROM (0) TO (100);
             SELECT retention.manage('codes', 'c', created_column => 'created_at',
                                     tenant_column => 'tenant', subject_column => 'num');
             INSERT INTO codes VALUES (1, 'acme', 7, now()), (2, 'other', 42, now()),
                                      (3, 'free', 8, now());
             SELECT retention.place_hold('padded', tenant => 'acme', notify => false);
             SELECT retention.place_hold('number', subject => '42', notify => false);",
        )
        .unwrap();
        // char(8)::text trims its padding, and an int's text is its digits: both rows are held,
        // also when deleted through the partition.
        assert_eq!(sqlstate("DELETE FROM codes WHERE id = 1"), "55006");
        assert_eq!(sqlstate("DELETE FROM codes_1 WHERE id = 2"), "55006");
        assert_eq!(sqlstate("DELETE FROM codes_1 WHERE id = 3"), "00000");
        assert_eq!(int("SELECT count(*) FROM codes"), 2);
    }

    #[pg_test]
    fn the_guard_is_armed_only_while_a_hold_can_cover_the_table() {
        seed(10);
        let guards = || {
            int(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'conversations'::regclass
                   AND tgname LIKE 'retention_hold_guard%' AND tgenabled = 'A'",
            )
        };
        assert_eq!(guards(), 0, "no hold: no trigger");
        let hold = int("SELECT retention.place_hold('x', subject => 's1', notify => false)");
        assert_eq!(guards(), 2, "armed, ENABLE ALWAYS");
        Spi::run(&format!("SELECT retention.release_hold({hold}, NULL)")).unwrap();
        assert_eq!(guards(), 0);
        int("SELECT retention.place_hold('y', tbl => 'conversations', notify => false)");
        assert_eq!(guards(), 2);
    }
}
