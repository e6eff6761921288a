//! The redaction triggers. `retention.redact_row()` (BEFORE INSERT OR UPDATE, per row) rewrites
//! the rule's columns in the new row and counts what it replaced in backend memory;
//! `retention.redaction_count()` (AFTER INSERT OR UPDATE, per statement) writes those counts to
//! `retention.redaction_tallies` in the statement's transaction, so a rolled-back row is not
//! counted. Counts of an aborted (sub)transaction are forgotten by the transaction callbacks.
//!
//! The row trigger needs no catalog read: its arguments carry the rule (mod.rs writes them).

use super::detect::{self, Counts, Detector};
use crate::engine::guard::varlena_bytes;
use crate::error::RetentionError;
use pgrx::prelude::*;
use pgrx::{JsonB, PgTupleDesc};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;

/// A rule as the row trigger reads it from its arguments.
struct Rule {
    replacement: String,
    /// The detectors but `custom`, which runs the patterns.
    built_in: Vec<Detector>,
    patterns: Vec<String>,
    /// The replacement of a pattern's match, escaped for `regexp_replace`.
    custom_replacement: String,
    columns: Vec<String>,
}

impl Rule {
    fn from_args(args: Vec<String>) -> Result<Rule, RetentionError> {
        let broken =
            || RetentionError::InvalidValue("malformed redaction trigger arguments".into());
        let mut args = args.into_iter();
        let replacement = args.next().ok_or_else(broken)?;
        let detectors: Vec<Detector> = args
            .next()
            .ok_or_else(broken)?
            .split(',')
            .map(|d| d.parse().map_err(|_| broken()))
            .collect::<Result<_, _>>()?;
        let count: usize = args
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(broken)?;
        let patterns: Vec<String> = args.by_ref().take(count).collect();
        Ok(Rule {
            custom_replacement: replacement
                .replace("%s", Detector::Custom.as_str())
                .replace('\\', "\\\\"),
            replacement,
            built_in: detectors
                .into_iter()
                .filter(|d| *d != Detector::Custom)
                .collect(),
            patterns,
            columns: args.collect(),
        })
    }
}

/// Redactions counted in this backend and not yet written: relation, column, detector, the
/// subtransaction that made them, how many.
struct Pending {
    rel: pg_sys::Oid,
    column: String,
    detector: Detector,
    subxact: pg_sys::SubTransactionId,
    count: i64,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// Rules read from trigger arguments, by trigger oid (a trigger's arguments never change:
    /// redact() creates a new trigger).
    static RULES: RefCell<HashMap<pg_sys::Oid, Rc<Rule>>> = RefCell::new(HashMap::new());
}

/// The rule in the arguments of the firing trigger.
fn rule_of(trigger: &PgTrigger<'_>) -> Result<Rc<Rule>, RetentionError> {
    let oid = trigger.trigger().tgoid;
    if let Some(rule) = RULES.with(|r| r.borrow().get(&oid).cloned()) {
        return Ok(rule);
    }
    let args = trigger
        .extra_args()
        .map_err(|e| RetentionError::InvalidValue(e.to_string()))?;
    let rule = Rc::new(Rule::from_args(args)?);
    RULES.with(|r| r.borrow_mut().insert(oid, rule.clone()));
    Ok(rule)
}

fn count(rel: pg_sys::Oid, column: &str, found: &[(Detector, i64)]) {
    // SAFETY: reads the current subtransaction's id.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        for &(detector, n) in found {
            let same = |e: &&mut Pending| {
                e.rel == rel && e.column == column && e.detector == detector && e.subxact == subxact
            };
            match pending.iter_mut().find(same) {
                Some(entry) => entry.count += n,
                None => pending.push(Pending {
                    rel,
                    column: column.into(),
                    detector,
                    subxact,
                    count: n,
                }),
            }
        }
    });
}

