//! The deletion log's writer: one entry per row acted on, hash-chained, written in the same
//! transaction as the change it records.
//!
//! Each entry stores `hash = sha256(prev_hash || canonical(entry))`, where `canonical` is the
//! concatenation of the fields below, each written as `<byte length>:<utf8 bytes>` or `-` for
//! NULL: id, logged_at (microseconds since the Unix epoch), action, table_name, row_key (jsonb
//! text), tenant, category, reason, retain_for (`<months>,<days>,<microseconds>`), run_id, actor,
//! and, only when it is set, approval_id.
//! `retention.log_canonical()` in sql/finalize.sql is the same function in SQL; the README
//! documents it for auditors.

use crate::engine::vocabulary::LogAction;
use crate::error::RetentionError;
use crate::pg::direct_insert::{self, Value};
use crate::pg::kept;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::result_rows::ResultRow;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgOid;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::ffi::CString;

thread_local! {
    /// Set only while `trim` removes entries past the log's own retention.
    pub static TRIMMING: Cell<bool> = const { Cell::new(false) };
}

/// The Unix epoch in PostgreSQL's timestamps (microseconds since 2000-01-01), negated.
const UNIX_EPOCH_IN_POSTGRES_US: i64 = 946_684_800_000_000;

/// Log entries one trim removes at most.
const TRIM_BATCH: i64 = 10_000;

/// Applies the log's own retention (category `deletion_log`): removes the oldest entries, a
/// prefix of the chain, older than the period, and records the removal once in
/// `retention.log_anchor` with the id and hash of the last entry removed, where verification
/// of the rest of the chain starts. Entries under an active hold stay, and so does everything
/// after the first of them (the removed part is always a prefix). At most `TRIM_BATCH` entries
/// go per call. Returns the number of entries removed.
pub fn trim(client: &mut SpiClient) -> Result<i64, RetentionError> {
    // The hold lock first, as every purge batch takes it (then holds are read fresh).
    take_lock(LockKey::Holds, false)?;
    take_lock(LockKey::LogChain, true)?;
    let Some(prefix) = trimmable(client)? else {
        return Ok(0);
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            TRIMMING.with(|t| t.set(false));
        }
    }
    TRIMMING.with(|t| t.set(true));
    let _reset = Reset;
    let removed = client
        .update(
            "WITH gone AS (DELETE FROM retention.deletion_log WHERE id <= $1
                            RETURNING id, hash, logged_at)
             INSERT INTO retention.log_anchor
                 (last_id, last_hash, trimmed_entries, trimmed_before, trimmed_by)
             SELECT max(id), (array_agg(hash ORDER BY id DESC))[1], count(*),
                    CASE WHEN $3 THEN max(logged_at) ELSE $2 END, $4
               FROM gone HAVING count(*) > 0
             RETURNING trimmed_entries",
            None,
            &[
                prefix.last.into(),
                prefix.before.into(),
                prefix.cut_short.into(),
                crate::pg::identity::caller_name().into(),
            ],
        )?
        .next()
        .map(|row| row.get::<i64>(1))
        .transpose()?
        .flatten()
        .unwrap_or(0);
    Ok(removed)
}

/// The prefix of the chain one trim removes.
struct Prefix {
    /// Its last entry's id.
    last: i64,
    /// The end of the log's period: entries logged before it are past their retention.
    before: TimestampWithTimeZone,
    /// Whether it stops short of `before` (at a held entry, or at `TRIM_BATCH` entries): the
    /// anchor then records the last removed entry's time instead.
    cut_short: bool,
}

