//! The acting statement: acts (soft-deletes, hard-deletes, anonymizes) on the rows a `due`
//! query selects, as the table's owner, returns their keys, and writes one hash-chained log
//! entry per row in the same transaction. Every path that removes or changes rows ends here:
//! the purge's batches, cascades, customer deletion, erasure, reapply.

use crate::engine::deletion_log::{self, Entry};
use crate::engine::managed::Managed;
use crate::engine::rowset::{Lock, RowSet};
use crate::engine::vocabulary::LogAction;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use crate::pg::result_rows::ResultRows;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// What a batch does to its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    SoftDelete,
    HardDelete,
    Anonymize,
}

impl Act {
    /// The deletion log's `action`.
    pub fn log_action(self) -> LogAction {
        match self {
            Act::SoftDelete => LogAction::SoftDelete,
            Act::HardDelete => LogAction::HardDelete,
            Act::Anonymize => LogAction::Anonymize,
        }
    }
}

/// SQL, over row alias `t`, that is true when the row has not been anonymized yet, or holds
/// other values than those it was anonymized to (the application wrote new data into it, or
/// a new row took its key). Marks from 0.1.0 carry no fingerprint and count as anonymized.
/// It runs as the table's owner, who cannot read retention.anonymized_rows: the marks are read
/// through `retention.is_anonymized`, which answers for tables the caller owns only.
pub fn not_anonymized_sql(table: &Managed, params: &mut Params) -> String {
    format!(
        "NOT retention.is_anonymized({}::oid::regclass, {}, {})",
        params.bind(table.oid),
        table.key_json_sql(),
        table.anonymized_fingerprint_sql()
    )
}

/// [`not_anonymized_sql`] for any managed table. On a Citus distributed table
/// `retention.is_anonymized` would run on the shards, where the marks table is empty: the marks
/// are read here, on the coordinator, and bound as arrays; those of the rows of one
/// distribution-key value (`value`, as text: a purge batch), found by the distribution column
/// in their key (Citus makes it part of the primary key), else all of the table's (a request).
/// Reading them scans the table's marks.
pub fn not_anonymized_in_sql(
    client: &SpiClient,
    table: &Managed,
    value: Option<&str>,
    params: &mut Params,
) -> Result<String, RetentionError> {
    let Some(dist) = &table.distribution else {
        return Ok(not_anonymized_sql(table, params));
    };
    let marks: Vec<(String, Option<String>)> = client
        .select(
            &format!(
                "SELECT row_key::text, fingerprint FROM retention.anonymized_rows
                  WHERE tbl = $1::oid::regclass
                    AND ($3::text IS NULL OR row_key -> $2 = pg_catalog.to_jsonb($3::{}))",
                dist.type_name
            ),
            None,
            &[table.oid.into(), dist.column.as_str().into(), value.into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?)))
        .collect::<Result<_, RetentionError>>()?;
    let (keys, fingerprints): (Vec<String>, Vec<Option<String>>) = marks.into_iter().unzip();
    Ok(format!(
        "NOT EXISTS (SELECT 1 FROM unnest({}::text[], {}::text[]) AS m(k, fp)
                      WHERE m.k = ({})::text AND (m.fp IS NULL OR m.fp = {}))",
        params.bind(keys),
        params.bind(fingerprints),
        table.key_json_sql(),
        table.anonymized_fingerprint_sql()
    ))
}

