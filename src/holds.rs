//! Legal holds: `retention.place_hold`, `retention.release_hold`, `retention.review_hold`, the
//! predicate every removal path uses to leave held rows alone, and the lock that keeps a hold
//! committed during a purge batch from missing that batch.
//!
//! Locking: each purge batch takes the hold lock in shared mode before it reads the holds;
//! `place_hold` takes it exclusively before inserting. A hold therefore either commits before
//! the batch reads holds (and the batch's statement, with a fresh READ COMMITTED snapshot, sees
//! it) or waits until the batch has committed.
//!
//! The background worker never waits for these locks: it tries them, and ends its cycle when
//! one is taken (`yield_locks`). A transaction that placed a hold (or logged a deletion) and
//! then calls `retention.run()`, which waits for the worker's cycle, would otherwise deadlock
//! with a worker waiting for that transaction.

use crate::error::{required, RetentionError, SqlResult};
use crate::managed::Managed;
use crate::params::Params;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::cell::Cell;

thread_local! {
    /// Set only while release_hold() or review_hold() stamps a hold (see `stamp`).
    static STAMPING: Cell<bool> = const { Cell::new(false) };
    /// Set in the background worker: the extension's locks are tried, never waited for.
    static YIELDING: Cell<bool> = const { Cell::new(false) };
    /// Set when a tried lock was taken by another transaction; cleared by `lock_was_busy`.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// How often, and how far apart, the worker tries a busy lock before it gives way.
const YIELD_TRIES: u32 = 10;
const YIELD_PAUSE_US: i64 = 20_000;

/// From now on, this process tries the extension's transaction-level locks and fails
/// with `LockBusy` instead of waiting (the background worker).
pub fn yield_locks() {
    YIELDING.with(|y| y.set(true));
}

/// Whether a lock was found busy since the last call (or `forget_busy`).
pub fn lock_was_busy() -> bool {
    BUSY.with(|b| b.replace(false))
}

/// Forgets an earlier busy lock, before a new transaction starts.
pub fn forget_busy() {
    BUSY.with(|b| b.set(false));
}

/// Runs `f` with hold stamping allowed; the flag is cleared even when `f` raises (pgrx
/// unwinds Rust frames on Postgres errors).
fn stamp<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STAMPING.with(|s| s.set(false));
        }
    }
    STAMPING.with(|s| s.set(true));
    let _reset = Reset;
    f()
}

/// Whether this backend is inside release_hold() or review_hold(): the holds guard trigger
/// allows stamping a hold only then. Nothing in SQL can set it.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn hold_stamping() -> bool {
    STAMPING.with(|s| s.get())
}
use crate::regclass::RegClass;

/// Object id of every lock the extension takes ("RETN"); see [`tag`].
const LOCK_OBJECT: u32 = 0x5245_544e;

/// The locks of the extension.
#[derive(Clone, Copy)]
pub enum LockKey {
    /// Shared by purge batches, exclusive for `place_hold`.
    Holds = 1,
    /// Exclusive while appending to the deletion log's hash chain.
    LogChain = 2,
    /// Held by the one purger (worker cycle or `retention.run`) of a database.
    Purger = 3,
}

impl LockKey {
    fn describe(self) -> &'static str {
        match self {
            LockKey::Holds => "hold",
            LockKey::LogChain => "deletion-log",
            LockKey::Purger => "purger",
        }
    }
}

