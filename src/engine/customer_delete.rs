//! Customer-initiated deletion through the standard path: `retention.request_delete` (soft
//! delete when the row's policy has a window, else hard delete; held rows queued until their
//! holds are released) and `retention.restore` (undo a soft delete within its window).

use crate::engine::acting::{Act, Acting};
use crate::engine::catalog;
use crate::engine::deletion_log::{self, interval_canonical, Entry};
use crate::engine::groups::Named;
use crate::engine::managed::{quote_literal_text, Managed};
use crate::engine::policy;
use crate::engine::rowset::RowSet;
use crate::engine::tagging::{key_match_sql, requested_keys_sql};
use crate::engine::vocabulary::{reason, LogAction};
use crate::engine::windows::Path;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use crate::pg::result_rows::ResultRows;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// SQL for the tenant of row `t` as jsonb (JSON null for a NULL tenant), NULL without a
/// tenant column: what a queued deletion remembers of its row.
fn tenant_json_sql(table: &Managed) -> String {
    match table.tenant_column.as_deref() {
        Some(c) => format!("to_jsonb(t.{}::text)", quote_identifier(c)),
        None => "NULL::jsonb".into(),
    }
}

/// What a request did: rows soft- and hard-deleted, and the keys (jsonb text) left queued
/// under a hold.
pub struct Requested {
    pub soft_deleted: i64,
    pub hard_deleted: i64,
    pub queued: Vec<String>,
}

/// Deletes the rows whose keys are in `keys` (bound as `$1`) through the standard path.
pub fn delete_keys(
    client: &mut SpiClient,
    table: &Managed,
    keys: DatumWithOid,
    reason: &str,
    run_id: Option<i64>,
) -> Result<Requested, RetentionError> {
    let categories = catalog::load_all(client)?;
    let overrides = policy::overrides(client)?;
    let mut params = Params::default();
    params.bind(keys);
    let rows = RowSet::of(table).filter(key_match_sql(client, table, 1)?);
    let named = Named::new(client, table, rows, &mut params)?;
    let mut done = Requested {
        soft_deleted: 0,
        hard_deleted: 0,
        queued: queue_held(client, table, &named, &params, reason)?,
    };
    for group in named.groups(client, table, &mut params)? {
        if group.rows == group.held {
            continue;
        }
        let Some(category) = categories.iter().find(|c| c.name == group.category) else {
            return Err(RetentionError::UnknownCategory(group.category));
        };
        if category.locked {
            // A locked category's rows leave only by expiry; a queued deletion of them stays
            // queued, a request is refused.
            if run_id.is_some() {
                continue;
            }
            return Err(RetentionError::CategoryLocked(group.category));
        }
        let (retain_for, windows) = policy::in_force(category, group.tenant.as_deref(), &overrides);
        let act = if windows.of(Path::CustomerRequest).is_some() {
            table
                .soft_delete_column
                .as_ref()
                .map_or(Act::HardDelete, |_| Act::SoftDelete)
        } else {
            Act::HardDelete
        };
        let mut rows = named.unheld_in(table, &group, &mut params);
        if act == Act::SoftDelete {
            let soft = quote_identifier(table.soft_delete_column.as_deref().unwrap_or_default());
            rows = rows.filter(format!("t.{soft} IS NULL"));
        }
        let due = crate::engine::acting::lock_all(client, table, rows, &params)?;
        let acting = Acting::new(
            act,
            &due,
            deletion_log::Batch {
                action: act.log_action(),
                table_name: &table.display_name,
                reason,
                run_id,
                reason_of_soft_delete: false,
                approval_id: None,
            },
        )
        .under(Some(&group.category), Some(retain_for));
        let acted = crate::engine::cascade::act_and_log(client, table, &acting, &mut params)?.rows;
        match act {
            Act::SoftDelete => done.soft_deleted += acted,
            _ => done.hard_deleted += acted,
        }
    }
    Ok(done)
}

