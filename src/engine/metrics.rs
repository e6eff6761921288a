//! `retention.metrics()`: per managed table, the counters and gauges a Prometheus exporter
//! scrapes (`postgres_exporter`, with the queries in `monitoring/postgres_exporter.yml`). The
//! counters come from the deletion log (so they only grow while the log keeps its entries), the
//! gauges from the policy's due rows now (the same count as `preview()`), the run history and
//! the holds.

use crate::engine::managed::Managed;
use crate::engine::purge::{self, Step};
use crate::error::RetentionError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// One table's line.
pub type Line = (
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<f64>,
    Option<TimestampWithTimeZone>,
    i64,
    Option<String>,
);

/// Due rows of one table now: acted on next, held back, and the longest overdue (seconds).
#[derive(Default)]
pub struct Due {
    backlog: i64,
    held_back: i64,
    overdue_seconds: Option<f64>,
}

/// The table's due rows now, over every step of its policy.
pub fn due_now(client: &mut SpiClient, table: &Managed) -> Result<Due, RetentionError> {
    let mut due = Due::default();
    for step in crate::engine::purge::table_steps(client, table, crate::engine::period::zero())? {
        for line in purge::preview(client, table, &step, crate::engine::period::zero())? {
            if line.held_by.is_some() {
                due.held_back += line.rows;
                continue;
            }
            due.backlog += line.rows;
            let overdue = overdue_seconds(client, &step, line.oldest)?;
            if overdue > due.overdue_seconds {
                due.overdue_seconds = overdue;
            }
        }
    }
    Ok(due)
}

/// Seconds since the oldest of a step's due rows became due.
fn overdue_seconds(
    client: &SpiClient,
    step: &Step,
    oldest: Option<TimestampWithTimeZone>,
) -> Result<Option<f64>, RetentionError> {
    let Some(oldest) = oldest else {
        return Ok(None);
    };
    Ok(client
        .select(
            "SELECT greatest(extract(epoch FROM now() - ($1 + $2)), 0)::float8",
            Some(1),
            &[oldest.into(), step.due_after().into()],
        )?
        .first()
        .get_one::<f64>()?)
}

/// The table's counters from the log and its runs, with `due`.
pub fn line(client: &SpiClient, table: &Managed, due: Due) -> Result<Line, RetentionError> {
    let row = client
        .select(
            "SELECT count(*) FILTER (WHERE l.action IN ('hard_delete', 'erasure')),
                    count(*) FILTER (WHERE l.action = 'soft_delete'),
                    count(*) FILTER (WHERE l.action = 'anonymize'),
                    count(*) FILTER (WHERE l.action = 'restore'),
                    (SELECT max(r.finished_at) FROM retention.runs r,
                            jsonb_array_elements(r.details) d
                      WHERE d ->> 'table' = $1 AND d ->> 'error' IS NULL
                        AND r.finished_at IS NOT NULL),
                    (SELECT count(*) FROM retention.runs r, jsonb_array_elements(r.details) d
                      WHERE d ->> 'table' = $1 AND d ->> 'error' IS NOT NULL
                        AND r.started_at > now() - interval '1 day'),
                    (SELECT d ->> 'error' FROM retention.runs r, jsonb_array_elements(r.details) d
                      WHERE d ->> 'table' = $1 ORDER BY r.id DESC LIMIT 1)
               FROM retention.deletion_log l WHERE l.table_name = $1",
            Some(1),
            &[table.display_name.as_str().into()],
        )?
        .first();
    let count = |i: usize| -> Result<i64, RetentionError> { Ok(row.get::<i64>(i)?.unwrap_or(0)) };
    Ok((
        table.display_name.clone(),
        count(1)?,
        count(2)?,
        count(3)?,
        count(4)?,
        due.backlog,
        due.held_back,
        due.overdue_seconds,
        row.get::<TimestampWithTimeZone>(5)?,
        count(6)?,
        row.get::<String>(7)?,
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed};
    use pgrx::prelude::*;

    #[pg_test]
    fn metrics_count_the_log_and_the_due_rows() {
        seed(800);
        let due =
            int("SELECT count(*) FROM conversations WHERE created_at <= now() - interval '1 year'");
        let held = int("SELECT count(*) FROM conversations WHERE tenant = 't1'
                          AND created_at <= now() - interval '1 year'");
        Spi::run("SELECT retention.place_hold('case', tenant => 't1', notify => false)").unwrap();
        let metric = |column: &str| {
            int(&format!(
                "SELECT {column}::bigint FROM retention.metrics() WHERE table_name = 'public.conversations'"
            ))
        };
        assert_eq!(metric("backlog_rows"), due - held);
        assert_eq!(metric("held_back_rows"), held);
        // The oldest due row is 800 days old: due for 800 days less a year.
        assert_eq!(
            metric("round(oldest_overdue_seconds)"),
            int("SELECT round(extract(epoch FROM now() - (now() - interval '800 days' + interval '1 year')))::bigint")
        );
        assert_eq!(metric("rows_deleted"), 0);
        Spi::run("SELECT * FROM retention.run()").unwrap();
        assert_eq!(metric("rows_deleted"), due - held);
        assert_eq!(metric("backlog_rows"), 0);
        assert_eq!(metric("(oldest_overdue_seconds IS NULL)::int"), 1);
        assert_eq!(metric("(last_success IS NOT NULL)::int"), 1);
        assert_eq!(metric("failed_runs_24h"), 0);
    }
}