/// The entries past the log's period, up to the first held one and at most `TRIM_BATCH` of
/// them; None when there are none.
fn trimmable(client: &mut SpiClient) -> Result<Option<Prefix>, RetentionError> {
    let cutoff = client.update(
        "SELECT coalesce(
                    (SELECT min(id) - 1 FROM retention.deletion_log
                      WHERE logged_at >= now() - (SELECT retain_for FROM retention.categories
                                                   WHERE name = 'deletion_log')),
                    (SELECT max(id) FROM retention.deletion_log)),
                now() - (SELECT retain_for FROM retention.categories WHERE name = 'deletion_log'),
                (SELECT min(id) FROM retention.deletion_log)",
        Some(1),
        &[],
    )?;
    let row = cutoff.first();
    let (Some(last), Some(before)) = (row.get::<i64>(1)?, row.get::<TimestampWithTimeZone>(2)?)
    else {
        return Ok(None);
    };
    let first = row.get::<i64>(3)?;
    // Nothing older than the period (the usual case): no DELETE. Planned without statistics,
    // as right after a purge filled the log, `id <= $1` is a scan of the whole log.
    if first.is_none_or(|first| last < first) {
        return Ok(None);
    }
    let first_held = first_held(client, last)?;
    let last = first_held.map_or(last, |held| held - 1);
    let Some(first) = first.filter(|first| last >= *first) else {
        return Ok(None);
    };
    // A bounded prefix per call, so the chain lock is held briefly; the rest goes next cycle.
    let bounded = last - first >= TRIM_BATCH;
    Ok(Some(Prefix {
        last: if bounded {
            first + TRIM_BATCH - 1
        } else {
            last
        },
        before,
        cut_short: first_held.is_some() || bounded,
    }))
}

/// The first entry up to `last` that a hold keeps. Log entries are rows of category
/// deletion_log with a tenant column and no subject column: a hold covers them when its table
/// and category scopes are unset or name the log, its subject scope is unset, and its tenant
/// scope is unset or the entry's tenant.
fn first_held(client: &mut SpiClient, last: i64) -> Result<Option<i64>, RetentionError> {
    Ok(client
        .update(
            "SELECT min(l.id) FROM retention.deletion_log l
              WHERE l.id <= $1
                AND EXISTS (SELECT 1 FROM retention.holds h
                             WHERE (h.released_at IS NULL OR h.grace_until > now())
                               AND h.subject IS NULL
                               AND (h.tbl IS NULL OR h.tbl = 'retention.deletion_log'::regclass)
                               AND (h.category IS NULL OR h.category = 'deletion_log')
                               AND (h.tenant IS NULL OR h.tenant = l.tenant))",
            Some(1),
            &[last.into()],
        )?
        .first()
        .get_one::<i64>()?)
}

/// What every entry of one batch shares.
#[derive(Clone)]
pub struct Batch<'a> {
    pub action: LogAction,
    pub table_name: &'a str,
    pub reason: &'a str,
    pub run_id: Option<i64>,
    /// Hard deletes that finish soft deletes: each entry's reason is the one its row's soft
    /// delete was logged with (a customer's request stays one), `reason` when there is none.
    pub reason_of_soft_delete: bool,
    /// The approved disposition batch the rows were disposed of under (see disposition.rs).
    pub approval_id: Option<i64>,
}

/// One row acted on: its primary key (jsonb text), tenant, category and the period in force.
pub struct Entry {
    /// The key as jsonb text, as hashed.
    pub row_key: String,
    /// The same key as the jsonb datum the statement that read it returned, copied out of its
    /// result ([`key_datum`]), as stored.
    pub row_key_jsonb: pg_sys::Datum,
    pub tenant: Option<String>,
    pub category: Option<String>,
    pub retain_for: Option<Interval>,
    /// This entry's reason, when it is not the batch's.
    pub reason: Option<String>,
}

fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(b'-'),
        Some(v) => {
            push_int(out, v.len() as i64);
            out.push(b':');
            out.extend_from_slice(v);
        }
    }
}

/// Appends `n` in decimal (with a leading `-` when negative): what `to_string` writes, without
/// the formatting machinery, which cost more than the hash on a purge's hot path.
fn push_int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `<months>,<days>,<microseconds>`.
fn push_interval(out: &mut Vec<u8>, i: &Interval) {
    push_int(out, i.months().into());
    out.push(b',');
    push_int(out, i.days().into());
    out.push(b',');
    push_int(out, i.micros());
}

/// `<months>,<days>,<microseconds>`: independent of IntervalStyle.
pub fn interval_canonical(i: &Interval) -> String {
    let mut out = Vec::with_capacity(32);
    push_interval(&mut out, i);
    String::from_utf8(out).unwrap_or_default()
}

/// The log's columns, in the order [`append`] gives each entry's values.
const COLUMNS: [&str; 14] = [
    "id",
    "logged_at",
    "action",
    "table_name",
    "row_key",
    "tenant",
    "category",
    "reason",
    "retain_for",
    "run_id",
    "actor",
    "prev_hash",
    "hash",
    "approval_id",
];

