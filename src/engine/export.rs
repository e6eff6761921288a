//! Export requests (GDPR Art. 15 access, Art. 20 portability), the twin of erasure requests:
//! `retention.request_export`, `retention.verify_export`, `retention.export_data`; and a
//! customer's data before its termination's deletion, `retention.export_tenant`.
//!
//! Who reads the data is the caller. The extension gives nobody rights on application tables:
//! both exports read each table as the calling role, and refuse (`42501`) a table the caller
//! cannot read whole (no `SELECT`, or row-level security hiding rows from it), because a
//! partial export would look complete. Every delivery is recorded in
//! `retention.export_deliveries` (who, when, rows per table), never the content.

use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::JsonB;

/// One exported row: its table, its primary key and its content, as `to_jsonb` of the row.
type Exported = (String, JsonB, JsonB);

/// Which rows an export reads: those whose subject (or tenant) column has this value.
pub struct Scope {
    pub subject: Option<String>,
    pub tenant: Option<String>,
}

/// The request a DSAR platform already submitted under `external_id` (submitting again is
/// idempotent); an error when that id names another subject or tenant.
pub fn existing(
    client: &SpiClient,
    external_id: &str,
    subject: &str,
    tenant: Option<&str>,
) -> Result<Option<i64>, RetentionError> {
    let found = client
        .select(
            "SELECT id, subject = $2 AND tenant IS NOT DISTINCT FROM $3
               FROM retention.export_records WHERE external_id = $1",
            Some(1),
            &[external_id.into(), subject.into(), tenant.into()],
        )?
        .next()
        .map(|r| -> Result<_, RetentionError> { Ok((r.get::<i64>(1)?, r.get::<bool>(2)?)) })
        .transpose()?;
    match found {
        None => Ok(None),
        Some((id, Some(true))) => Ok(id),
        Some(_) => Err(RetentionError::ExternalIdInUse(external_id.into())),
    }
}

/// The status of export request `id`, its row locked.
pub fn status_of(client: &mut SpiClient, id: i64) -> Result<String, RetentionError> {
    client
        .update(
            "SELECT status FROM retention.export_records WHERE id = $1 FOR UPDATE",
            Some(1),
            &[id.into()],
        )?
        .next()
        .ok_or(RetentionError::UnknownExportRequest(id))?
        .get::<String>(1)?
        .ok_or(RetentionError::UnknownExportRequest(id))
}

/// The rows of `scope` in every managed table that has its columns, read as the calling role.
pub fn read_as_caller(tables: &[Managed], scope: &Scope) -> Result<Vec<Exported>, RetentionError> {
    Spi::connect(|client| {
        let mut rows = Vec::new();
        for table in tables {
            let Some(sql) = select_sql(table, scope) else {
                continue;
            };
            check_readable(client, table)?;
            let mut params = Params::default();
            for value in [&scope.subject, &scope.tenant].into_iter().flatten() {
                params.bind(value.as_str());
            }
            for row in client.select(&sql, None, params.args())? {
                rows.push((
                    table.display_name.clone(),
                    row.get::<JsonB>(1)?
                        .unwrap_or(JsonB(serde_json::Value::Null)),
                    row.get::<JsonB>(2)?
                        .unwrap_or(JsonB(serde_json::Value::Null)),
                ));
            }
        }
        Ok(rows)
    })
}

/// The statement reading `scope`'s rows of `table` (its subject, then tenant, as `$1`, `$2`),
/// or None when the table lacks a column the scope needs.
fn select_sql(table: &Managed, scope: &Scope) -> Option<String> {
    let mut conditions = Vec::new();
    for (value, column) in [
        (&scope.subject, &table.subject_column),
        (&scope.tenant, &table.tenant_column),
    ] {
        if value.is_some() {
            let column = column.as_ref()?;
            conditions.push(format!(
                "t.{}::text = ${}",
                quote_identifier(column),
                conditions.len() + 1
            ));
        }
    }
    let order: Vec<String> = table
        .key_columns
        .iter()
        .map(|c| format!("t.{}", quote_identifier(c)))
        .collect();
    Some(
        RowSet::of(table)
            .filters(conditions)
            .order_by(Some(order.join(", ")))
            .select(&format!("{}, to_jsonb(t)", table.key_json_sql())),
    )
}

/// Refuses a table the caller cannot read whole: an export must be complete.
fn check_readable(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    let row = client
        .select(
            "SELECT has_table_privilege($1::oid, 'SELECT'), row_security_active($1::oid)",
            Some(1),
            &[table.oid.into()],
        )?
        .first();
    if !row.get::<bool>(1)?.unwrap_or(false) {
        return Err(RetentionError::InsufficientPrivilege(format!(
            "exporting needs SELECT on {}",
            table.display_name
        )));
    }
    if row.get::<bool>(2)?.unwrap_or(true) {
        return Err(RetentionError::InsufficientPrivilege(format!(
            "row-level security hides rows of {} from this role: an export must be complete \
             (export as the table's owner or a role with BYPASSRLS)",
            table.display_name
        )));
    }
    Ok(())
}