/// The lock tag of `key` in this database: an object lock on (pg_extension, "RETN", key).
/// Advisory locks can be taken by any role, with no grant at all, and a role squatting on the
/// extension's keys stopped the worker. No SQL command takes object locks of this class but
/// `ALTER`/`DROP EXTENSION` (owner only, on the extension's own oid and sub-id 0): only the
/// extension's code takes these. `pg_locks` shows them as locktype `object`, classid 3079.
fn tag(key: LockKey) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: the backend's database id, set once at connection.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: pg_sys::ExtensionRelationId.to_u32(),
        locktag_field3: LOCK_OBJECT,
        locktag_field4: key as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        // The user lock method, as advisory locks: a session lock (the worker's purger lock)
        // survives the abort of a transaction, where the default method would drop it.
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Acquires `key` (waiting unless `dont_wait`); true when held.
fn acquire(key: LockKey, exclusive: bool, session: bool, dont_wait: bool) -> bool {
    let mode = if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    };
    // SAFETY: LockAcquire on a well-formed tag; released at transaction end, or by
    // `session_unlock` for a session lock.
    let result = unsafe { pg_sys::LockAcquire(&tag(key), mode as i32, session, dont_wait) };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Takes a transaction-level lock, waiting for it (in the worker: trying it, see
/// `yield_locks`).
pub fn take_lock(key: LockKey, exclusive: bool) -> Result<(), RetentionError> {
    if YIELDING.with(|y| y.get()) {
        // A few short tries: a hold being placed or a log append commits within milliseconds.
        for attempt in 0..YIELD_TRIES {
            if acquire(key, exclusive, false, true) {
                return Ok(());
            }
            if attempt + 1 < YIELD_TRIES {
                unsafe { pg_sys::pg_usleep(YIELD_PAUSE_US) };
                pg_sys::check_for_interrupts!();
            }
        }
        BUSY.with(|b| b.set(true));
        return Err(RetentionError::LockBusy(key.describe()));
    }
    acquire(key, exclusive, false, false);
    Ok(())
}

/// Tries to take a transaction-level lock (exclusive); true when taken.
pub fn try_xact_lock(key: LockKey) -> Result<bool, RetentionError> {
    Ok(acquire(key, true, false, true))
}

/// Tries to take a session-level lock (exclusive); true when taken.
pub fn try_session_lock(key: LockKey) -> Result<bool, RetentionError> {
    Ok(acquire(key, true, true, true))
}

/// Whether a session waits for the purger lock this process holds as a session lock: a
/// `retention.run()` asking to purge while the worker cycles. The worker gives way to it.
pub fn purger_wanted() -> bool {
    // SAFETY: asked only by the worker, during a cycle, while it holds this session lock.
    unsafe { pg_sys::LockHasWaiters(&tag(LockKey::Purger), pg_sys::ExclusiveLock as i32, true) }
}

/// Releases a session-level lock.
pub fn session_unlock(key: LockKey) -> Result<(), RetentionError> {
    // SAFETY: releases the session lock `try_session_lock` took on the same tag.
    unsafe { pg_sys::LockRelease(&tag(key), pg_sys::ExclusiveLock as i32, true) };
    Ok(())
}

/// `retention.hold_lock()`: the hold lock, exclusive, for the trigger that guards holds
/// inserted directly (they wait for running purge batches, as `place_hold` does).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn hold_lock() -> SqlResult<()> {
    acquire(LockKey::Holds, true, false, false);
    Ok(Spi::connect(crate::guard::invalidate)?)
}

/// A hold that may cover rows of one table: active, or released and still in its grace.
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: i64,
    pub reason: String,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub category: Option<String>,
    /// Placed with `freeze => true`: its rows cannot be updated at all.
    pub frozen: bool,
    /// For a released hold: when the rows it kept become free (`pg_retention.hold_release_grace`
    /// after the release); None while the hold is active.
    pub grace_until: Option<TimestampWithTimeZone>,
}

/// Holds that keep rows from the extension's own paths (purge, customer deletion, erasure,
/// tagging, cascades): the active ones, and released ones within their grace. Read with a
/// fresh snapshot (a non-read-only SPI statement), so that a hold committed while the caller
/// waited for the hold lock is seen.
pub fn active_for(client: &mut SpiClient, table: &Managed) -> Result<Vec<Hold>, RetentionError> {
    let rows = client.update(holds_sql(Keeping::WithGrace)?, None, &[table.oid.into()])?;
    rows.map(hold_from_row).collect()
}

/// [`active_for`] for read-only callers (previews, dry runs): works on a standby, where a
/// non-read-only statement cannot run.
pub fn active_for_reading(
    client: &SpiClient,
    table: &Managed,
) -> Result<Vec<Hold>, RetentionError> {
    let rows = client.select(holds_sql(Keeping::WithGrace)?, None, &[table.oid.into()])?;
    rows.map(hold_from_row).collect()
}

/// The active holds scoped to `table` or to no table: what the guard enforces on every role.
/// A released hold's grace protects rows from the extension's own purge, not from their owner.
pub fn active_only(client: &mut SpiClient, table: &Managed) -> Result<Vec<Hold>, RetentionError> {
    let rows = client.update(holds_sql(Keeping::Active)?, None, &[table.oid.into()])?;
    rows.map(hold_from_row).collect()
}

/// Which holds a reader counts.
#[derive(Clone, Copy)]
enum Keeping {
    Active,
    WithGrace,
}

/// The holds query for `keeping`; under a schema older than the library (before ALTER
/// EXTENSION … UPDATE) there is no freeze and no grace.
fn holds_sql(keeping: Keeping) -> Result<&'static str, RetentionError> {
    if !crate::schema_version::at_least(crate::schema_version::HOLD_FREEZE)? {
        return Ok(OLD_SCHEMA_HOLDS);
    }
    Ok(match keeping {
        Keeping::Active => ACTIVE_HOLDS,
        Keeping::WithGrace => KEEPING_HOLDS,
    })
}

