//! The policy in force for a managed table, cut into segments: one per category and tenant
//! override, each with a single retention period. Inside a segment a row is due when its clock
//! column is at or before `now - retain_for` (an index range scan on the clock column); for an
//! event clock, when the tenant's event is at least `retain_for` old. Tenant overrides come
//! first, then the category default (invariant 3).

use crate::engine::catalog::{Category, Clock};
use crate::engine::managed::Managed;
use crate::engine::windows::Windows;
use crate::error::RetentionError;
use crate::pg::params::Params;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use std::collections::BTreeMap;

/// Which tenants' rows a segment covers.
#[derive(Debug, Clone)]
pub enum TenantScope {
    All,
    Only(String),
    AllExcept(Vec<String>),
}

impl TenantScope {
    /// Whether a row of `tenant` (None: no tenant) is in the scope.
    pub fn includes(&self, tenant: Option<&str>) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(only) => tenant == Some(only.as_str()),
            TenantScope::AllExcept(except) => tenant.is_none_or(|t| !except.iter().any(|e| e == t)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub category: Category,
    /// Whether this is the table's default category (untagged rows belong to it).
    pub is_default: bool,
    pub tenant: TenantScope,
    /// The clock column; None for an event clock whose event is due.
    pub clock_column: Option<String>,
    pub retain_for: Interval,
    /// The soft-delete windows in force (tenant override over category).
    pub windows: Windows,
    /// For an event clock: when the tenant's event occurred.
    pub event_at: Option<TimestampWithTimeZone>,
}

/// A tenant override of one category.
#[derive(Debug, Clone)]
pub struct Override {
    pub tenant: String,
    pub retain_for: Interval,
    /// The override's own windows (unset paths fall back to the category's).
    pub windows: Windows,
}

/// Tenant overrides, by category.
pub fn overrides(client: &SpiClient) -> Result<BTreeMap<String, Vec<Override>>, RetentionError> {
    let mut map: BTreeMap<String, Vec<Override>> = BTreeMap::new();
    let windows = if crate::pg::schema_version::at_least(crate::pg::schema_version::GOVERNANCE)? {
        "window_expired, window_customer_request"
    } else {
        "NULL::interval, NULL::interval"
    };
    let rows = client.select(
        &format!(
            "SELECT category, tenant, retain_for, soft_delete_window, {windows}
               FROM retention.tenant_policies ORDER BY category, tenant"
        ),
        None,
        &[],
    )?;
    for row in rows {
        map.entry(row.get::<String>(1)?.unwrap_or_default())
            .or_default()
            .push(Override {
                tenant: row.get::<String>(2)?.unwrap_or_default(),
                retain_for: row
                    .get::<Interval>(3)?
                    .unwrap_or_else(crate::engine::period::zero),
                windows: Windows {
                    any: row.get::<Interval>(4)?,
                    expired: row.get::<Interval>(5)?,
                    customer_request: row.get::<Interval>(6)?,
                },
            });
    }
    Ok(map)
}

/// The period (and windows) in force for a tenant's row of a category.
pub fn in_force(
    category: &Category,
    tenant: Option<&str>,
    overrides: &BTreeMap<String, Vec<Override>>,
) -> (Interval, Windows) {
    let found = tenant.and_then(|t| {
        overrides
            .get(&category.name)
            .and_then(|list| list.iter().find(|o| o.tenant == t))
    });
    match found {
        Some(o) => (o.retain_for, o.windows.over(&category.windows)),
        None => (category.retain_for, category.windows),
    }
}

/// The segments of a table's policy. `horizon` moves "now" forward (for previews).
pub fn segments(
    client: &SpiClient,
    table: &Managed,
    categories: &[Category],
    overrides: &BTreeMap<String, Vec<Override>>,
    horizon: Interval,
) -> Result<Vec<Segment>, RetentionError> {
    let mut out = Vec::new();
    for category in categories {
        let is_default = category.name == table.category;
        if !is_default && table.category_column.is_none() {
            continue;
        }
        match category.clock {
            Clock::Created | Clock::LastActivity => {
                let tenant_overrides: &[Override] =
                    match (&table.tenant_column, overrides.get(&category.name)) {
                        (Some(_), Some(list)) => list,
                        _ => &[],
                    };
                if let Some(column) = table.clock_column(category) {
                    out.extend(column_segments(
                        category,
                        is_default,
                        column,
                        tenant_overrides,
                    ));
                }
            }
            Clock::Event if table.tenant_column.is_some() => {
                let due = EventSegments {
                    category,
                    is_default,
                    overrides,
                    horizon,
                };
                out.extend(due.read(client)?);
            }
            Clock::Event | Clock::Parent => {}
        }
    }
    Ok(out)
}

/// The segments of a category whose clock is a column: its tenants with an override each
/// alone, every other tenant together.
fn column_segments(
    category: &Category,
    is_default: bool,
    column: &str,
    tenant_overrides: &[Override],
) -> Vec<Segment> {
    let excluded: Vec<String> = tenant_overrides.iter().map(|o| o.tenant.clone()).collect();
    let segment = |tenant, retain_for, windows| Segment {
        category: category.clone(),
        is_default,
        tenant,
        clock_column: Some(column.to_string()),
        retain_for,
        windows,
        event_at: None,
    };
    let everyone = if excluded.is_empty() {
        TenantScope::All
    } else {
        TenantScope::AllExcept(excluded)
    };
    std::iter::once(segment(everyone, category.retain_for, category.windows))
        .chain(tenant_overrides.iter().map(|o| {
            segment(
                TenantScope::Only(o.tenant.clone()),
                o.retain_for,
                o.windows.over(&category.windows),
            )
        }))
        .collect()
}

/// The segments of an event-clocked category: one per tenant whose event is past the period
/// in force for it, at `now() + horizon`.
struct EventSegments<'a> {
    category: &'a Category,
    is_default: bool,
    overrides: &'a BTreeMap<String, Vec<Override>>,
    horizon: Interval,
}

