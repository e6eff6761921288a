//! `retention.reapply_deletions(since)`: after a restore from a backup taken before some
//! deletions, deletes (soft-deletes, anonymizes) again every row whose last deletion-log entry
//! since `since` says it was removed or anonymized and that is present again (as it was),
//! holds honoured, logged with reason `reapplied`. The log is the source of truth; backups roll off on their own schedule.

use crate::deletion_log::Batch;
use crate::error::{required, RetentionError, SqlResult};
use crate::holds::{self, take_lock, LockKey};
use crate::managed::Managed;
use crate::params::Params;
use crate::purge::{self, Act};
use crate::runs::check_can_purge;
use crate::tagging::key_match_sql;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// One group of rows to act on again: same action, category and period.
struct Group {
    action: String,
    category: Option<String>,
    retain_for: Option<Interval>,
}

fn reapply_table(
    client: &mut SpiClient,
    table: &Managed,
    since: TimestampWithTimeZone,
) -> Result<i64, RetentionError> {
    // The last entry of each key of this table; those since `since` that removed the row.
    let last = "WITH last AS (
                    SELECT DISTINCT ON (l.row_key) l.row_key, l.action, l.category, l.retain_for, l.logged_at
                      FROM retention.deletion_log l WHERE l.table_name = $1
                     ORDER BY l.row_key, l.id DESC)
                SELECT * FROM last
                 WHERE logged_at >= $2
                   AND action IN ('hard_delete', 'erasure', 'soft_delete', 'anonymize')";
    let groups: Vec<Group> = client
        .select(
            &format!("SELECT DISTINCT action, category, retain_for FROM ({last}) r"),
            None,
            &[table.display_name.as_str().into(), since.into()],
        )?
        .map(|r| {
            Ok(Group {
                action: r.get::<String>(1)?.unwrap_or_default(),
                category: r.get::<String>(2)?,
                retain_for: r.get::<Interval>(3)?,
            })
        })
        .collect::<Result<_, RetentionError>>()?;
    let mut total = 0;
    for group in groups {
        let act = match group.action.as_str() {
            "soft_delete" => Act::SoftDelete,
            "anonymize" => Act::Anonymize,
            _ => Act::HardDelete,
        };
        if (act == Act::SoftDelete && table.soft_delete_column.is_none())
            || (act == Act::Anonymize && table.anonymize.is_empty())
        {
            continue;
        }
        let keys = client
            .select(
                &format!(
                    "SELECT array_agg({}) FROM ({last}) r
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
            .get_datum_by_ordinal(1)?;
        let Some(keys) = keys else { continue };
        let mut params = Params::default();
        params.bind(unsafe { DatumWithOid::new(keys, pg_sys::TEXTARRAYOID) });
        let mut conditions = vec![key_match_sql(client, table, 1)?];
        conditions.push(holds::unheld_sql(client, table, &mut params)?);
        if act == Act::SoftDelete {
            let soft = quote_identifier(table.soft_delete_column.as_deref().unwrap_or_default());
            conditions.push(format!("t.{soft} IS NULL"));
        }
        if act == Act::Anonymize {
            conditions.push(purge::not_anonymized_sql(table, &mut params));
        }
        let due = purge::lock_all(client, table, &conditions, &params)?;
        total += purge::act_and_log(
            client,
            table,
            act,
            &due,
            &mut params,
            &Batch {
                action: &group.action,
                table_name: &table.display_name,
                reason: "reapplied",
                run_id: None,
                reason_of_soft_delete: false,
                approval_id: None,
            },
            group.category.as_deref(),
            group.retain_for,
        )?;
    }
    Ok(total)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reapply_deletions(since: Option<TimestampWithTimeZone>) -> SqlResult<i64> {
    let since = required(since, "since")?;
    check_can_purge()?;
    Ok(crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            let future = client
                .select("SELECT $1 > pg_catalog.now()", Some(1), &[since.into()])?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            if future {
                return Err(RetentionError::InvalidValue(
                    "since must not be in the future".into(),
                ));
            }
            // One purger at a time, as run(): its anonymizations must not race the worker's.
            take_lock(LockKey::Purger, true)?;
            let mut total = 0;
            for table in Managed::load_all(client)? {
                total += reapply_table(client, &table, since)?;
            }
            Ok(total)
        })
    })?)
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