/// Active holds first: a row they cover is reported under them rather than a released one.
const KEEPING_HOLDS: &str = "SELECT id, tenant, subject, category, reason, frozen, grace_until
      FROM retention.holds
     WHERE (released_at IS NULL OR grace_until > pg_catalog.now())
       AND (tbl IS NULL OR tbl = $1::oid::regclass)
     ORDER BY released_at IS NOT NULL, id";
const ACTIVE_HOLDS: &str = "SELECT id, tenant, subject, category, reason, frozen, grace_until
      FROM retention.holds
     WHERE released_at IS NULL AND (tbl IS NULL OR tbl = $1::oid::regclass) ORDER BY id";
const OLD_SCHEMA_HOLDS: &str =
    "SELECT id, tenant, subject, category, reason, false, NULL::timestamptz
       FROM retention.holds
      WHERE released_at IS NULL AND (tbl IS NULL OR tbl = $1::oid::regclass) ORDER BY id";

fn hold_from_row(r: pgrx::spi::SpiHeapTupleData) -> Result<Hold, RetentionError> {
    Ok(Hold {
        id: r.get::<i64>(1)?.unwrap_or_default(),
        tenant: r.get::<String>(2)?,
        subject: r.get::<String>(3)?,
        category: r.get::<String>(4)?,
        reason: r.get::<String>(5)?.unwrap_or_default(),
        frozen: r.get::<bool>(6)?.unwrap_or(false),
        grace_until: r.get::<TimestampWithTimeZone>(7)?,
    })
}

/// SQL, over row alias `t`, that is true when `hold` covers the row and false otherwise (never
/// NULL, whatever the row's values); None when the hold can
/// cover no row of this table (or of `category`, when the caller works on one category only).
/// `category_sql` is the row's category expression, for holds scoped to a category.
pub fn covers_sql(
    hold: &Hold,
    table: &Managed,
    category: Option<&str>,
    category_sql: &str,
    params: &mut Params,
) -> Option<String> {
    let mut conditions = Vec::new();
    if let Some(tenant) = &hold.tenant {
        let column = table.tenant_column.as_ref()?;
        conditions.push(format!(
            "t.{}::text = {}",
            quote_identifier(column),
            params.bind(tenant.as_str())
        ));
    }
    if let Some(subject) = &hold.subject {
        let column = table.subject_column.as_ref()?;
        conditions.push(format!(
            "t.{}::text = {}",
            quote_identifier(column),
            params.bind(subject.as_str())
        ));
    }
    if let Some(held) = &hold.category {
        match category {
            Some(c) if c != held => return None,
            Some(_) => {}
            None => conditions.push(format!("{category_sql} = {}", params.bind(held.as_str()))),
        }
    }
    // `IS TRUE`: a hold covers a row only when its scope provably matches. A NULL tenant,
    // subject or category value matches no scope, and the term is false, never NULL: callers
    // negate it (`NOT covers`), and a NULL would drop the row from both the acting and the
    // held side of every statement.
    Some(if conditions.is_empty() {
        "true".into()
    } else {
        format!("(({}) IS TRUE)", conditions.join(" AND "))
    })
}

/// SQL that is true when any of `holds` covers row `t` (None when none can).
pub fn any_covers_sql(
    holds: &[Hold],
    table: &Managed,
    category: Option<&str>,
    category_sql: &str,
    params: &mut Params,
) -> Option<String> {
    let terms: Vec<String> = holds
        .iter()
        .filter_map(|h| covers_sql(h, table, category, category_sql, params))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(format!("({})", terms.join(" OR ")))
    }
}

/// Takes the shared hold lock and returns SQL over row alias `t` that is true when no active
/// hold covers the row (nor a parent-bound descendant): every path that alters rows outside a
/// purge batch adds it.
pub fn unheld_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<String, RetentionError> {
    Ok(match covered_sql(client, table, params)? {
        Some(covered) => format!("NOT {covered}"),
        None => "true".into(),
    })
}

/// Takes the shared hold lock and returns SQL over row alias `t` that is true when an active
/// hold covers the row or one of its parent-bound descendants (None: nothing can be held).
pub fn covered_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    take_lock(LockKey::Holds, false)?;
    let held = active_for(client, table)?;
    let category = table.category_sql(params);
    let mut terms: Vec<String> = any_covers_sql(&held, table, None, &category, params)
        .into_iter()
        .collect();
    terms.extend(crate::cascade::held_descendant_sql(client, table, params)?);
    Ok(if terms.is_empty() {
        None
    } else {
        Some(format!("({})", terms.join(" OR ")))
    })
}