/// Queues the named rows a hold keeps (until their holds are released); returns their keys.
fn queue_held(
    client: &mut SpiClient,
    table: &Managed,
    named: &Named,
    params: &Params,
    reason: &str,
) -> Result<Vec<String>, RetentionError> {
    let sql = named.held().select(&format!(
        "{}::text, {}::text",
        table.key_json_sql(),
        tenant_json_sql(table)
    ));
    let held: Vec<(String, Option<String>)> = executor::select(client, table, &sql, params.args())?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?)))
        .collect::<Result<_, RetentionError>>()?;
    let (queued, tenants): (Vec<String>, Vec<Option<String>>) = held.into_iter().unzip();
    if !queued.is_empty() {
        client.update(
            "INSERT INTO retention.deletion_queue (tbl, row_key, reason, row_tenant, requested_by)
             SELECT $1::oid::regclass, u.k::jsonb, $2, u.tn::jsonb, $5
               FROM unnest($3::text[], $4::text[]) AS u(k, tn)
             ON CONFLICT (tbl, row_key) WHERE done_at IS NULL DO NOTHING",
            None,
            &[
                table.oid.into(),
                reason.into(),
                queued.clone().into(),
                tenants.into(),
                crate::pg::identity::caller_name().into(),
            ],
        )?;
    }
    Ok(queued)
}

/// A row `restore` found, locked.
struct Restorable {
    /// Its key as jsonb text, and as the jsonb itself ([`deletion_log::key_datum`]).
    key: String,
    key_datum: pg_sys::Datum,
    category: String,
    tenant: Option<String>,
    /// When it was soft-deleted (None: it is not), and why.
    soft_deleted_at: Option<TimestampWithTimeZone>,
    path: Path,
}

/// Restores the soft-deleted rows among those whose keys are in `keys` (bound as `$1`), each
/// within its recovery window (else nothing is restored: 55000), held rows left as they are;
/// one `restore` entry per row. Returns the rows restored.
pub fn restore_keys(
    client: &mut SpiClient,
    table: &Managed,
    keys: DatumWithOid,
) -> Result<i64, RetentionError> {
    let Some(soft) = table.soft_delete_column.as_deref().map(quote_identifier) else {
        return Err(RetentionError::MissingColumnRole(
            format!(
                "table {} has no soft_delete_column: nothing can be restored",
                table.display_name
            ),
            "Only soft-deleted rows can be restored.".into(),
        ));
    };
    let mut params = Params::default();
    params.bind(keys);
    let matching = key_match_sql(client, table, 1)?;
    refuse_removed_keys(client, table, &matching, &params)?;
    // Held rows are left as they are, soft-deleted included.
    let rows = RowSet::of(table)
        .filter(matching)
        .filter(crate::engine::keeping::unheld_sql(
            client,
            table,
            &mut params,
        )?);
    let entries = restorable(client, table, &rows, &soft, &mut params)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let restoring = rows.filter(format!("t.{soft} IS NOT NULL"));
    executor::update(
        client,
        table,
        &restoring.update(&format!("{soft} = NULL"), None),
        params.args(),
    )?;
    deletion_log::append(
        client,
        &deletion_log::Batch {
            action: LogAction::Restore,
            table_name: &table.display_name,
            reason: reason::CUSTOMER_REQUEST,
            run_id: None,
            reason_of_soft_delete: false,
            approval_id: None,
        },
        &entries,
    )?;
    Ok(entries.len() as i64)
}