/// Records a delivery (rows per table, never the content) and completes the request.
pub fn record(
    request: Option<i64>,
    tenant: Option<&str>,
    rows: &[Exported],
) -> Result<(), RetentionError> {
    let mut counts = serde_json::Map::new();
    for (table, _, _) in rows {
        let n = counts.entry(table.clone()).or_insert(serde_json::json!(0));
        *n = serde_json::json!(n.as_i64().unwrap_or(0) + 1);
    }
    crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            client.update(
                "INSERT INTO retention.export_deliveries (request_id, tenant, delivered_by, rows)
                 VALUES ($1, $2, $3, $4)",
                None,
                &[
                    request.into(),
                    tenant.into(),
                    crate::pg::identity::caller_name().into(),
                    JsonB(serde_json::Value::Object(counts)).into(),
                ],
            )?;
            client.update(
                "UPDATE retention.export_records
                    SET status = 'completed', completed_at = coalesce(completed_at, now())
                  WHERE id = $1",
                None,
                &[request.into()],
            )?;
            Ok(())
        })
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, seed, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn an_export_returns_exactly_the_subjects_rows_held_ones_included() {
        seed(30);
        Spi::run("SELECT retention.place_hold('case', tenant => 't1', notify => false)").unwrap();
        let id = int("SELECT retention.request_export('s2', tenant => 't1')");
        assert_eq!(
            sqlstate(&format!("SELECT * FROM retention.export_data({id})")),
            "55000"
        );
        Spi::run(&format!("SELECT retention.verify_export({id})")).unwrap();
        // s2 at t1: ids ≡ 2 (mod 5) and ≡ 1 (mod 3), under the hold: 7, 22.
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.export_data({id})
                  WHERE table_name = 'public.conversations'
                    AND (row_key->>'id')::int IN (7, 22) AND data->>'body' = 'secret'"
            )),
            2
        );
        assert_eq!(
            int(&format!("SELECT count(*) FROM retention.export_data({id})")),
            2
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.export_requests WHERE id = {id}
                                   AND status = 'completed' AND NOT overdue"
            )),
            1
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.export_deliveries
                                  WHERE request_id = {id}
                                    AND rows = '{{\"public.conversations\": 2}}'"
            )),
            2
        );
        // Every tenant, for a request without one.
        let all = int("SELECT retention.request_export('s2', external_id => 'dsar-1')");
        assert_eq!(
            int("SELECT retention.request_export('s2', external_id => 'dsar-1')"),
            all
        );
        assert_eq!(
            sqlstate("SELECT retention.request_export('s3', external_id => 'dsar-1')"),
            "23505"
        );
        Spi::run(&format!("SELECT retention.verify_export({all})")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT retention.verify_export({all})")),
            "55000"
        );
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.export_data({all})"
            )),
            6
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.export_tenant('t0')"),
            int("SELECT count(*) FROM conversations WHERE tenant = 't0'")
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.export_deliveries WHERE tenant = 't0'"),
            1
        );
        assert_eq!(sqlstate("SELECT retention.verify_export(424242)"), "42704");
        assert_eq!(sqlstate("SELECT retention.request_export('')"), "22023");
        assert_eq!(sqlstate("SELECT retention.export_tenant(NULL)"), "22004");
    }

    #[pg_test]
    fn an_export_never_reads_what_the_caller_cannot() {
        seed(10);
        Spi::run(
            "CREATE ROLE dsar_clerk;
             SELECT retention.grant_policy_admin('dsar_clerk');
             ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;",
        )
        .unwrap();
        let id = int("SELECT retention.request_export('s1')");
        Spi::run(&format!("SELECT retention.verify_export({id})")).unwrap();
        Spi::run("SET LOCAL ROLE dsar_clerk").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT * FROM retention.export_data({id})")),
            "42501"
        );
        Spi::run("RESET ROLE").unwrap();
        Spi::run("GRANT SELECT ON conversations TO dsar_clerk").unwrap();
        Spi::run("SET LOCAL ROLE dsar_clerk").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT * FROM retention.export_data({id})")),
            "42501",
            "row-level security would hide rows"
        );
        Spi::run("RESET ROLE").unwrap();
        Spi::run("ALTER TABLE conversations DISABLE ROW LEVEL SECURITY").unwrap();
        Spi::run("SET LOCAL ROLE dsar_clerk").unwrap();
        assert_eq!(
            int(&format!("SELECT count(*) FROM retention.export_data({id})")),
            2
        );
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM retention.export_deliveries
                                  WHERE request_id = {id} AND delivered_by = 'dsar_clerk'"
            )),
            1
        );
    }
}