/// SQL that acts on the rows selected by `acting.due` (a query returning `ctid`, or the key
/// columns of a table acted on by key) and returns each row's key (jsonb text), tenant, `clock`
/// (a timestamptz expression over the row, or NULL), for anonymizations the fingerprint of
/// the anonymized values, and the key again as jsonb (for the log, which then need not parse
/// the text). It touches the application table only: it runs as its owner.
///
/// For a Citus distributed table the acting statement carries `acting.shard` (the equality on
/// the distribution column that routes it to one shard, which `acting.due` carries too: rows
/// are then matched by ctid; without it, by primary key) and returns plain columns (the key and
/// role columns, which the outputs are computed from): Citus refuses non-immutable functions
/// such as `jsonb_build_object` in `RETURNING`, so the key and tenant are built by the outer
/// query.
pub fn act_sql(table: &Managed, acting: &Acting, params: &mut Params) -> String {
    let act = acting.act;
    let fingerprint = if act == Act::Anonymize {
        table.anonymized_fingerprint_sql()
    } else {
        "NULL::text".to_string()
    };
    let outputs = format!(
        "{} AS k, {} AS tn, {} AS clk, {fingerprint} AS fp",
        table.key_json_sql(),
        table.tenant_text_sql(),
        acting.clock.unwrap_or("NULL::timestamptz")
    );
    let (returning, outer) = if table.distribution.is_some() {
        (
            table.row_columns_sql(),
            format!("SELECT k::text, tn, clk, fp, k FROM (SELECT {outputs} FROM acted AS t) o"),
        )
    } else {
        (
            outputs,
            "SELECT k::text, tn, clk, fp, k FROM acted".to_string(),
        )
    };
    let rows = RowSet::of(table)
        .filters(acting.shard.clone())
        .filter(due_rows_sql(table, acting.shard.is_some()));
    let acted = match act {
        Act::HardDelete => rows.delete(&returning),
        Act::SoftDelete => rows.update(
            &format!(
                "{} = now()",
                quote_identifier(table.soft_delete_column.as_deref().unwrap_or_default())
            ),
            Some(&returning),
        ),
        Act::Anonymize => rows.update(&table.anonymize_set_sql(params), Some(&returning)),
    };
    format!("WITH due AS ({}), acted AS ({acted}) {outer}", acting.due)
}

/// Marks anonymized rows (keys as jsonb text) with the fingerprints of their new values.
fn mark_anonymized(
    client: &mut SpiClient,
    table: &Managed,
    keys: Vec<String>,
    fingerprints: Vec<Option<String>>,
) -> Result<(), RetentionError> {
    client.update(
        "INSERT INTO retention.anonymized_rows (tbl, row_key, fingerprint)
         SELECT $1::oid::regclass, u.k::jsonb, u.fp FROM unnest($2::text[], $3::text[]) AS u(k, fp)
         ON CONFLICT (tbl, row_key) DO UPDATE
            SET fingerprint = excluded.fingerprint, anonymized_at = excluded.anonymized_at",
        None,
        &[table.oid.into(), keys.into(), fingerprints.into()],
    )?;
    Ok(())
}

/// Sets each entry's reason to that of the soft delete in force on its row, from the row's
/// latest `soft_delete` or `restore` log entry (none when that is a restore, or when the row
/// was soft-deleted outside the extension).
fn soft_deletion_reasons(
    client: &mut SpiClient,
    table: &Managed,
    entries: &mut [Entry],
) -> Result<(), RetentionError> {
    let keys: Vec<String> = entries.iter().map(|e| e.row_key.clone()).collect();
    let reasons = client.select(
        "SELECT (SELECT CASE WHEN l.action = 'soft_delete' THEN l.reason END
                   FROM retention.deletion_log l
                  WHERE l.table_name = $1 AND l.row_key = u.k::jsonb
                    AND l.action IN ('soft_delete', 'restore')
                  ORDER BY l.id DESC LIMIT 1)
           FROM unnest($2::text[]) WITH ORDINALITY AS u(k, n) ORDER BY u.n",
        None,
        &[table.display_name.as_str().into(), keys.into()],
    )?;
    for (entry, row) in entries.iter_mut().zip(reasons) {
        entry.reason = row.get::<String>(1)?;
    }
    Ok(())
}

