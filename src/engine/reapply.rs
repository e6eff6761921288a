//! `retention.reapply_deletions(since)`: after a restore from a backup taken before some
//! deletions, deletes (soft-deletes, anonymizes) again every row whose last deletion-log entry
//! since `since` says it was removed or anonymized and that is present again (as it was),
//! holds honoured, logged with reason `reapplied`. The log is the source of truth; backups roll off on their own schedule.

use crate::engine::acting::{Act, Acting};
use crate::engine::deletion_log::Batch;
use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::engine::tagging::key_match_sql;
use crate::engine::vocabulary::{reason, LogAction};
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// One group of rows to act on again: same action, category and period.
struct Group {
    action: LogAction,
    category: Option<String>,
    retain_for: Option<Interval>,
}

/// The last entry of each key of table `$1`, for those since `$2` that removed the row.
const LAST: &str = "WITH last AS (
                        SELECT DISTINCT ON (l.row_key) l.row_key, l.action, l.category,
                               l.retain_for, l.logged_at
                          FROM retention.deletion_log l WHERE l.table_name = $1
                         ORDER BY l.row_key, l.id DESC)
                    SELECT * FROM last
                     WHERE logged_at >= $2
                       AND action IN ('hard_delete', 'erasure', 'soft_delete', 'anonymize')";

/// Acts again on the rows of `table` removed since `since` and present again; returns them.
pub fn reapply_table(
    client: &mut SpiClient,
    table: &Managed,
    since: TimestampWithTimeZone,
) -> Result<i64, RetentionError> {
    let mut total = 0;
    for group in groups(client, table, since)? {
        let act = match group.action {
            LogAction::SoftDelete => Act::SoftDelete,
            LogAction::Anonymize => Act::Anonymize,
            _ => Act::HardDelete,
        };
        if (act == Act::SoftDelete && table.soft_delete_column.is_none())
            || (act == Act::Anonymize && table.anonymize.is_empty())
        {
            continue;
        }
        if let Some(keys) = keys_of(client, table, since, &group)? {
            total += reapply_group(client, table, &group, act, keys)?;
        }
    }
    Ok(total)
}

/// The groups of rows to act on again.
fn groups(
    client: &SpiClient,
    table: &Managed,
    since: TimestampWithTimeZone,
) -> Result<Vec<Group>, RetentionError> {
    client
        .select(
            &format!("SELECT DISTINCT action, category, retain_for FROM ({LAST}) r"),
            None,
            &[table.display_name.as_str().into(), since.into()],
        )?
        .map(|r| {
            Ok(Group {
                action: r.get::<String>(1)?.unwrap_or_default().parse()?,
                category: r.get::<String>(2)?,
                retain_for: r.get::<Interval>(3)?,
            })
        })
        .collect()
}

/// The keys (a text[] of key texts) of one group's rows, None when it has none.
fn keys_of(
    client: &SpiClient,
    table: &Managed,
    since: TimestampWithTimeZone,
    group: &Group,
) -> Result<Option<pg_sys::Datum>, RetentionError> {
    Ok(client
        .select(
            &format!(
                "SELECT array_agg({}) FROM ({LAST}) r
                  WHERE r.action = $3 AND r.category IS NOT DISTINCT FROM $4
                    AND r.retain_for IS NOT DISTINCT FROM $5",
                table.key_from_json_sql("r.row_key")
            ),
            Some(1),
            &[
                table.display_name.as_str().into(),
                since.into(),
                group.action.as_str().into(),
                group.category.as_deref().into(),
                group.retain_for.into(),
            ],
        )?
        .first()
        .get_datum_by_ordinal(1)?)
}

/// Acts as `act` on the present, unheld rows among `keys`, logged with reason `reapplied`.
fn reapply_group(
    client: &mut SpiClient,
    table: &Managed,
    group: &Group,
    act: Act,
    keys: pg_sys::Datum,
) -> Result<i64, RetentionError> {
    let mut params = Params::default();
    params.bind(unsafe { DatumWithOid::new(keys, pg_sys::TEXTARRAYOID) });
    let mut conditions = vec![key_match_sql(client, table, 1)?];
    conditions.push(crate::engine::keeping::unheld_sql(
        client,
        table,
        &mut params,
    )?);
    if act == Act::SoftDelete {
        let soft = quote_identifier(table.soft_delete_column.as_deref().unwrap_or_default());
        conditions.push(format!("t.{soft} IS NULL"));
    }
    if act == Act::Anonymize {
        conditions.push(crate::engine::acting::not_anonymized_in_sql(
            client,
            table,
            None,
            &mut params,
        )?);
    }
    let due = crate::engine::acting::lock_all(
        client,
        table,
        RowSet::of(table).filters(conditions),
        &params,
    )?;
    let acting = Acting::new(
        act,
        &due,
        Batch {
            action: group.action,
            table_name: &table.display_name,
            reason: reason::REAPPLIED,
            run_id: None,
            reason_of_soft_delete: false,
            approval_id: None,
        },
    )
    .under(group.category.as_deref(), group.retain_for);
    Ok(crate::engine::cascade::act_and_log(client, table, &acting, &mut params)?.rows)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn deleted_rows_that_come_back_are_deleted_again() {
        seed(400);
        Spi::run("SELECT * FROM retention.run()").unwrap();
        let deleted = int("SELECT count(*) FROM retention.deletion_log");
        assert!(deleted > 0);
        // A restore brings two of them back (and one row under hold).
        Spi::run(
            "INSERT INTO conversations (id, tenant, subject, created_at, body)
             VALUES (400, 't1', 's0', now() - interval '400 days', 'back'),
                    (399, 't0', 's4', now() - interval '399 days', 'back'),
                    (398, 't2', 's3', now() - interval '398 days', 'back');
             SELECT retention.place_hold('case', tenant => 't2', notify => false);",
        )
        .unwrap();
        assert_eq!(
            int("SELECT retention.reapply_deletions(now() - interval '1 hour')"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM conversations WHERE id IN (398, 399, 400)"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM retention.deletion_log WHERE reason = 'reapplied' AND action = 'hard_delete' AND category = 'conversations'"), 2);
        assert_eq!(
            int("SELECT retention.reapply_deletions(now() - interval '1 hour')"),
            0
        );
        assert_eq!(
            sqlstate("SELECT retention.reapply_deletions(NULL)"),
            "22004"
        );
    }
}
