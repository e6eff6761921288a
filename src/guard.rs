//! The hold guard: triggers `manage()` installs on every managed table so that retention wins
//! over deletion whoever deletes. They exist (`ENABLE ALWAYS`) exactly while an active hold can
//! cover the table ([`sync`]): a table no hold touches carries no trigger and pays nothing. While an active hold covers a row, a `DELETE` of it, an
//! `UPDATE` that moves it out of the hold's scope (its tenant, subject or category column) or
//! changes its clock column, and a `TRUNCATE` of its table are refused with `55006`, naming
//! the hold; the triggers are `ENABLE ALWAYS`, so `session_replication_role = replica` does
//! not skip them. A content `UPDATE` of a held row is allowed: a hold preserves the record,
//! it does not freeze the application.
//!
//! Cost: the first row a transaction touches in a managed table takes the hold lock (shared,
//! as a purge batch does: a hold placed later waits for this transaction) and processes pending
//! cache invalidations. What the guard knows of a table (its scope columns and the holds that
//! can cover it) is read once and kept across transactions until a hold, a managed table or a
//! category changes (a relcache invalidation of retention.holds, sent by the functions that
//! change them). A table no active hold can cover costs a hash lookup per row.

use crate::error::RetentionError;
use crate::holds::{self, Hold, LockKey};
use crate::managed::Managed;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;

/// What the guard knows of one table in the current transaction.
struct Guarded {
    display_name: String,
    default_category: String,
    holds: Vec<Hold>,
    tenant: Option<i32>,
    subject: Option<i32>,
    category: Option<i32>,
    clocks: Vec<i32>,
}