/// The `due` query of a path that must act on every row it matches (a request, a cascade, a
/// reapply: not a batch, which may leave rows to the next cycle), after locking those rows in
/// a statement of its own, waiting for concurrent writers. The acting statement that follows
/// takes a newer snapshot, which sees the versions those writers committed. Locked only inside
/// the acting statement, a row updated meanwhile is returned at its new ctid, which that
/// statement's older snapshot cannot see: the row would be left in place, silently.
///
/// Citus refuses `FOR UPDATE` across shards: a distributed table's rows are locked one
/// distribution-key value at a time (each statement routed to one shard), and the `due` query
/// returned selects them by key without a lock (a multi-shard read), which the acting
/// statement matches by primary key.
pub fn lock_all(
    client: &mut SpiClient,
    table: &Managed,
    rows: RowSet,
    params: &Params,
) -> Result<String, RetentionError> {
    let Some(dist) = &table.distribution else {
        let due = rows.lock(Lock::Wait).select(&row_id_sql(table, false));
        executor::update(client, table, &due, params.args())?;
        return Ok(due);
    };
    let column = format!("t.{}", quote_identifier(&dist.column));
    let values = executor::select(
        client,
        table,
        &rows.grouped(&format!("{column}::text"), "1"),
        params.args(),
    )?
    .map(|row| row.get::<String>(1))
    .collect::<Result<Vec<_>, _>>()?;
    // Each value's rows are locked by key among the matched ones (read first, unlocked, across
    // shards): the lock itself is then a statement on one shard, whatever the conditions.
    let matched = rows.select(&row_id_sql(table, false));
    for value in values {
        let (keyed, placeholder) = params.and(value);
        let lock = RowSet::of(table)
            .filter(format!("{column} = {placeholder}::{}", dist.type_name))
            .filter(format!(
                "({}) IN (SELECT * FROM matched)",
                row_id_sql(table, false)
            ))
            .lock(Lock::Wait)
            .select(&row_id_sql(table, false));
        executor::update(
            client,
            table,
            &format!("WITH matched AS ({matched}) {lock}"),
            keyed.args(),
        )?;
    }
    Ok(rows.select(&row_id_sql(table, false)))
}

/// SQL over row alias `t` matching the rows a `due` CTE selected with [`row_id_sql`]
/// (`one_shard`: see [`Managed::by_key`]).
pub fn due_rows_sql(table: &Managed, one_shard: bool) -> String {
    if table.by_key(one_shard) {
        format!("({}) IN (SELECT * FROM due)", row_id_sql(table, one_shard))
    } else {
        "t.ctid = ANY(ARRAY(SELECT ctid FROM due))".to_string()
    }
}

/// The select list that identifies rows for [`act_sql`] (`one_shard`: see
/// [`Managed::by_key`]).
pub fn row_id_sql(table: &Managed, one_shard: bool) -> String {
    if table.by_key(one_shard) {
        let keys: Vec<String> = table
            .key_columns
            .iter()
            .map(|c| format!("t.{}", quote_identifier(c)))
            .collect();
        keys.join(", ")
    } else {
        "t.ctid".into()
    }
}

/// An acting statement over the rows a `due` query selects (see [`act_sql`]), and how its
/// rows are logged.
#[derive(Clone)]
pub struct Acting<'a> {
    pub act: Act,
    pub due: &'a str,
    pub log: deletion_log::Batch<'a>,
    /// The category and period in force, written to each entry.
    pub category: Option<&'a str>,
    pub retain_for: Option<Interval>,
    /// A timestamptz expression over the row whose newest value acted on is returned (where a
    /// step's next batch resumes).
    pub clock: Option<&'a str>,
    /// For a Citus distributed table: the equality on the distribution column that the `due`
    /// query also carries, so that both statements go to one shard.
    pub shard: Option<String>,
}

impl<'a> Acting<'a> {
    /// Acting as `act` on the rows `due` selects, logged under `log`.
    pub fn new(act: Act, due: &'a str, log: deletion_log::Batch<'a>) -> Acting<'a> {
        Acting {
            act,
            due,
            log,
            category: None,
            retain_for: None,
            clock: None,
            shard: None,
        }
    }

    /// With the category and period in force, for the log entries.
    pub fn under(mut self, category: Option<&'a str>, retain_for: Option<Interval>) -> Self {
        self.category = category;
        self.retain_for = retain_for;
        self
    }
}

/// What an acting statement did: its rows, and the newest `clock` among them.
pub struct Acted {
    pub rows: i64,
    pub newest: Option<TimestampWithTimeZone>,
}