/// The log entries of the soft-deleted rows among `rows` (locked), each checked to be within
/// the recovery window of its policy and path.
fn restorable(
    client: &mut SpiClient,
    table: &Managed,
    rows: &RowSet,
    soft: &str,
    params: &mut Params,
) -> Result<Vec<Entry>, RetentionError> {
    let categories = catalog::load_all(client)?;
    let overrides = policy::overrides(client)?;
    let found = locked_rows(client, table, rows, soft, params)?;
    let mut entries = Vec::new();
    let mut window_starts = WindowStarts::default();
    for row in found {
        let Some(soft_deleted_at) = row.soft_deleted_at else {
            continue;
        };
        let category = categories
            .iter()
            .find(|c| c.name == row.category)
            .ok_or_else(|| RetentionError::UnknownCategory(row.category.clone()))?;
        let (retain_for, windows) = policy::in_force(category, row.tenant.as_deref(), &overrides);
        let window = windows
            .of(row.path)
            .unwrap_or_else(crate::engine::period::zero);
        if i64::from(soft_deleted_at) <= window_starts.start(client, window)? {
            return Err(RetentionError::RestoreWindowPassed(format!(
                "row {} of {} was soft-deleted longer ago than its recovery window",
                row.key, table.display_name
            )));
        }
        entries.push(Entry {
            row_key: row.key,
            row_key_jsonb: row.key_datum,
            tenant: row.tenant,
            category: Some(row.category),
            retain_for: Some(retain_for),
            reason: None,
        });
    }
    Ok(entries)
}

/// Locks `rows` (waiting for writers; on a Citus distributed table one distribution-key value
/// at a time) and reads each one's key, category, tenant, soft delete and soft-delete path. The
/// path comes from the deletion log, read here on this server (on Citus, the coordinator),
/// not in the statement on the table, which may run on another server.
fn locked_rows(
    client: &mut SpiClient,
    table: &Managed,
    rows: &RowSet,
    soft: &str,
    params: &mut Params,
) -> Result<Vec<Restorable>, RetentionError> {
    crate::engine::acting::lock_all(client, table, rows.clone(), params)?;
    let key = table.key_json_sql();
    let columns = format!(
        "{key}::text, {}, {}, t.{soft}::timestamptz, {key}",
        table.category_sql(params),
        table.tenant_text_sql(),
    );
    // Read-write: a statement with a newer snapshot, which sees what the writers waited for
    // committed (a read-only one would read the calling statement's snapshot).
    let mut found: Vec<Restorable> = Vec::new();
    let mut read = ResultRows::of(executor::update(
        client,
        table,
        &rows.select(&columns),
        params.args(),
    )?)?;
    while let Some(r) = read.next_row() {
        found.push(Restorable {
            key: r.text(1)?.unwrap_or_default(),
            key_datum: deletion_log::key_datum(&r, 5)?,
            category: r.text(2)?.unwrap_or_default(),
            tenant: r.text(3)?,
            soft_deleted_at: r.timestamptz(4)?,
            path: Path::from_sql(None), // read below, from the log
        });
    }
    drop(read);
    let keys: Vec<String> = found.iter().map(|f| f.key.clone()).collect();
    let paths = client.select(
        "SELECT retention.soft_delete_path($1, u.k::jsonb)
           FROM unnest($2::text[]) WITH ORDINALITY AS u(k, n) ORDER BY u.n",
        None,
        &[table.display_name.as_str().into(), keys.into()],
    )?;
    found
        .into_iter()
        .zip(paths)
        .map(|(row, path)| {
            Ok(Restorable {
                path: Path::from_sql(path.get::<String>(1)?.as_deref()),
                ..row
            })
        })
        .collect()
}

/// The start of each recovery window in force, `now() - window`, computed once per window.
#[derive(Default)]
struct WindowStarts(std::collections::BTreeMap<String, i64>);

impl WindowStarts {
    fn start(&mut self, client: &SpiClient, window: Interval) -> Result<i64, RetentionError> {
        let canonical = interval_canonical(&window);
        if let Some(start) = self.0.get(&canonical) {
            return Ok(*start);
        }
        let start = client
            .select("SELECT now() - $1::interval", Some(1), &[window.into()])?
            .first()
            .get_one::<TimestampWithTimeZone>()?
            .map(i64::from)
            .unwrap_or(i64::MAX);
        self.0.insert(canonical, start);
        Ok(start)
    }
}