/// Writes the notification row and sends `pg_notify('retention_hold', payload)`.
fn send_notification(
    client: &mut SpiClient,
    hold_id: i64,
    action: &str,
) -> Result<(), RetentionError> {
    client.update(
        "WITH payload AS (
             SELECT jsonb_build_object('action', $2::text, 'hold_id', h.id, 'reason', h.reason,
                        'tenant', h.tenant, 'subject', h.subject, 'table', h.tbl::text,
                        'category', h.category, 'at', now()) AS p
               FROM retention.holds h WHERE h.id = $1),
         saved AS (
             INSERT INTO retention.notifications (channel, hold_id, payload)
             SELECT 'retention_hold', $1, p FROM payload RETURNING payload)
         SELECT pg_catalog.pg_notify('retention_hold', payload::text) FROM saved",
        None,
        &[hold_id.into(), action.into()],
    )?;
    Ok(())
}

/// `retention.place_hold` as defined up to 0.3.0 (no `freeze`): the SQL definition a database
/// keeps until `ALTER EXTENSION pg_retention UPDATE` calls this symbol. No SQL is generated.
#[pg_extern(sql = false, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn place_hold(
    reason: Option<&str>,
    tenant: Option<&str>,
    subject: Option<&str>,
    tbl: Option<RegClass>,
    category: Option<&str>,
    notify: Option<bool>,
) -> SqlResult<i64> {
    place_hold_with_freeze(reason, tenant, subject, tbl, category, notify, Some(false))
}

#[pg_extern(name = "place_hold", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn place_hold_with_freeze(
    reason: Option<&str>,
    tenant: default!(Option<&str>, "NULL"),
    subject: default!(Option<&str>, "NULL"),
    tbl: default!(Option<RegClass>, "NULL"),
    category: default!(Option<&str>, "NULL"),
    notify: default!(Option<bool>, "true"),
    freeze: default!(Option<bool>, "false"),
) -> SqlResult<i64> {
    crate::runs::require_primary("retention.place_hold()")?;
    let reason = required(reason, "reason")?;
    if reason.trim().is_empty() {
        return Err(RetentionError::InvalidValue("a hold needs a reason".into()).into());
    }
    if tenant.is_none() && subject.is_none() && tbl.is_none() && category.is_none() {
        return Err(RetentionError::InvalidValue(
            "a hold needs at least one scope (tenant, subject, tbl or category); to hold a whole table, pass tbl".into(),
        )
        .into());
    }
    let notify_customer = required(notify, "notify")?;
    let freeze = required(freeze, "freeze")?;
    if freeze && !crate::schema_version::at_least(crate::schema_version::HOLD_FREEZE)? {
        crate::schema_version::require_current()?;
    }
    if tenant == Some("") || subject == Some("") {
        return Err(RetentionError::InvalidValue(
            "a hold's tenant and subject scopes must not be empty".into(),
        )
        .into());
    }
    Ok(crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let tbl_oid = tbl.map(|t| t.table(client)).transpose()?;
            if let Some(category) = category {
                crate::catalog::load(client, category)?;
            }
            if freeze {
                lock_frozen_tables(client, tenant, subject, tbl_oid, category)?;
            }
            // Wait for running purge batches; later batches see this hold.
            take_lock(LockKey::Holds, true)?;
            crate::guard::invalidate(client)?;
            let args: [DatumWithOid; 7] = [
                reason.into(),
                tenant.into(),
                subject.into(),
                tbl_oid.into(),
                category.into(),
                notify_customer.into(),
                crate::identity::caller_name().into(),
            ];
            // The frozen column is named only when set: the library also places holds under an
            // older schema, before ALTER EXTENSION … UPDATE.
            let (column, value) = if freeze {
                (", frozen", ", true")
            } else {
                ("", "")
            };
            let id = client
                .update(
                    &format!(
                        "INSERT INTO retention.holds
                         (reason, tenant, subject, tbl, category, notify, placed_by{column})
                     VALUES ($1, $2, $3, $4::oid::regclass, $5, $6, $7{value}) RETURNING id"
                    ),
                    None,
                    &args,
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or_default();
            crate::guard::sync(client)?;
            if notify_customer {
                send_notification(client, id, "placed")?;
            }
            Ok(id)
        })
    })?)
}