/// Acts on the rows `acting.due` selects, none of which has parent-bound children (see
/// `cascade::act_and_log`), and logs one entry per row.
pub fn act_without_children(
    client: &mut SpiClient,
    table: &Managed,
    acting: &Acting,
    params: &mut Params,
) -> Result<Acted, RetentionError> {
    let (act, category, retain_for) = (acting.act, acting.category, acting.retain_for);
    let sql = act_sql(table, acting, params);
    let mut newest: Option<TimestampWithTimeZone> = None;
    let mut fingerprints = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut rows = ResultRows::of(executor::update(client, table, &sql, params.args())?)?;
    while let Some(row) = rows.next_row() {
        if let Some(at) = row.timestamptz(3)? {
            if newest.is_none_or(|n| i64::from(n) < i64::from(at)) {
                newest = Some(at);
            }
        }
        if act == Act::Anonymize {
            fingerprints.push(row.text(4)?);
        }
        entries.push(Entry {
            row_key: row.text(1)?.unwrap_or_default(),
            row_key_jsonb: deletion_log::key_datum(&row, 5)?,
            tenant: row.text(2)?,
            category: category.map(str::to_string),
            retain_for,
            reason: None,
        });
    }
    if act == Act::Anonymize && !entries.is_empty() {
        let keys = entries.iter().map(|e| e.row_key.clone()).collect();
        mark_anonymized(client, table, keys, fingerprints)?;
    }
    if acting.log.reason_of_soft_delete && !entries.is_empty() {
        soft_deletion_reasons(client, table, &mut entries)?;
    }
    deletion_log::append(client, &acting.log, &entries)?;
    Ok(Acted {
        rows: entries.len() as i64,
        newest,
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{act_sql, Act, Acting};
    use crate::engine::deletion_log::Batch;
    use crate::engine::managed::Managed;
    use crate::engine::vocabulary::LogAction;
    use crate::pg::citus::Distribution;
    use crate::pg::params::Params;
    use crate::testing::seed;
    use pgrx::prelude::*;

    fn conversations(distributed: bool) -> Managed {
        seed(3);
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'conversations'::regclass::oid")
            .unwrap()
            .unwrap();
        let mut table = Spi::connect(|c| Managed::load(c, oid)).unwrap();
        if distributed {
            table.distribution = Some(Distribution {
                column: "tenant".into(),
                type_name: "text".into(),
            });
        }
        table
    }

    fn delete_sql(table: &Managed, shard: Option<String>) -> String {
        let log = Batch {
            action: LogAction::HardDelete,
            table_name: "public.conversations",
            reason: "expired",
            run_id: None,
            reason_of_soft_delete: false,
            approval_id: None,
        };
        let acting = Acting {
            shard,
            ..Acting::new(Act::HardDelete, "SELECT 1", log)
        };
        act_sql(table, &acting, &mut Params::default())
    }

    #[pg_test]
    fn a_local_table_is_acted_on_by_ctid_and_returns_its_key_as_json() {
        let sql = delete_sql(&conversations(false), None);
        assert_eq!(
            sql,
            "WITH due AS (SELECT 1), acted AS (DELETE FROM public.conversations AS t \
             WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM due)) RETURNING \
             jsonb_build_object('id', t.id) AS k, t.tenant::text AS tn, NULL::timestamptz AS clk, \
             NULL::text AS fp) SELECT k::text, tn, clk, fp, k FROM acted"
        );
    }

    #[pg_test]
    fn a_distributed_table_is_acted_on_by_ctid_in_one_shard_and_returns_plain_columns() {
        let table = conversations(true);
        let sql = delete_sql(&table, Some("t.tenant = $1::text".into()));
        // Citus routes the statement by the uncast distribution column to one shard, where it
        // allows ctids, and refuses jsonb_build_object in RETURNING: the key is built by the
        // outer query.
        assert_eq!(
            sql,
            "WITH due AS (SELECT 1), acted AS (DELETE FROM public.conversations AS t \
             WHERE t.tenant = $1::text AND t.ctid = ANY(ARRAY(SELECT ctid FROM due)) RETURNING t.id, \
             t.tenant, t.subject, t.category, t.created_at, t.deleted_at) \
             SELECT k::text, tn, clk, fp, k FROM (SELECT jsonb_build_object('id', t.id) AS k, \
             t.tenant::text AS tn, NULL::timestamptz AS clk, NULL::text AS fp FROM acted AS t) o"
        );
        assert_eq!(super::row_id_sql(&table, true), "t.ctid");
    }

    #[pg_test]
    fn a_distributed_table_is_acted_on_by_key_across_shards() {
        let table = conversations(true);
        // Without the distribution-key equality the statement may span shards: ctids are
        // unique per shard only, and Citus refuses them there.
        let sql = delete_sql(&table, None);
        assert!(
            sql.contains("WHERE (t.id) IN (SELECT * FROM due) RETURNING t.id,"),
            "{sql}"
        );
        assert_eq!(super::row_id_sql(&table, false), "t.id");
    }
}