/// Executes queued deletions whose rows no hold covers anymore (after a release); part of
/// every purge cycle (`run_id`). Returns the rows soft- and hard-deleted.
pub fn process_queue(
    client: &mut SpiClient,
    run_id: Option<i64>,
) -> Result<(i64, i64), RetentionError> {
    let (mut soft_deleted, mut hard_deleted) = (0, 0);
    let pending: Vec<(pg_sys::Oid, String)> = client
        .select(
            "SELECT DISTINCT q.tbl::oid, q.reason FROM retention.deletion_queue q
               JOIN retention.managed_tables m ON m.tbl = q.tbl
              WHERE q.done_at IS NULL",
            None,
            &[],
        )?
        .map(|r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<String>(2)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, RetentionError>>()?;
    for (oid, reason) in pending {
        let table = Managed::load(client, oid)?;
        // Entries whose row is gone, or whose key another tenant's row has taken since, are
        // done: nothing of theirs is left to delete.
        if table.tenant_column.is_some() {
            forget_gone_rows(client, &table, &reason)?;
        }
        let element = table.key_from_json_sql("q.row_key");
        let keys = client
            .select(
                &format!(
                    "SELECT array_agg({element}) FROM retention.deletion_queue q
                      WHERE q.tbl = $1::oid::regclass AND q.reason = $2 AND q.done_at IS NULL"
                ),
                Some(1),
                &[oid.into(), reason.as_str().into()],
            )?
            .first()
            .get_datum_by_ordinal(1)?;
        let Some(keys) = keys else { continue };
        let keys = unsafe { DatumWithOid::new(keys, pg_sys::TEXTARRAYOID) };
        let requested = delete_keys(client, &table, keys, &reason, run_id)?;
        soft_deleted += requested.soft_deleted;
        hard_deleted += requested.hard_deleted;
        client.update(
            "UPDATE retention.deletion_queue SET done_at = now()
              WHERE tbl = $1::oid::regclass AND reason = $2 AND done_at IS NULL
                AND row_key::text <> ALL($3::text[])",
            None,
            &[oid.into(), reason.as_str().into(), requested.queued.into()],
        )?;
    }
    Ok((soft_deleted, hard_deleted))
}

/// Marks done the queued deletions whose row is gone, or whose key another tenant's row has
/// taken since: nothing of theirs is left to delete. The queue is read and written under the
/// extension's identity, the table as its owner.
fn forget_gone_rows(
    client: &mut SpiClient,
    table: &Managed,
    reason: &str,
) -> Result<(), RetentionError> {
    let pending: Vec<(String, String)> = client
        .select(
            "SELECT row_key::text, row_tenant::text FROM retention.deletion_queue
              WHERE tbl = $1::oid::regclass AND reason = $2 AND done_at IS NULL
                AND row_tenant IS NOT NULL",
            None,
            &[table.oid.into(), reason.into()],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, RetentionError>>()?;
    if pending.is_empty() {
        return Ok(());
    }
    let types = table.key_types(client)?;
    let columns: Vec<String> = (table.key_columns.iter())
        .map(|c| format!("t.{}", quote_identifier(c)))
        .collect();
    let values: Vec<String> = (table.key_columns.iter().zip(&types))
        .map(|(c, ty)| format!("(u.k::jsonb ->> {})::{ty}", quote_literal_text(c)))
        .collect();
    let keys: Vec<String> = pending.iter().map(|(k, _)| k.clone()).collect();
    // The queued keys still present, with their row's tenant; not correlated with the queue's
    // keys, so that Citus can run it on a distributed table.
    let present: std::collections::HashSet<(String, String)> = executor::select(
        client,
        table,
        &RowSet::of(table)
            .filter(format!(
                "({}) IN (SELECT {} FROM unnest($1::text[]) AS u(k))",
                columns.join(", "),
                values.join(", ")
            ))
            .select(&format!(
                "{}::text, ({})::text",
                table.key_json_sql(),
                tenant_json_sql(table)
            )),
        &[keys.into()],
    )?
    .map(|r| {
        Ok((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
        ))
    })
    .collect::<Result<_, RetentionError>>()?;
    let gone: Vec<String> = pending
        .into_iter()
        .filter(|entry| !present.contains(entry))
        .map(|(k, _)| k)
        .collect();
    client.update(
        "UPDATE retention.deletion_queue SET done_at = now()
          WHERE tbl = $1::oid::regclass AND reason = $2 AND done_at IS NULL
            AND row_key::text = ANY($3::text[])",
        None,
        &[table.oid.into(), reason.into(), gone.into()],
    )?;
    Ok(())
}

/// Refuses to restore a key that is no longer in the table and that the deletion log says was
/// removed (hard-deleted or erased), naming the log entry: nothing can bring it back.
pub fn refuse_removed_keys(
    client: &mut SpiClient,
    table: &Managed,
    matching: &str,
    params: &Params,
) -> Result<(), RetentionError> {
    // The requested keys, as the log writes them, that no row of the table has.
    let missing = format!(
        "SELECT array_agg(r.key) FROM ({} EXCEPT {}) r",
        requested_keys_sql(client, table, 1)?,
        RowSet::of(table)
            .filter(matching)
            .select(&table.key_json_sql())
    );
    let Some(missing) = executor::select(client, table, &missing, params.args())?
        .first()
        .get_one::<Vec<pgrx::JsonB>>()?
    else {
        return Ok(());
    };
    let removed = client
        .select(
            "SELECT format('row %s of %s was removed (%s, reason %s): deletion-log entry %s',
                           l.row_key, l.table_name, l.action, l.reason, l.id)
               FROM retention.deletion_log l
              WHERE l.table_name = $1 AND l.row_key = ANY($2)
                AND l.action IN ('hard_delete', 'erasure')
              ORDER BY l.id DESC LIMIT 1",
            Some(1),
            &[table.display_name.as_str().into(), missing.into()],
        )?
        .next()
        .map(|r| r.get::<String>(1))
        .transpose()?
        .flatten();
    match removed {
        Some(message) => Err(RetentionError::RowRemoved(message)),
        None => Ok(()),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    fn setup() {
        Spi::run(
            "SELECT retention.define_category('projects', '90 days', clock => 'event', event => 'termination', soft_delete_window => '30 days');
             SELECT retention.define_category('conversations', '1 year');
             CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
             SELECT retention.manage('projects', 'projects', tenant_column => 'tenant', soft_delete_column => 'deleted_at');
             CREATE TABLE chats (id int PRIMARY KEY, tenant text, created_at timestamptz);
             SELECT retention.manage('chats', 'conversations', created_column => 'created_at', tenant_column => 'tenant');
             INSERT INTO projects VALUES (1, 'acme', NULL), (2, 'acme', NULL), (3, 'globex', NULL);
             INSERT INTO chats VALUES (1, 'acme', now()), (2, 'acme', now());",
        )
        .unwrap();
    }

    #[pg_test]
    fn request_delete_soft_deletes_with_a_window_and_hard_deletes_without() {
        setup();
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[1])"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE id = 1 AND deleted_at IS NOT NULL"),
            1
        );
        assert_eq!(int("SELECT retention.request_delete('chats', ARRAY[1])"), 1);
        assert_eq!(int("SELECT count(*) FROM chats"), 1);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'customer_request' AND action = 'soft_delete' AND table_name = 'public.projects'"), 1);
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'customer_request' AND action = 'hard_delete' AND table_name = 'public.chats'"), 1);
        assert_eq!(int("SELECT retention.restore('projects', ARRAY[1])"), 1);
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE deleted_at IS NOT NULL"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE action = 'restore'"),
            1
        );
    }

    #[pg_test]
    fn soft_deleted_rows_are_finished_after_the_window() {
        setup();
        Spi::run("SELECT retention.request_delete('projects', ARRAY[3]); UPDATE projects SET deleted_at = now() - interval '31 days' WHERE id = 3").unwrap();
        assert_eq!(
            sqlstate("SELECT retention.restore('projects', ARRAY[3])"),
            "55000"
        );
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM projects WHERE id = 3"), 0);
        // The hard delete that finishes a customer's soft delete keeps the customer's reason.
        assert_eq!(
            int(
                "SELECT count(*) FROM retention.deletion_log WHERE row_key = '{\"id\": 3}'
                    AND action = 'hard_delete' AND reason = 'customer_request'"
            ),
            1
        );
    }

    #[pg_test]
    fn termination_soft_deletes_then_hard_deletes() {
        setup();
        Spi::run(
            "SELECT retention.record_event('acme', 'termination', now() - interval '100 days')",
        )
        .unwrap();
        assert_eq!(
            int("SELECT sum(soft_deleted)::bigint FROM retention.run()"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE tenant = 'acme' AND deleted_at IS NOT NULL"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE tenant = 'globex' AND deleted_at IS NULL"),
            1
        );
        // After the window, expired rows are finished with reason expired.
        Spi::run("UPDATE projects SET deleted_at = deleted_at - interval '31 days'").unwrap();
        assert_eq!(
            int("SELECT sum(hard_deleted)::bigint FROM retention.run()"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log
                  WHERE action = 'hard_delete' AND reason = 'expired' AND tenant = 'acme'"),
            2
        );
    }

    #[pg_test]
    fn held_rows_are_queued_until_release() {
        setup();
        let hold = int("SELECT retention.place_hold('case', tenant => 'acme', notify => false)");
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[1, 3])"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.queued_deletions WHERE row_key = '{\"id\": 1}'"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE id = 1 AND deleted_at IS NULL"),
            1
        );
        // A release frees at once with no grace (holds.rs tests the default grace).
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        // The next purge cycle executes it.
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 1);
        assert_eq!(
            int("SELECT sum(soft_deleted)::bigint FROM retention.run()"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE id = 1 AND deleted_at IS NOT NULL"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 0);
    }

    #[pg_test]
    fn a_queued_deletion_spares_a_row_that_took_its_key() {
        setup();
        let hold = int("SELECT retention.place_hold('case', tenant => 'acme', notify => false)");
        assert_eq!(
            int("SELECT retention.request_delete('projects', ARRAY[1, 2])"),
            0
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 2);
        // Once the hold is released (the hold guard refuses it before), and before the next
        // cycle, the application replaces row 1 by another customer's row under the same key.
        Spi::run("SET LOCAL pg_retention.hold_release_grace = 0").unwrap();
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'done')")).unwrap();
        Spi::run(
            "DELETE FROM projects WHERE id = 1; INSERT INTO projects VALUES (1, 'globex', NULL)",
        )
        .unwrap();
        assert_eq!(
            int("SELECT sum(soft_deleted)::bigint FROM retention.run()"),
            1,
            "only acme's row 2"
        );
        assert_eq!(
            int("SELECT count(*) FROM projects WHERE id = 1 AND tenant = 'globex' AND deleted_at IS NULL"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.queued_deletions"), 0);
        assert_eq!(
            int("SELECT count(*) FROM retention.deletion_log WHERE row_key = '{\"id\": 1}'"),
            0
        );
    }

    #[pg_test]
    fn customer_requests_reject_bad_input() {
        setup();
        assert_eq!(
            sqlstate("SELECT retention.request_delete('projects', ARRAY[]::int[])"),
            "22023"
        );
        assert_eq!(
            sqlstate("SELECT retention.request_delete('projects', ARRAY['x'])"),
            "22P02"
        );
        assert_eq!(
            sqlstate("SELECT retention.request_delete('projects', NULL::int[])"),
            "22004"
        );
        assert_eq!(
            sqlstate("SELECT retention.request_delete('pg_class', ARRAY[1])"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.restore('chats', ARRAY[1])"),
            "55000"
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log"), 0);
    }
}