thread_local! {
    /// What the guard read of each managed table, kept across transactions until a change of
    /// holds, managed tables or categories invalidates it (see [`invalidated`]).
    static GUARDED: RefCell<HashMap<pg_sys::Oid, Rc<Guarded>>> = RefCell::new(HashMap::new());
    /// The relations whose invalidation clears [`GUARDED`]: retention.holds,
    /// retention.managed_tables and retention.category_definitions.
    static WATCHED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// The local transaction that last took the hold lock in the guard.
    static LOCKED_IN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Registers the cache's invalidation callback (from `_PG_init`).
pub fn init() {
    // SAFETY: registers a static callback, as extensions do in _PG_init.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(invalidated), pg_sys::Datum::from(0)) };
}

/// Relcache invalidation: forgets the cache when a watched relation (or every relation) is
/// invalidated. Runs inside invalidation processing: no catalog access here.
#[pg_guard]
unsafe extern "C-unwind" fn invalidated(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || WATCHED.with(|w| w.borrow().contains(&relid)) {
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

/// The guard's view of table `oid`. Once per transaction the guard takes the hold lock
/// (shared: a hold placed later waits for this transaction) and processes pending
/// invalidations, so a hold committed before is seen; the view itself is read once and kept.
fn guarded(oid: pg_sys::Oid, tupdesc: pg_sys::TupleDesc) -> Result<Rc<Guarded>, RetentionError> {
    // SAFETY: MyProc is this backend's PGPROC.
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    if LOCKED_IN.with(|l| l.replace(lxid)) != lxid {
        holds::take_lock(LockKey::Holds, false)?;
        // SAFETY: processes the shared invalidation queue, as a lock acquisition does.
        unsafe { pg_sys::AcceptInvalidationMessages() };
    }
    if let Some(found) = GUARDED.with(|g| g.borrow().get(&oid).cloned()) {
        return Ok(found);
    }
    // The catalog and the holds are read as the extension (the deleting role, or the table's
    // owner inside a purge, has no rights on them); the row values are read as the caller.
    let loaded = crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Guarded, RetentionError> {
            watch(client)?;
            let table = Managed::load(client, oid)?;
            let holds = holds::active_for(client, &table)?
                .into_iter()
                .filter(|h| can_cover(h, &table))
                .collect();
            let attnum = |column: &Option<String>| column.as_deref().map(|c| number(tupdesc, c));
            Ok(Guarded {
                holds,
                tenant: attnum(&table.tenant_column),
                subject: attnum(&table.subject_column),
                category: attnum(&table.category_column),
                clocks: [&table.created_column, &table.activity_column]
                    .into_iter()
                    .filter_map(attnum)
                    .collect(),
                default_category: table.category,
                display_name: table.display_name,
            })
        })
    })?;
    let loaded = Rc::new(loaded);
    GUARDED.with(|g| g.borrow_mut().insert(oid, loaded.clone()));
    Ok(loaded)
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

/// The attribute number of `column` in `tupdesc`.
fn number(tupdesc: pg_sys::TupleDesc, column: &str) -> i32 {
    let name = CString::new(column).unwrap_or_default();
    // SAFETY: a valid tuple descriptor and a NUL-terminated name.
    unsafe { pg_sys::SPI_fnumber(tupdesc, name.as_ptr()) }
}

/// The text form of attribute `attnum` of `tuple` (None for NULL).
fn text(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc, attnum: i32) -> Option<String> {
    // SAFETY: SPI_getvalue palloc's the output function's text, or returns NULL for NULL.
    unsafe {
        let value = pg_sys::SPI_getvalue(tuple, tupdesc, attnum);
        (!value.is_null()).then(|| {
            std::ffi::CStr::from_ptr(value)
                .to_string_lossy()
                .into_owned()
        })
    }
}

impl Guarded {
    /// The first hold covering row `tuple` (the predicate of holds.rs, over the row's values).
    fn holding(&self, tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> Option<&Hold> {
        let value = |attnum: Option<i32>| attnum.and_then(|a| text(tuple, tupdesc, a));
        let (tenant, subject) = (value(self.tenant), value(self.subject));
        let category = value(self.category).unwrap_or_else(|| self.default_category.clone());
        self.holds.iter().find(|h| {
            h.tenant.as_ref().is_none_or(|t| tenant.as_ref() == Some(t))
                && h.subject
                    .as_ref()
                    .is_none_or(|s| subject.as_ref() == Some(s))
                && h.category.as_ref().is_none_or(|c| *c == category)
        })
    }

    /// Whether an update changes a column a hold's scope or the policy's clock reads.
    fn moves(
        &self,
        old: pg_sys::HeapTuple,
        new: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
    ) -> bool {
        [self.tenant, self.subject, self.category]
            .into_iter()
            .flatten()
            .chain(self.clocks.iter().copied())
            .any(|a| text(old, tupdesc, a) != text(new, tupdesc, a))
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

/// `retention.hold_guard()`: BEFORE DELETE OR UPDATE, for each row, on every managed table.
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
        Err(e) => {
            pgrx::ereport!(PgLogLevel::ERROR, e.sqlstate(), e.to_string());
            unreachable!()
        }
    };
    if guarded.holds.is_empty() {
        return Ok(pass(trigger));
    }
    let old = data.tg_trigtuple;
    if let Some(hold) = guarded.holding(old, tupdesc) {
        if trigger.new().is_none() {
            refuse("deleting", &guarded.display_name, hold);
        }
        if guarded.moves(old, data.tg_newtuple, tupdesc) {
            refuse(
                "moving out of its hold's scope (or re-timing)",
                &guarded.display_name,
                hold,
            );
        }
    }
    Ok(pass(trigger))
}

/// The tuple a BEFORE row trigger returns to let the change proceed.
fn pass<'a>(trigger: &'a PgTrigger<'a>) -> Option<PgHeapTuple<'a, AllocatedByPostgres>> {
    trigger.new().or_else(|| trigger.old())
}

/// `retention.hold_guard_truncate()`: BEFORE TRUNCATE on every managed table; refuses while a
/// row of the table is held.
#[pg_trigger]
fn hold_guard_truncate<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, RetentionError> {
    let data = trigger.trigger_data();
    // SAFETY: the trigger manager's relation, valid during this call.
    let oid = unsafe { (*data.tg_relation).rd_id };
    let held = crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<Option<String>, RetentionError> {
            let Ok(table) = Managed::load(client, oid) else {
                return Ok(None);
            };
            let mut params = crate::params::Params::default();
            let Some(covered) = holds::covered_sql(client, &table, &mut params)? else {
                return Ok(None);
            };
            let found = crate::owner::select(
                client,
                &table,
                &format!(
                    "SELECT 1 FROM {} AS t WHERE {covered} LIMIT 1",
                    table.display_name
                ),
                params.args(),
            )?;
            Ok((!found.is_empty()).then(|| table.display_name.clone()))
        })
    });
    match held {
        Ok(None) => Ok(None),
        Ok(Some(table)) => {
            pgrx::ereport!(
                PgLogLevel::ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!("table {table} has rows under legal hold: it cannot be truncated"),
                "Legal releases the hold with retention.release_hold()."
            );
            unreachable!()
        }
        Err(e) => {
            pgrx::ereport!(PgLogLevel::ERROR, e.sqlstate(), e.to_string());
            unreachable!()
        }
    }
}