/// Registers the callbacks that forget the counts of aborted work (at library load).
pub fn init() {
    // SAFETY: plain C callbacks without state, registered once per process.
    unsafe {
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(at_subtransaction_abort), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_COMMIT | XACT_EVENT_PREPARE
    ) {
        PENDING.with(|p| p.borrow_mut().clear());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_subtransaction_abort(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // Subtransaction ids grow: those at or above an aborting one are it or its children.
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with(|p| p.borrow_mut().retain(|e| e.subxact < my_subid));
    }
}

/// `retention.redact_row()`: the row trigger `redact()` creates.
#[pg_trigger]
fn redact_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, RetentionError> {
    let rule = rule_of(trigger)?;
    let data = trigger.trigger_data();
    // SAFETY: the trigger manager's relation and row, valid during this call.
    unsafe {
        let (rel, tupdesc) = ((*data.tg_relation).rd_id, (*data.tg_relation).rd_att);
        let updating =
            (data.tg_event & pg_sys::TRIGGER_EVENT_OPMASK) == pg_sys::TRIGGER_EVENT_UPDATE;
        let tuple = if updating {
            data.tg_newtuple
        } else {
            data.tg_trigtuple
        };
        let mut attnums = Vec::new();
        let mut values = Vec::new();
        for column in &rule.columns {
            if let Some((attnum, value)) = redact_column(&rule, rel, tupdesc, tuple, column) {
                attnums.push(attnum);
                values.push(value);
            }
        }
        if attnums.is_empty() {
            return Ok(Some(PgHeapTuple::from_heap_tuple(
                PgTupleDesc::from_pg_unchecked(tupdesc),
                tuple,
            )));
        }
        if !counts_at_statement_end(data.tg_relation) {
            flush()?;
        }
        let result = {
            let nulls = vec![false; attnums.len()];
            pg_sys::heap_modify_tuple_by_cols(
                tuple,
                tupdesc,
                attnums.len() as i32,
                attnums.as_mut_ptr(),
                values.as_mut_ptr(),
                nulls.as_ptr() as *mut bool,
            )
        };
        Ok(Some(PgHeapTuple::from_heap_tuple(
            PgTupleDesc::from_pg_unchecked(tupdesc),
            result,
        )))
    }
}

/// The redacted value of `column` in `tuple`, if anything in it was replaced.
///
/// SAFETY: `tuple` is a valid tuple of `tupdesc`, the descriptor of relation `rel`.
unsafe fn redact_column(
    rule: &Rule,
    rel: pg_sys::Oid,
    tupdesc: pg_sys::TupleDesc,
    tuple: pg_sys::HeapTuple,
    column: &str,
) -> Option<(i32, pg_sys::Datum)> {
    let name = CString::new(column).ok()?;
    let attnum = pg_sys::SPI_fnumber(tupdesc, name.as_ptr());
    if attnum <= 0 {
        return None;
    }
    let mut isnull = false;
    let datum = pg_sys::SPI_getbinval(tuple, tupdesc, attnum, &mut isnull);
    if isnull {
        return None;
    }
    let att = &*(*tupdesc).attrs.as_ptr().add(attnum as usize - 1);
    let (value, found) = if att.atttypid == pg_sys::JSONBOID {
        redact_jsonb(rule, datum)?
    } else {
        redact_text(rule, datum, att.atttypmod)?
    };
    count(rel, column, &found);
    Some((attnum, value))
}

/// A text or varchar value redacted, cut to the column's declared length (varchar(n)).
unsafe fn redact_text(
    rule: &Rule,
    datum: pg_sys::Datum,
    typmod: i32,
) -> Option<(pg_sys::Datum, Counts)> {
    let bytes = varlena_bytes(datum);
    let (mut text, found) = redact_bytes(rule, bytes)?;
    if typmod > pg_sys::VARHDRSZ as i32 {
        let max_chars = typmod - pg_sys::VARHDRSZ as i32;
        let len = pg_sys::pg_mbcharcliplen(text.as_ptr() as *const _, text.len() as i32, max_chars);
        text.truncate(len as usize);
    }
    let value = pg_sys::cstring_to_text_with_len(text.as_ptr() as *const _, text.len() as i32);
    Some((pg_sys::Datum::from(value), found))
}

/// A jsonb value with every string in it redacted (object keys and numbers are kept).
unsafe fn redact_jsonb(rule: &Rule, datum: pg_sys::Datum) -> Option<(pg_sys::Datum, Counts)> {
    if rule.patterns.is_empty() && !might_match(varlena_bytes(datum)) {
        return None;
    }
    let JsonB(mut value) = JsonB::from_datum(datum, false)?;
    let mut found = Vec::new();
    redact_strings(rule, &mut value, &mut found);
    if found.is_empty() {
        return None;
    }
    Some((JsonB(value).into_datum()?, found))
}

fn redact_strings(rule: &Rule, value: &mut serde_json::Value, found: &mut Counts) {
    match value {
        serde_json::Value::String(s) => {
            if let Some((text, counts)) = redact_bytes(rule, s.as_bytes()) {
                *s = String::from_utf8_lossy(&text).into_owned();
                merge(found, &counts);
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_strings(rule, v, found)),
        serde_json::Value::Object(map) => map
            .values_mut()
            .for_each(|v| redact_strings(rule, v, found)),
        _ => {}
    }
}

fn merge(into: &mut Counts, counts: &[(Detector, i64)]) {
    for &(detector, n) in counts {
        match into.iter_mut().find(|(d, _)| *d == detector) {
            Some((_, total)) => *total += n,
            None => into.push((detector, n)),
        }
    }
}

/// Whether bytes may hold something a built-in detector finds (every one needs a digit or `@`).
fn might_match(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| b.is_ascii_digit() || *b == b'@')
}

/// `bytes` with the built-in detectors' findings replaced, then the custom patterns'.
fn redact_bytes(rule: &Rule, bytes: &[u8]) -> Option<(Vec<u8>, Counts)> {
    let (mut text, mut found) = match detect::redact(bytes, &rule.built_in, &rule.replacement) {
        Some((text, found)) => (text, found),
        None if rule.patterns.is_empty() => return None,
        None => (bytes.to_vec(), Vec::new()),
    };
    for pattern in &rule.patterns {
        // SAFETY: text datums built here; PostgreSQL's regex functions with the default collation.
        let replaced = unsafe { replace_pattern(&text, pattern, &rule.custom_replacement) };
        if let Some((new_text, n)) = replaced {
            text = new_text;
            merge(&mut found, &[(Detector::Custom, n)]);
        }
    }
    (!found.is_empty()).then_some((text, found))
}

/// `regexp_replace(text, pattern, replacement, 'g')` and how many matches it replaced.
unsafe fn replace_pattern(text: &[u8], pattern: &str, replacement: &str) -> Option<(Vec<u8>, i64)> {
    let as_text = |b: &[u8]| {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            b.as_ptr() as *const _,
            b.len() as i32,
        ))
    };
    let (source, pattern) = (as_text(text), as_text(pattern.as_bytes()));
    let collation = pg_sys::DEFAULT_COLLATION_OID;
    let n = pg_sys::OidFunctionCall2Coll(
        pg_sys::Oid::from(pg_sys::F_REGEXP_COUNT_TEXT_TEXT),
        collation,
        source,
        pattern,
    )
    .value() as i64;
    if n == 0 {
        return None;
    }
    let replaced = pg_sys::OidFunctionCall4Coll(
        pg_sys::Oid::from(pg_sys::F_REGEXP_REPLACE_TEXT_TEXT_TEXT_TEXT),
        collation,
        source,
        pattern,
        as_text(replacement.as_bytes()),
        as_text(b"g"),
    );
    Some((varlena_bytes(replaced).to_vec(), n))
}

