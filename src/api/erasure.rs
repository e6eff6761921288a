//! The SQL surface of erasure (engine/erasure.rs).

use crate::engine::erasure::*;
use crate::error::{required, RetentionError, SqlResult};
use pgrx::prelude::*;

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn request_erasure(
    subject: Option<&str>,
    received_at: default!(Option<TimestampWithTimeZone>, "now()"),
    tenant: default!(Option<&str>, "NULL"),
) -> SqlResult<i64> {
    crate::pg::preconditions::require_primary("retention.request_erasure()")?;
    let subject = required(subject, "subject")?;
    let received_at = required(received_at, "received_at")?;
    if subject.trim().is_empty() {
        return Err(RetentionError::InvalidValue("subject must not be empty".into()).into());
    }
    if tenant.is_some_and(|t| t.trim().is_empty()) {
        return Err(RetentionError::InvalidValue("tenant must not be empty".into()).into());
    }
    Ok(crate::pg::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<i64, RetentionError> {
            check_received(client, received_at)?;
            Ok(client
                .update(
                    "INSERT INTO retention.erasure_records
                     (subject, tenant, received_at, due_at, requested_by)
                 VALUES ($1, $2, $3, $3 + $5::interval, $4) RETURNING id",
                    None,
                    &[
                        subject.into(),
                        tenant.into(),
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
fn verify_erasure(request_id: Option<i64>) -> SqlResult<()> {
    crate::pg::preconditions::require_primary("retention.verify_erasure()")?;
    let id = required(request_id, "request_id")?;
    Ok(crate::pg::identity::as_extension(|| {
        verify_and_execute(id)
    })?)
}