/// Appends one entry per row to `retention.deletion_log`, continuing the hash chain. The
/// entries are stored without an `INSERT` statement ([`direct_insert`]), as `COPY` stores
/// rows: the log's constraints are checked, nothing is parsed or planned, and each key is the
/// jsonb the statement that read the row returned.
pub fn append(
    client: &mut SpiClient,
    batch: &Batch,
    entries: &[Entry],
) -> Result<(), RetentionError> {
    if entries.is_empty() {
        return Ok(());
    }
    // Serialize writers: entries are numbered and chained in commit order.
    take_lock(LockKey::LogChain, true)?;
    let mut chain = Chain::head(client, batch)?;
    // The batch's values, built once.
    let (logged_at, actor) = (
        Some(pg_sys::Datum::from(chain.logged_at_datum)),
        name_datum(&chain.actor),
    );
    let (action, table_name) = (
        batch.action.as_str().into_datum(),
        batch.table_name.into_datum(),
    );
    let shared = Shared::of(batch, entries);
    let rows = entries.iter().map(|entry| {
        let reason = entry.reason.as_deref().unwrap_or(batch.reason);
        let (id, prev) = chain.link(batch, entry, reason);
        [
            id.into_datum(),
            logged_at,
            action,
            table_name,
            Some(entry.row_key_jsonb),
            entry.tenant.as_deref().into_datum(),
            shared
                .category
                .unwrap_or_else(|| entry.category.as_deref().into_datum()),
            match &entry.reason {
                None => shared.reason,
                Some(own) => own.as_str().into_datum(),
            },
            shared
                .retain_for
                .unwrap_or_else(|| entry.retain_for.into_datum()),
            batch.run_id.into_datum(),
            actor,
            prev.into_datum(),
            chain.last_hash.as_slice().into_datum(),
            batch.approval_id.into_datum(),
        ]
    });
    direct_insert::insert("retention", "deletion_log", &COLUMNS, rows)
}

/// The datums of the values a batch's entries share, built once, before the entries are
/// stored (memory the whole write outlives): the batch's reason, and the category and period
/// when every entry has the same (a purge step's entries do).
struct Shared {
    reason: Value,
    category: Option<Value>,
    retain_for: Option<Value>,
}

impl Shared {
    fn of(batch: &Batch, entries: &[Entry]) -> Shared {
        let first = &entries[0];
        let all = |same: fn(&Entry, &Entry) -> bool| entries.iter().all(|e| same(e, first));
        Shared {
            reason: batch.reason.into_datum(),
            category: all(|a, b| a.category == b.category)
                .then(|| first.category.as_deref().into_datum()),
            retain_for: all(|a, b| a.retain_for == b.retain_for)
                .then(|| first.retain_for.into_datum()),
        }
    }
}

/// The role name `actor` as a `name` datum.
fn name_datum(actor: &str) -> Value {
    // A role name contains no NUL byte.
    let actor = CString::new(actor).unwrap_or_default();
    // SAFETY: the type's input function called with a NUL-terminated string, as the fmgr would.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::namein,
            &[Some(pg_sys::Datum::from(actor.as_ptr()))],
        )
    }
}

/// Column `n` of `row`, a key as jsonb ([`Managed::key_json_sql`]), copied out of the
/// statement's result into the current memory context (the SPI connection's, which outlives
/// the log's write), for [`Entry::row_key_jsonb`].
///
/// [`Managed::key_json_sql`]: crate::engine::managed::Managed::key_json_sql
pub fn key_datum(row: &ResultRow, n: usize) -> Result<pg_sys::Datum, RetentionError> {
    row.jsonb_copy(n)?.ok_or_else(|| {
        RetentionError::Unsupported(format!("column {n} of a row read for the log has no key"))
    })
}

/// The end of the hash chain, as entries are added to it in this transaction.
struct Chain {
    /// `now()`, the entries' `logged_at`, and in microseconds since the Unix epoch as hashed.
    logged_at_datum: pg_sys::TimestampTz,
    logged_at: String,
    actor: String,
    /// The batch's run id and approval id as hashed (once per batch, not per entry).
    run: Option<String>,
    approval: Option<String>,
    last_id: i64,
    last_hash: Vec<u8>,
    /// The canonical form of the entry being hashed, and a number written out (both reused).
    canonical: Vec<u8>,
    number: Vec<u8>,
}