/// `retention.redaction_count()`: the statement trigger that writes the counts.
#[pg_trigger]
fn redaction_count<'a>(
    _trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, RetentionError> {
    flush()?;
    Ok(None)
}

/// Whether relation `rel` carries the counting trigger: a row written to it directly is then
/// counted at the end of its statement, else (a partition attached after redact()) at once.
///
/// SAFETY: `rel` is an open relation.
unsafe fn counts_at_statement_end(rel: pg_sys::Relation) -> bool {
    let triggers = (*rel).trigdesc;
    if triggers.is_null() {
        return false;
    }
    let name = super::COUNT_TRIGGER.as_bytes();
    (0..(*triggers).numtriggers as usize).any(|k| {
        let trigger = &*(*triggers).triggers.add(k);
        std::ffi::CStr::from_ptr(trigger.tgname).to_bytes() == name
    })
}

/// Writes the counts pending in this backend to `retention.redaction_tallies`, as the
/// extension, in the current transaction.
fn flush() -> Result<(), RetentionError> {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return Ok(());
    }
    let rels: Vec<pg_sys::Oid> = pending.iter().map(|e| e.rel).collect();
    let columns: Vec<String> = pending.iter().map(|e| e.column.clone()).collect();
    let detectors: Vec<&str> = pending.iter().map(|e| e.detector.as_str()).collect();
    let counts: Vec<i64> = pending.iter().map(|e| e.count).collect();
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| {
            client.update(
                "INSERT INTO retention.redaction_tallies (day, table_name, column_name, detector, redactions)
                 SELECT (pg_catalog.now() AT TIME ZONE 'UTC')::date,
                        pg_catalog.format('%I.%I', n.nspname, c.relname), p.col, p.det, sum(p.n)
                   FROM unnest($1::oid[], $2::text[], $3::text[], $4::bigint[]) AS p(rel, col, det, n)
                   JOIN pg_catalog.pg_class c
                     ON c.oid = coalesce(pg_catalog.pg_partition_root(p.rel::regclass), p.rel::regclass)
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  GROUP BY 1, 2, 3, 4",
                None,
                &[rels.into(), columns.into(), detectors.into(), counts.into()],
            )?;
            Ok(())
        })
    })
}