/// Before a frozen hold takes the hold lock: locks the managed tables it can cover against
/// writes (`SHARE ROW EXCLUSIVE`, the lock adding its trigger takes), in a fixed order. The
/// guard of an already guarded table takes the hold lock inside the application's write; adding
/// the freeze trigger after taking the hold lock would wait for that write while it waits for
/// the hold lock: a deadlock. Taking the table first, as the application does, avoids it.
fn lock_frozen_tables(
    client: &mut SpiClient,
    tenant: Option<&str>,
    subject: Option<&str>,
    tbl: Option<pg_sys::Oid>,
    category: Option<&str>,
) -> Result<(), RetentionError> {
    let tables: Vec<String> = client
        .select(
            "SELECT m.tbl::text FROM retention.managed_tables m
              WHERE ($1::oid IS NULL OR m.tbl = $1::oid::regclass)
                AND ($2::text IS NULL OR m.tenant_column IS NOT NULL)
                AND ($3::text IS NULL OR m.subject_column IS NOT NULL)
                AND ($4::text IS NULL OR m.category = $4 OR m.category_column IS NOT NULL)
              ORDER BY m.tbl::oid",
            None,
            &[tbl.into(), tenant.into(), subject.into(), category.into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    for table in tables {
        client.update(
            &format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
            None,
            &[],
        )?;
    }
    Ok(())
}

/// Locks a hold's row and checks it is active.
fn lock_active(client: &mut SpiClient, hold_id: i64) -> Result<bool, RetentionError> {
    let rows = client.update(
        "SELECT released_at IS NOT NULL, notify FROM retention.holds WHERE id = $1 FOR UPDATE",
        None,
        &[hold_id.into()],
    )?;
    let row = rows
        .into_iter()
        .next()
        .ok_or(RetentionError::UnknownHold(hold_id))?;
    if row.get::<bool>(1)?.unwrap_or(false) {
        return Err(RetentionError::HoldReleased(hold_id));
    }
    Ok(row.get::<bool>(2)?.unwrap_or(false))
}

/// Releases a hold and records how many rows it frees (`holds.rows_freed`): rows it covered
/// that no other hold keeps. They stay out of the extension's purges and deletions for
/// `pg_retention.hold_release_grace` more (stamped as `grace_until`), so that a release never
/// unleashes an immediate purge of everything the hold kept.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_hold(hold_id: Option<i64>, note: Option<&str>) -> SqlResult<()> {
    crate::runs::require_primary("retention.release_hold()")?;
    let hold_id = required(hold_id, "hold_id")?;
    Ok(crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let notify_customer = lock_active(client, hold_id)?;
            let grace = release_grace(client)?;
            let freed = freed_by(client, hold_id)?;
            let caller = crate::identity::caller_name();
            let with_grace = crate::schema_version::at_least(crate::schema_version::HOLD_FREEZE)?;
            stamp(|| {
                if with_grace {
                    client.update(
                        "UPDATE retention.holds SET released_at = now(), released_by = $3,
                            release_note = $2, rows_freed = $4,
                            grace_until = now() + $5
                          WHERE id = $1",
                        None,
                        &[
                            hold_id.into(),
                            note.into(),
                            caller.into(),
                            freed.into(),
                            grace.into(),
                        ],
                    )
                } else {
                    client.update(
                        "UPDATE retention.holds SET released_at = now(), released_by = $3,
                            release_note = $2 WHERE id = $1",
                        None,
                        &[hold_id.into(), note.into(), caller.into()],
                    )
                }
            })?;
            crate::guard::invalidate(client)?;
            crate::guard::sync(client)?;
            if notify_customer {
                send_notification(client, hold_id, "released")?;
            }
            Ok(())
        })
    })?)
}

/// `pg_retention.hold_release_grace` as an interval; 22023 unless it is one, and not negative.
fn release_grace(client: &SpiClient) -> Result<Interval, RetentionError> {
    let text = crate::gucs::hold_release_grace();
    let bad = || {
        RetentionError::InvalidValue(format!(
            "pg_retention.hold_release_grace must be an interval of 0 or more, not \"{text}\""
        ))
    };
    let parsed = crate::subxact::isolate(|| -> Result<Option<(Interval, bool)>, RetentionError> {
        let row = client
            .select(
                "SELECT $1::interval, $1::interval < interval '0'",
                Some(1),
                &[text.as_str().into()],
            )?
            .first();
        Ok(row.get::<Interval>(1)?.zip(row.get::<bool>(2)?))
    });
    match parsed {
        Ok(Ok(Some((grace, false)))) => Ok(grace),
        _ => Err(bad()),
    }
}

