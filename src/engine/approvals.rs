//! Approved disposition batches (disposition.rs): what the purge may expire of a reviewed
//! category, batch by batch, and the conditions that narrow a step to one batch's rows.

use crate::engine::managed::Managed;
use crate::engine::policy::Segment;
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// An approved batch whose rows are still to be disposed of.
#[derive(Debug, Clone)]
pub struct Approved {
    pub id: i64,
    pub category: String,
    pub tenant: Option<String>,
    pub due_day: Date,
    /// When it was approved: rows due later are not part of what the reviewer saw.
    pub decided_at: TimestampWithTimeZone,
}

/// The approved, open batches of `table`.
pub fn approved(client: &SpiClient, table: &Managed) -> Result<Vec<Approved>, RetentionError> {
    if !crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
        return Ok(Vec::new());
    }
    client
        .select(
            "SELECT id, category, tenant, due_day, decided_at FROM retention.disposition_batches
              WHERE tbl = $1 AND status = 'approved' AND closed_at IS NULL
              ORDER BY due_day, id",
            None,
            &[table.oid.into()],
        )?
        .map(|row| {
            Ok(Approved {
                id: row.get::<i64>(1)?.unwrap_or_default(),
                category: row.get::<String>(2)?.unwrap_or_default(),
                tenant: row.get::<String>(3)?,
                due_day: row
                    .get::<Date>(4)?
                    .ok_or(RetentionError::NullArgument("due_day"))?,
                decided_at: row
                    .get::<TimestampWithTimeZone>(5)?
                    .ok_or(RetentionError::NullArgument("decided_at"))?,
            })
        })
        .collect()
}

impl Approved {
    /// Whether this batch is of `segment`'s category and in its tenant scope.
    pub fn in_segment(&self, segment: &Segment) -> bool {
        self.category == segment.category.name && segment.tenant.includes(self.tenant.as_deref())
    }

    /// Conditions (over row alias `t`) narrowing `segment`'s rows to this batch's tenant and
    /// due day, and to rows due when it was approved.
    pub fn conditions(
        &self,
        table: &Managed,
        segment: &Segment,
        params: &mut Params,
    ) -> Vec<String> {
        let mut conditions = vec![
            format!(
                "{} = {}::date",
                segment.due_day_sql(params),
                params.bind(self.due_day)
            ),
            format!(
                "{} <= {}::timestamptz",
                segment.due_at_sql(params),
                params.bind(self.decided_at)
            ),
        ];
        if let Some(column) = &table.tenant_column {
            let c = quote_identifier(column);
            conditions.push(match &self.tenant {
                Some(tenant) => format!("t.{c}::text = {}", params.bind(tenant.as_str())),
                None => format!("t.{c} IS NULL"),
            });
        }
        conditions
    }
}
