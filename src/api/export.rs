//! The SQL surface of export (engine/export.rs).

use crate::engine::export::*;
use crate::engine::managed::Managed;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn request_export(
    subject: Option<&str>,
    received_at: default!(Option<TimestampWithTimeZone>, "now()"),
    tenant: default!(Option<&str>, "NULL"),
    external_id: default!(Option<&str>, "NULL"),
) -> SqlResult<i64> {
    crate::pg::preconditions::require_primary("retention.request_export()")?;
    let subject = required(subject, "subject")?;
    let received_at = required(received_at, "received_at")?;
    for (name, value) in [
        ("subject", Some(subject)),
        ("tenant", tenant),
        ("external_id", external_id),
    ] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(RetentionError::InvalidValue(format!("{name} must not be empty")).into());
        }
    }
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            crate::engine::erasure::check_received(client, received_at)?;
            if let Some(external_id) = external_id {
                if let Some(id) = existing(client, external_id, subject, tenant)? {
                    return Ok(id);
                }
            }
            Ok(client
                .update(
                    "INSERT INTO retention.export_records
                     (subject, tenant, external_id, received_at, due_at, requested_by)
                     VALUES ($1, $2, $3, $4, $4 + $6::interval, $5) RETURNING id",
                    None,
                    &[
                        subject.into(),
                        tenant.into(),
                        external_id.into(),
                        received_at.into(),
                        crate::pg::identity::caller_name().into(),
                        crate::engine::period::REQUEST_DEADLINE.into(),
                    ],
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or_default())
        })
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn verify_export(request_id: Option<i64>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.verify_export()")?;
    let id = required(request_id, "request_id")?;
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let status = status_of(client, id)?;
            if status != "pending" {
                return Err(RetentionError::ExportNotInState(id, status, "pending"));
            }
            client.update(
                "UPDATE retention.export_records
                    SET status = 'verified', verified_at = now(), verified_by = $2
                  WHERE id = $1",
                None,
                &[id.into(), crate::pg::identity::caller_name().into()],
            )?;
            Ok(())
        })
    })?)
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn export_data(
    request_id: Option<i64>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(row_key, JsonB),
            name!(data, JsonB),
        ),
    >,
    ErrorReport,
> {
    crate::pg::preconditions::require_primary("retention.export_data()")?;
    let id = required(request_id, "request_id")?;
    let (scope, tables) = crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<_, RetentionError> {
            let status = status_of(client, id)?;
            if status == "pending" {
                return Err(RetentionError::ExportNotInState(id, status, "verified"));
            }
            let row = client
                .select(
                    "SELECT subject, tenant FROM retention.export_records WHERE id = $1",
                    Some(1),
                    &[id.into()],
                )?
                .first();
            let scope = Scope {
                subject: row.get::<String>(1)?,
                tenant: row.get::<String>(2)?,
            };
            Ok((scope, Managed::load_all(client)?))
        })
    })?;
    let rows = read_as_caller(&tables, &scope)?;
    record(Some(id), None, &rows)?;
    Ok(TableIterator::new(rows))
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn export_tenant(
    tenant: Option<&str>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(row_key, JsonB),
            name!(data, JsonB),
        ),
    >,
    ErrorReport,
> {
    crate::pg::preconditions::require_primary("retention.export_tenant()")?;
    let tenant = required(tenant, "tenant")?;
    if tenant.trim().is_empty() {
        return Err(RetentionError::InvalidValue("tenant must not be empty".into()).into());
    }
    let tables = crate::pg::identity::as_extension(|| Spi::connect(Managed::load_all))?;
    let scope = Scope {
        subject: None,
        tenant: Some(tenant.into()),
    };
    let rows = read_as_caller(&tables, &scope)?;
    record(None, Some(tenant), &rows)?;
    Ok(TableIterator::new(rows))
}