/// Rows hold `hold_id` covers that no other hold keeps: what its release frees. Counted in
/// each managed table it can cover, as the table's owner; a table that cannot be read (its
/// manager lost the rights) is left out of the count, not allowed to stop the release.
fn freed_by(client: &mut SpiClient, hold_id: i64) -> Result<i64, RetentionError> {
    let row = client
        .select(
            "SELECT id, tenant, subject, category, reason, false, NULL::timestamptz, tbl::oid
               FROM retention.holds WHERE id = $1",
            Some(1),
            &[hold_id.into()],
        )?
        .first();
    let scope = row.get::<pg_sys::Oid>(8)?;
    let hold = Hold {
        id: hold_id,
        reason: row.get::<String>(5)?.unwrap_or_default(),
        tenant: row.get::<String>(2)?,
        subject: row.get::<String>(3)?,
        category: row.get::<String>(4)?,
        frozen: false,
        grace_until: None,
    };
    let mut freed = 0;
    for table in Managed::load_all(client)? {
        if scope.is_some_and(|oid| oid != table.oid) {
            continue;
        }
        let others: Vec<Hold> = active_for(client, &table)?
            .into_iter()
            .filter(|h| h.id != hold_id)
            .collect();
        let mut params = Params::default();
        let category = table.category_sql(&mut params);
        let Some(covers) = covers_sql(&hold, &table, None, &category, &mut params) else {
            continue;
        };
        let kept_otherwise = any_covers_sql(&others, &table, None, &category, &mut params)
            .map(|other| format!(" AND NOT {other}"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT count(*) FROM {} AS t WHERE {covers}{kept_otherwise}",
            table.display_name
        );
        let counted = crate::subxact::isolate(|| -> Result<i64, RetentionError> {
            Ok(crate::owner::select(client, &table, &sql, params.args())?
                .first()
                .get_one::<i64>()?
                .unwrap_or(0))
        });
        if let Ok(Ok(rows)) = counted {
            freed += rows;
        }
    }
    Ok(freed)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn review_hold(hold_id: Option<i64>, note: Option<&str>) -> SqlResult<()> {
    crate::runs::require_primary("retention.review_hold()")?;
    let hold_id = required(hold_id, "hold_id")?;
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            lock_active(client, hold_id)?;
            stamp(|| {
                client.update(
                    "UPDATE retention.holds SET reviewed_at = now(), reviewed_by = $3,
                        review_note = $2 WHERE id = $1",
                    None,
                    &[
                        hold_id.into(),
                        note.into(),
                        crate::identity::caller_name().into(),
                    ],
                )
            })?;
            Ok(())
        })
    })?;
    Ok(())
}