impl EventSegments<'_> {
    fn read(&self, client: &SpiClient) -> Result<Vec<Segment>, RetentionError> {
        let events = client.select(
            "SELECT tenant, occurred_at FROM retention.tenant_events WHERE event = $1
              ORDER BY tenant",
            None,
            &[self.category.event.as_deref().into()],
        )?;
        let mut out = Vec::new();
        for event in events {
            let tenant = event.get::<String>(1)?.unwrap_or_default();
            let occurred = event.get::<TimestampWithTimeZone>(2)?;
            let (retain_for, windows) = in_force(self.category, Some(&tenant), self.overrides);
            let due = client
                .select(
                    "SELECT $1 + $2 <= now() + $3",
                    Some(1),
                    &[occurred.into(), retain_for.into(), self.horizon.into()],
                )?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            if due {
                out.push(Segment {
                    category: self.category.clone(),
                    is_default: self.is_default,
                    tenant: TenantScope::Only(tenant),
                    clock_column: None,
                    retain_for,
                    windows,
                    event_at: occurred,
                });
            }
        }
        Ok(out)
    }
}

/// Segments whose soft-deleted rows are finished (hard-deleted) once the recovery window has
/// passed: every category with a window, whatever its clock says (a customer can soft-delete a
/// row long before it is due).
pub fn window_segments(
    table: &Managed,
    categories: &[Category],
    overrides: &BTreeMap<String, Vec<Override>>,
) -> Vec<Segment> {
    let mut out = Vec::new();
    if table.soft_delete_column.is_none() {
        return out;
    }
    for category in categories {
        let is_default = category.name == table.category;
        if (!is_default && table.category_column.is_none()) || category.clock == Clock::Parent {
            continue;
        }
        let tenant_overrides: &[Override] =
            match (&table.tenant_column, overrides.get(&category.name)) {
                (Some(_), Some(list)) => list,
                _ => &[],
            };
        let excluded: Vec<String> = tenant_overrides.iter().map(|o| o.tenant.clone()).collect();
        let mut push = |tenant: TenantScope, retain_for: Interval, windows: Windows| {
            if windows.any_path() {
                out.push(Segment {
                    category: category.clone(),
                    is_default,
                    tenant,
                    clock_column: None,
                    retain_for,
                    windows,
                    event_at: None,
                });
            }
        };
        push(
            if excluded.is_empty() {
                TenantScope::All
            } else {
                TenantScope::AllExcept(excluded)
            },
            category.retain_for,
            category.windows,
        );
        for o in tenant_overrides {
            push(
                TenantScope::Only(o.tenant.clone()),
                o.retain_for,
                o.windows.over(&category.windows),
            );
        }
    }
    out
}

impl Segment {
    /// Conditions (over row alias `t`) selecting this segment's rows, due or not.
    pub fn rows_sql(&self, table: &Managed, params: &mut Params) -> Vec<String> {
        let mut conditions = Vec::new();
        if let Some(column) = &table.category_column {
            let c = quote_identifier(column);
            let name = params.bind(self.category.name.as_str());
            conditions.push(if self.is_default {
                format!("(t.{c} IS NULL OR t.{c} = {name})")
            } else {
                format!("t.{c} = {name}")
            });
        }
        if let Some(column) = &table.tenant_column {
            let c = quote_identifier(column);
            match &self.tenant {
                TenantScope::All => {}
                TenantScope::Only(tenant) => {
                    conditions.push(format!("t.{c}::text = {}", params.bind(tenant.as_str())))
                }
                TenantScope::AllExcept(tenants) => conditions.push(format!(
                    "(t.{c} IS NULL OR t.{c}::text <> ALL({}::text[]))",
                    params.bind(tenants.clone())
                )),
            }
        }
        conditions
    }

    /// The condition that a row's clock has run out, at `now() + horizon`.
    pub fn due_sql(&self, horizon: Interval, params: &mut Params) -> Option<String> {
        let column = self.clock_column.as_ref()?;
        Some(format!(
            "t.{} <= now() + {}::interval - {}::interval",
            quote_identifier(column),
            params.bind(horizon),
            params.bind(self.retain_for)
        ))
    }

    /// SQL for the day (UTC) row `t` is or was due: its clock (or its tenant's event) plus the
    /// period in force. Disposition batches group due rows by it.
    pub fn due_day_sql(&self, params: &mut Params) -> String {
        format!("({} AT TIME ZONE 'UTC')::date", self.due_at_sql(params))
    }

    /// SQL for when row `t` is or was due: its clock (or its tenant's event) plus the period.
    pub fn due_at_sql(&self, params: &mut Params) -> String {
        let start = match (&self.clock_column, self.event_at) {
            (Some(column), _) => format!("t.{}::timestamptz", quote_identifier(column)),
            (None, at) => format!("{}::timestamptz", params.bind(at)),
        };
        format!("({start} + {}::interval)", params.bind(self.retain_for))
    }

    /// The row ordering that walks the clock index oldest first.
    pub fn order_sql(&self) -> Option<String> {
        self.clock_column
            .as_ref()
            .map(|c| format!("t.{}", quote_identifier(c)))
    }
}