impl Chain {
    /// The last entry (or, after a trim of the whole log, the anchor), under the chain lock.
    fn head(client: &SpiClient, batch: &Batch) -> Result<Chain, RetentionError> {
        let head = kept::run(
            client,
            "SELECT $1::name::text, l.id, l.hash,
                    a.last_id, a.last_hash
               FROM (SELECT 1) one
               LEFT JOIN LATERAL (SELECT id, hash FROM retention.deletion_log
                                   ORDER BY id DESC LIMIT 1) l ON true
               LEFT JOIN LATERAL (SELECT last_id, last_hash FROM retention.log_anchor
                                   ORDER BY last_id DESC LIMIT 1) a ON true",
            &[PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID)],
            &[crate::pg::identity::caller_name().into()],
        )?;
        let head = head.first();
        let (last_id, last_hash) = match head.get::<i64>(2)? {
            Some(id) => (id, head.get::<Vec<u8>>(3)?.unwrap_or_default()),
            None => (
                head.get::<i64>(4)?.unwrap_or(0),
                head.get::<Vec<u8>>(5)?.unwrap_or_else(|| vec![0u8; 32]),
            ),
        };
        // SAFETY: reads the transaction's start time, which is what now() returns.
        let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
        Ok(Chain {
            logged_at_datum: now,
            logged_at: (now + UNIX_EPOCH_IN_POSTGRES_US).to_string(),
            actor: head.get::<String>(1)?.unwrap_or_default(),
            run: batch.run_id.map(|r| r.to_string()),
            approval: batch.approval_id.map(|a| a.to_string()),
            last_id,
            last_hash,
            canonical: Vec::with_capacity(256),
            number: Vec::with_capacity(64),
        })
    }

    /// Adds `entry` to the chain: returns its id and the previous hash; its own is `last_hash`.
    fn link(&mut self, batch: &Batch, entry: &Entry, reason: &str) -> (i64, Vec<u8>) {
        let id = self.last_id + 1;
        let canonical = &mut self.canonical;
        canonical.clear();
        let number = &mut self.number;
        number.clear();
        push_int(number, id);
        field(canonical, Some(number));
        field(canonical, Some(self.logged_at.as_bytes()));
        field(canonical, Some(batch.action.as_str().as_bytes()));
        field(canonical, Some(batch.table_name.as_bytes()));
        field(canonical, Some(entry.row_key.as_bytes()));
        field(canonical, entry.tenant.as_deref().map(str::as_bytes));
        field(canonical, entry.category.as_deref().map(str::as_bytes));
        field(canonical, Some(reason.as_bytes()));
        match &entry.retain_for {
            Some(period) => {
                number.clear();
                push_interval(number, period);
                field(canonical, Some(number));
            }
            None => field(canonical, None),
        }
        field(canonical, self.run.as_deref().map(str::as_bytes));
        field(canonical, Some(self.actor.as_bytes()));
        // Added in 0.6.0: present only when set, so that older entries hash as they did.
        if let Some(approval) = &self.approval {
            field(canonical, Some(approval.as_bytes()));
        }
        let mut hasher = Sha256::new();
        hasher.update(&self.last_hash);
        hasher.update(&*canonical);
        let hash = hasher.finalize().to_vec();
        self.last_id = id;
        (id, std::mem::replace(&mut self.last_hash, hash))
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn numbers_are_written_as_rust_writes_them() {
        for n in [0, 7, -7, 10, 99, -100, 1_000_000, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            super::push_int(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        let period = Interval::new(-14, -3, -5_000_001).unwrap();
        assert_eq!(super::interval_canonical(&period), "-14,-3,-5000001");
    }

    /// The log is written without an INSERT statement, so an INSERT trigger on it would not
    /// fire: a purge refuses to write past one, and acts on nothing.
    #[pg_test]
    fn an_insert_trigger_on_the_log_stops_the_purge_before_it_acts() {
        seed(400);
        let before = int("SELECT count(*) FROM conversations");
        Spi::run(
            "CREATE FUNCTION public.copy_entry() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER copy_entry BEFORE INSERT ON retention.deletion_log
                 FOR EACH ROW EXECUTE FUNCTION public.copy_entry()",
        )
        .unwrap();
        let error = Spi::get_one::<String>("SELECT error FROM retention.run()")
            .unwrap()
            .unwrap_or_default();
        assert!(error.contains("INSERT trigger"), "{error}");
        assert_eq!(int("SELECT count(*) FROM conversations"), before);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 0);
        Spi::run("DROP TRIGGER copy_entry ON retention.deletion_log").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert!(int("SELECT count(*) FROM conversations") < before);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log"),
            before - int("SELECT count(*) FROM conversations")
        );
    }

    #[pg_test]
    fn a_batch_of_more_rows_than_a_group_is_logged_whole_and_chained() {
        seed(3000);
        Spi::run("SET LOCAL pg_retention.batch_size = 5000").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        let entries = int("SELECT count(*) FROM retention.deletion_log");
        // One batch, stored in groups of 100 rows: many groups, the last one partial.
        assert!(entries > 2000, "{entries}");
        let acted = int(
            "SELECT (3000 - count(*)) + count(*) FILTER (WHERE deleted_at IS NOT NULL)
               FROM conversations",
        );
        assert_eq!(entries, acted);
        assert_eq!(
            int("SELECT count(DISTINCT row_key) FROM retention.deletion_log"),
            entries
        );
        assert_eq!(
            int("SELECT max(id) - min(id) + 1 FROM retention.deletion_log"),
            entries
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
    }

    #[pg_test]
    fn entries_chain_and_verify() {
        seed(400);
        Spi::run("SELECT retention.set_tenant_policy('t2', 'conversations', '2 years 3 mons 4 days 05:06:07.000008')").unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        Spi::run("SELECT retention.request_delete('conversations', ARRAY[1, 2])").unwrap();
        assert!(int("SELECT count(*) FROM retention.deletion_log") > 0);
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE row_key::text LIKE '%secret%'"),
            0
        );
        // Ids are consecutive and each entry links to the previous one.
        assert_eq!(int("SELECT count(*) FROM (SELECT id - lag(id) OVER (ORDER BY id) AS step FROM retention.deletion_log) s WHERE step <> 1"), 0);
    }

    #[pg_test]
    fn the_log_is_append_only_and_tampering_is_detected() {
        seed(400);
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            sqlstate("UPDATE retention.deletion_log SET tenant = 'x'"),
            "42501"
        );
        assert_eq!(sqlstate("DELETE FROM retention.deletion_log"), "42501");
        assert_eq!(sqlstate("TRUNCATE retention.deletion_log"), "42501");
        // A superuser who disables the guard is still caught by the chain.
        Spi::run("ALTER TABLE retention.deletion_log DISABLE TRIGGER deletion_log_append_only")
            .unwrap();
        Spi::run("UPDATE retention.deletion_log SET tenant = 'forged' WHERE id = (SELECT min(id) + 3 FROM retention.deletion_log)").unwrap();
        assert_eq!(
            int("SELECT retention.verify_log()"),
            int("SELECT min(id) + 3 FROM retention.deletion_log")
        );
        Spi::run("DELETE FROM retention.deletion_log WHERE id = (SELECT min(id) + 1 FROM retention.deletion_log)").unwrap();
        assert_eq!(
            int("SELECT retention.verify_log()"),
            int("SELECT min(id) + 2 FROM retention.deletion_log")
        );
    }

    /// Writes `n` valid, chained entries dated ten years ago (as if written then).
    #[pg_test]
    fn evidence_counts_what_the_log_and_the_records_say() {
        seed(800);
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        let hold = int("SELECT retention.place_hold('case', tenant => 't1', notify => false)");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        let deleted =
            int("SELECT count(*) FROM retention.deletion_log WHERE action = 'hard_delete'");
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        let erasure = int("SELECT retention.request_erasure('s1')");
        Spi::run(&format!("SELECT retention.verify_erasure({erasure})")).unwrap();
        let erased =
            int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'erasure_request'");
        assert!(deleted > 0 && erased > 0);
        // The month of now, with a day of margin on both sides (one or two months).
        let total = |column: &str| {
            int(&format!(
                "SELECT sum({column})::bigint FROM retention.evidence(now() - interval '1 day',
                                                                      now() + interval '1 day')
                  WHERE category IS NULL"
            ))
        };
        assert_eq!(total("hard_deleted"), deleted);
        assert_eq!(total("erased"), erased);
        assert_eq!(total("erasures_received"), 1);
        assert_eq!(total("erasures_on_time"), 1);
        assert_eq!(total("holds_placed"), 1);
        assert_eq!(total("holds_released"), 1);
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.evidence(now() - interval '1 day', now() + interval '1 day')
                  WHERE category = 'conversations'"),
            deleted
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.evidence(now() - interval '1 day', now() + interval '1 day')
                  WHERE NOT log_intact OR log_head_id IS NULL"),
            0
        );
        // The auditor duty reads it, and the archived document carries its digest.
        Spi::run(
            "CREATE ROLE evidence_auditor; SELECT retention.grant_auditor('evidence_auditor');
                  SET LOCAL ROLE evidence_auditor",
        )
        .unwrap();
        assert_eq!(
            int("SELECT length(retention.evidence_json(now() - interval '1 day', now() + interval '1 day') ->> 'digest')"),
            64
        );
        Spi::run("RESET ROLE").unwrap();
    }

    fn old_entries(n: i64) {
        Spi::run(&format!(
            "DO $$
             DECLARE e retention.deletion_log; prev bytea;
             BEGIN
               FOR i IN 1..{n} LOOP
                 prev := coalesce((SELECT hash FROM retention.deletion_log ORDER BY id DESC LIMIT 1),
                                  decode(repeat('00', 32), 'hex'));
                 e := ROW(coalesce((SELECT max(id) FROM retention.deletion_log), 0) + 1,
                          now() - interval '10 years', 'hard_delete', 'public.old', jsonb_build_object('id', i),
                          NULL, 'conversations', 'expired', interval '1 year', NULL, current_user, prev, NULL, NULL);
                 e.hash := sha256(prev || retention.log_canonical(e));
                 INSERT INTO retention.deletion_log SELECT e.*;
               END LOOP;
             END $$"
        ))
        .unwrap();
    }

    #[pg_test]
    fn the_log_trims_itself_and_keeps_a_verifiable_anchor() {
        seed(400);
        old_entries(5);
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.old'"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.log_anchor WHERE last_id = 5 AND trimmed_entries = 5"), 1);
        assert!(int("SELECT count(*) FROM retention.deletion_log") > 0);
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None,
            "the chain verifies from the anchor"
        );
        assert_eq!(
            sqlstate("DELETE FROM retention.deletion_log"),
            "42501",
            "only the log's own retention removes entries"
        );
    }

    #[pg_test]
    fn held_log_entries_stay() {
        seed(400);
        old_entries(5);
        let hold =
            int("SELECT retention.place_hold('preserve the trail', category => 'deletion_log')");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.old'"),
            5,
            "a hold on the log's category keeps every entry"
        );
        assert_eq!(int("SELECT count(*) FROM retention.log_anchor"), 0);
        // Releases free at once with no grace (holds.rs tests the default grace).
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        let on_table =
            int("SELECT retention.place_hold('the log table', tbl => 'retention.deletion_log')");
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.old'"),
            5,
            "so does a hold on the log table"
        );
        Spi::run(&format!(
            "SELECT retention.release_hold({on_table}, 'done')"
        ))
        .unwrap();
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE table_name = 'public.old'"),
            0
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.verify_log()").unwrap(),
            None
        );
    }

    #[pg_test]
    fn export_gives_every_canonical_field() {
        seed(400);
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM retention.export_log()"),
            int("SELECT count(*) FROM retention.deletion_log")
        );
        // Re-hashing the exported fields gives the exported hash.
        assert_eq!(
            int(
                "SELECT count(*) FROM retention.export_log() j, LATERAL (SELECT j::jsonb AS e) x
                  WHERE encode(sha256(decode(e->>'prev_hash', 'hex') || convert_to(
                        retention.log_field(e->>'id') || retention.log_field(e->>'logged_at_us')
                     || retention.log_field(e->>'action') || retention.log_field(e->>'table_name')
                     || retention.log_field(e->>'row_key') || retention.log_field(e->>'tenant')
                     || retention.log_field(e->>'category') || retention.log_field(e->>'reason')
                     || retention.log_field(e->>'retain_for') || retention.log_field(e->>'run_id')
                     || retention.log_field(e->>'actor'), 'UTF8')), 'hex') = e->>'hash'"
            ),
            int("SELECT count(*) FROM retention.deletion_log")
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.export_log(now() + interval '1 day')"),
            0
        );
    }
}