/// Whether this backend is a hot standby (purges refuse to run there).
pub fn in_recovery() -> bool {
    unsafe { pg_sys::RecoveryInProgress() }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn held_rows_survive_every_purge_path() {
        seed(800);
        let hold = int("SELECT retention.place_hold('litigation', tenant => 't1')");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant = 't1' AND created_at <= now() - interval '1 year'"), 145);
        assert_eq!(int("SELECT count(*) FROM conversations WHERE tenant <> 't1' AND created_at <= now() - interval '1 year'"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE tenant = 't1'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NOT NULL"),
            1
        );
        assert_eq!(
            int(&format!(
                "SELECT rows FROM retention.preview() WHERE held_by = {hold}"
            )),
            145
        );
        // With no grace, a release frees the rows at once (see release_grace_* for the default).
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
            0
        );
    }

    #[pg_test]
    fn release_grace_keeps_rows_from_the_extension_after_a_release() {
        seed(800);
        let due_t1 = int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                            AND created_at <= now() - interval '1 year'");
        let hold =
            int("SELECT retention.place_hold('litigation', tenant => 't1', notify => false)");
        // The release frees every t1 row (no other hold keeps them) and says so.
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        assert_eq!(
            int(&format!(
                "SELECT rows_freed FROM retention.holds WHERE id = {hold}"
            )),
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'")
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.holds WHERE id = {hold}
                                   AND rows_freed = 267
                                   AND grace_until = released_at + interval '7 days'"
            )),
            1
        );
        // Within the grace, the purge and customer deletions leave the rows alone, and
        // preview shows them under the released hold until its horizon reaches the grace's end.
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                          AND created_at <= now() - interval '1 year'"),
            due_t1
        );
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {hold}"
            )),
            due_t1
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.preview('6 days') WHERE held_by = {hold}"
            )),
            1
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.preview('8 days') WHERE held_by = {hold}"
            )),
            0
        );
        assert_eq!(
            int("SELECT retention.request_delete('conversations', ARRAY[1])"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 1);
        // The hold no longer binds the application: its guard is gone.
        assert_eq!(sqlstate("DELETE FROM conversations WHERE id = 4"), "00000");
        // A second hold with a partial overlap frees only what it alone kept.
        let both =
            int("SELECT retention.place_hold('one person', subject => 's1', notify => false)");
        let other =
            int("SELECT retention.place_hold('one customer', tenant => 't0', notify => false)");
        Spi::run(&format!("SELECT retention.release_hold({both}, NULL)")).unwrap();
        assert_eq!(
            int(&format!("SELECT rows_freed FROM retention.holds WHERE id = {both}")),
            int("SELECT count(*) FROM conversations WHERE subject = 's1' AND tenant NOT IN ('t0', 't1')")
        );
        // The grace is an interval of 0 or more; with none, a release frees at once.
        for bad in ["soon", "-1 day"] {
            Spi::run(&format!(
                "SET LOCAL pg_retention.hold_release_grace = '{bad}'"
            ))
            .unwrap();
            assert_eq!(
                sqlstate(&format!("SELECT retention.release_hold({other}, NULL)")),
                "22023"
            );
        }
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({other}, NULL)")).unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        // t0's rows go, but for those of subject s1, which the released `both` still keeps.
        assert_eq!(
            int(
                "SELECT count(*) FROM conversations WHERE tenant = 't0' AND subject <> 's1'
                   AND created_at <= now() - interval '1 year'"
            ),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                          AND created_at <= now() - interval '1 year'"),
            due_t1
        );
    }

    #[pg_test]
    fn holds_match_all_their_scopes() {
        seed(800);
        Spi::run("SELECT retention.place_hold('one person at one customer', tenant => 't1', subject => 's2', notify => false)").unwrap();
        Spi::run("SELECT retention.place_hold('the whole table', tbl => 'conversations', category => 'audit_logs', notify => false)").unwrap();
        Spi::run("UPDATE conversations SET category = 'audit_logs' WHERE id = 800").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        // ids ≡ 1 (mod 3) and ≡ 2 (mod 5), older than a year, are held; id 800 is under the category hold.
        assert_eq!(int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'"),
                   int("SELECT count(*) FROM generate_series(366, 800) i WHERE now() - i * interval '1 day' <= now() - interval '1 year' AND i % 3 = 1 AND i % 5 = 2") + 1);
    }

    #[pg_test]
    fn hold_lifecycle_is_stamped_and_notified() {
        let hold = int("SELECT retention.place_hold('subpoena', tenant => 'acme')");
        assert_eq!(int("SELECT count(*) FROM retention.notifications WHERE payload->>'action' = 'placed' AND (payload->>'hold_id')::bigint = (SELECT max(id) FROM retention.holds)"), 1);
        Spi::run(&format!(
            "SELECT retention.review_hold({hold}, 'still needed')"
        ))
        .unwrap();
        Spi::run(&format!(
            "SELECT retention.release_hold({hold}, 'case closed')"
        ))
        .unwrap();
        assert_eq!(int(&format!("SELECT count(*) FROM retention.holds WHERE id = {hold} AND released_by = current_user AND release_note = 'case closed' AND reviewed_at IS NOT NULL")), 1);
        assert_eq!(int("SELECT count(*) FROM retention.notifications"), 2);
        let quiet =
            int("SELECT retention.place_hold('gag order', tenant => 'acme', notify => false)");
        Spi::run(&format!("SELECT retention.release_hold({quiet}, NULL)")).unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.notifications"), 2);
    }

    #[pg_test]
    fn holds_not_reviewed_in_90_days_show_in_status() {
        // A hold recorded directly, placed 100 days ago (no table is managed).
        let old = int("INSERT INTO retention.holds (reason, tenant, placed_at)
                       VALUES ('old matter', 'acme', now() - interval '100 days') RETURNING id");
        let fresh = int("SELECT retention.place_hold('new matter', tenant => 'acme')");
        assert_eq!(
            int("SELECT count(*) FROM retention.holds WHERE NOT notify"),
            1,
            "a direct insert does not notify"
        );
        let row = "FROM retention.status WHERE table_name IS NULL";
        assert_eq!(int(&format!("SELECT active_holds {row}")), 2);
        assert_eq!(int(&format!("SELECT holds_due_for_review {row}")), 1);
        assert_eq!(
            int(&format!("SELECT holds_due_for_review_ids[1] {row}")),
            old
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.holds_due_for_review"),
            1
        );
        Spi::run(&format!(
            "SELECT retention.review_hold({old}, 'still needed')"
        ))
        .unwrap();
        assert_eq!(int(&format!("SELECT holds_due_for_review {row}")), 0);
        assert!(fresh > old);
    }

    #[pg_test]
    fn hold_errors_and_guards() {
        assert_eq!(
            sqlstate("SELECT retention.place_hold('everything')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('', tenant => 'a')"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold(NULL, tenant => 'a')"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('x', category => 'nope')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.release_hold(424242, 'n')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.place_hold('x', tenant => 'a', freeze => NULL)"),
            "22004"
        );
        let hold = int("SELECT retention.place_hold('case', tenant => 'acme', notify => false)");
        assert_eq!(sqlstate(&format!("UPDATE retention.holds SET released_at = now() - interval '2 years', released_by = 'bob' WHERE id = {hold}")), "42501");
        assert_eq!(sqlstate(&format!("UPDATE retention.holds SET reviewed_at = now() + interval '1 year' WHERE id = {hold}")), "42501");
        assert_eq!(
            sqlstate(&format!("DELETE FROM retention.holds WHERE id = {hold}")),
            "42501"
        );
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.release_hold({hold}, 'again')")),
            "55000"
        );
        assert_eq!(
            sqlstate(&format!("SELECT retention.review_hold({hold}, 'late')")),
            "55000"
        );
        assert_eq!(int("SELECT count(*) FROM retention.holds"), 1);
    }

    /// Rows with a NULL tenant or subject, a table `t` managed with both columns (issue 19).
    fn null_scope_table() {
        Spi::run(
            "SELECT retention.define_category('c', '1 day');
             CREATE TABLE t (id bigint PRIMARY KEY, tenant text, author text,
                             created_at timestamptz NOT NULL);
             SELECT retention.manage('t', 'c', created_column => 'created_at',
                                     tenant_column => 'tenant', subject_column => 'author');
             INSERT INTO t VALUES (1, NULL, 'bob', now() - interval '10 days'),
                                  (2, NULL, 'bob', now()),
                                  (3, 'b', 'bob', now() - interval '10 days'),
                                  (4, 'b', NULL, now() - interval '10 days'),
                                  (5, NULL, 'carol', now()),
                                  (6, 'b', NULL, now());",
        )
        .unwrap();
    }

    #[pg_test]
    fn null_scope_rows_go_while_unrelated_holds_are_active() {
        null_scope_table();
        Spi::run("SELECT retention.place_hold('unrelated tenant', tenant => 'zzz', notify => false);
                  SELECT retention.place_hold('unrelated person', subject => 'nobody', notify => false)").unwrap();
        // preview, the dry run and run() agree: rows 1, 3 and 4 are due and nothing holds them.
        assert_eq!(
            int("SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by IS NULL"),
            3
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NOT NULL"),
            0
        );
        assert_eq!(
            int("SELECT hard_deleted FROM retention.run(dry_run => true)"),
            3
        );
        assert_eq!(int("SELECT hard_deleted FROM retention.run()"), 3);
        assert_eq!(int("SELECT count(*) FROM t WHERE id IN (1, 3, 4)"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'expired'"),
            3
        );
        // A customer deletion of a NULL-tenant row acts on it (it is not lost, nor queued).
        assert_eq!(int("SELECT retention.request_delete('t', ARRAY[2])"), 1);
        assert_eq!(int("SELECT count(*) FROM t WHERE id = 2"), 0);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_queue"), 0);
        // An erasure of a subject whose row has a NULL tenant completes with the row gone.
        let request = int("SELECT retention.request_erasure('carol')");
        Spi::run(&format!("SELECT retention.verify_erasure({request})")).unwrap();
        assert_eq!(int("SELECT count(*) FROM t WHERE author = 'carol'"), 0);
        assert_eq!(int(&format!("SELECT count(*) FROM retention.erasure_records WHERE id = {request} AND status = 'completed' AND rows_erased = 1 AND rows_held = 0")), 1);
        // Exactly one log entry per removed row.
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 5);
        assert_eq!(
            int("SELECT count(DISTINCT row_key) FROM retention.deletion_log"),
            5
        );
    }

    #[pg_test]
    fn null_scope_rows_stay_under_holds_that_cover_them() {
        null_scope_table();
        let on_table = int("SELECT retention.place_hold('the table', tbl => 't', notify => false)");
        assert_eq!(
            int("SELECT count(*) FROM retention.preview() WHERE held_by IS NULL"),
            0
        );
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {on_table}"
            )),
            3
        );
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT retention.request_delete('t', ARRAY[2, 5])"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_queue WHERE done_at IS NULL"),
            2
        );
        Spi::run(&format!("SELECT retention.release_hold({on_table}, NULL)")).unwrap();
        let on_category =
            int("SELECT retention.place_hold('the category', category => 'c', notify => false)");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(int("SELECT count(*) FROM t"), 6);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 0);
        assert_eq!(
            int(&format!(
                "SELECT sum(rows)::bigint FROM retention.preview() WHERE held_by = {on_category}"
            )),
            3
        );
    }

    #[pg_test]
    fn a_null_tenant_child_does_not_keep_its_parent() {
        Spi::run(
            "SELECT retention.define_category('projects', '1 day');
             SELECT retention.define_category('history', '0', clock => 'parent');
             CREATE TABLE projects (id int PRIMARY KEY, tenant text, created_at timestamptz NOT NULL);
             CREATE TABLE snapshots (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects,
                                     tenant text);
             SELECT retention.manage('projects', 'projects', created_column => 'created_at',
                                     tenant_column => 'tenant');
             SELECT retention.manage('snapshots', 'history', tenant_column => 'tenant');
             INSERT INTO projects VALUES (1, 'a', now() - interval '2 days'), (2, 'a', now());
             INSERT INTO snapshots VALUES (10, 1, NULL), (11, 1, 'a'), (20, 2, NULL);
             SELECT retention.place_hold('unrelated', tenant => 'zzz', notify => false);",
        )
        .unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.run() WHERE error IS NOT NULL"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM projects"), 1);
        assert_eq!(int("SELECT count(*) FROM snapshots"), 1);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'parent_deleted'"),
            2
        );
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[2])"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM snapshots"), 0);
    }
}