/// Whether the guard's functions exist: under a schema older than the library (before
/// ALTER EXTENSION … UPDATE) they do not, and the update installs the guard everywhere.
fn ready(client: &pgrx::spi::SpiClient) -> Result<bool, RetentionError> {
    Ok(client
        .select(
            "SELECT to_regprocedure('retention.hold_guard()') IS NOT NULL",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// Installs the guard on a newly managed table when an active hold can already cover it (run
/// by `manage()`, as the extension's owner).
pub fn install(client: &mut pgrx::spi::SpiClient) -> Result<(), RetentionError> {
    sync(client)
}

/// Puts the guard's triggers on exactly the managed tables an active hold can cover, as
/// `ENABLE ALWAYS` triggers, and drops them elsewhere. Disabled BEFORE ROW triggers are not
/// free (PostgreSQL still fetches and locks each old row for them), so a table no hold can
/// cover carries none. Run, as the extension's owner, by every function that changes holds or
/// managed tables; a table is altered (a short ShareRowExclusiveLock, which waits for
/// transactions writing to it) only when its state changes.
pub fn sync(client: &mut pgrx::spi::SpiClient) -> Result<(), RetentionError> {
    if !ready(client)? {
        return Ok(());
    }
    let changes: Vec<(String, bool)> = client
        .select(
            "SELECT m.tbl::text, c.id IS NOT NULL
               FROM retention.managed_tables m
               CROSS JOIN LATERAL retention.covering_hold(m.tbl) c
              WHERE (c.id IS NOT NULL) <> EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                                   WHERE t.tgrelid = m.tbl AND t.tgname = $1)
              ORDER BY m.tbl",
            None,
            &[TRIGGER.into()],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<bool>(2)?.unwrap_or(false),
            ))
        })
        .collect::<Result<_, RetentionError>>()?;
    for (table, armed) in changes {
        if armed {
            arm(client, &table)?;
        } else {
            remove(client, &table)?;
        }
    }
    Ok(())
}

/// Creates the guard's two triggers on `table`, `ENABLE ALWAYS`.
fn arm(client: &mut pgrx::spi::SpiClient, table: &str) -> Result<(), RetentionError> {
    let name = quote_identifier(TRIGGER);
    let truncate = quote_identifier(TRUNCATE_TRIGGER);
    for sql in [
        format!(
            "CREATE TRIGGER {name} BEFORE DELETE OR UPDATE ON {table}
                 FOR EACH ROW EXECUTE FUNCTION retention.hold_guard()"
        ),
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"),
        format!(
            "CREATE TRIGGER {truncate} BEFORE TRUNCATE ON {table}
                 FOR EACH STATEMENT EXECUTE FUNCTION retention.hold_guard_truncate()"
        ),
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {truncate}"),
    ] {
        client.update(&sql, None, &[])?;
    }
    Ok(())
}

/// Removes the guard's triggers from `table`, where present (run by `unmanage()` and `sync`).
pub fn remove(client: &mut pgrx::spi::SpiClient, table: &str) -> Result<(), RetentionError> {
    let present: Vec<String> = client
        .select(
            "SELECT tgname::text FROM pg_catalog.pg_trigger
              WHERE tgrelid = $1::regclass AND tgname = ANY($2)",
            None,
            &[table.into(), vec![TRIGGER, TRUNCATE_TRIGGER].into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    for trigger in present {
        client.update(
            &format!("DROP TRIGGER {} ON {table}", quote_identifier(&trigger)),
            None,
            &[],
        )?;
    }
    Ok(())
}

/// The guard's trigger names on a managed table.
pub const TRIGGER: &str = "retention_hold_guard";
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
