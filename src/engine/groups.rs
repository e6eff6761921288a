//! Acting on the rows a request names, group by group: rows of one category and one tenant
//! have one policy in force (period, soft-delete windows), so customer deletion and erasure
//! count each (category, tenant) group of the rows, then act on its unheld rows. The hold
//! predicate is read once per request and shared by every group's statement.

use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::executor;
use crate::pg::params::Params;
use pgrx::spi::SpiClient;

/// The rows of one category and one tenant among those a request names.
pub struct Group {
    pub category: String,
    pub tenant: Option<String>,
    /// Rows a hold keeps (on themselves or on a parent-bound descendant).
    pub held: i64,
    pub rows: i64,
}

/// The rows a request names, with the hold predicate read for them.
pub struct Named {
    pub rows: RowSet,
    /// SQL over `t`: true when a hold keeps the row (`false` when none can).
    pub covered: String,
}

impl Named {
    /// `rows`, under the holds in force now (the shared hold lock taken, see holds.rs).
    pub fn new(
        client: &mut SpiClient,
        table: &Managed,
        rows: RowSet,
        params: &mut Params,
    ) -> Result<Named, RetentionError> {
        let covered = crate::engine::keeping::covered_sql(client, table, params)?
            .unwrap_or_else(|| "false".into());
        Ok(Named { rows, covered })
    }

    /// The rows a hold keeps.
    pub fn held(&self) -> RowSet {
        self.rows.clone().filter(self.covered.clone())
    }

    /// The (category, tenant) groups of the rows, read with a fresh snapshot.
    pub fn groups(
        &self,
        client: &mut SpiClient,
        table: &Managed,
        params: &mut Params,
    ) -> Result<Vec<Group>, RetentionError> {
        let category = table.category_sql(params);
        let columns = format!(
            "{category}, {}, count(*) FILTER (WHERE {}), count(*)",
            table.tenant_text_sql(),
            self.covered
        );
        let sql = self.rows.grouped(&columns, "1, 2");
        executor::update(client, table, &sql, params.args())?
            .map(|r| {
                Ok(Group {
                    category: r.get::<String>(1)?.unwrap_or_default(),
                    tenant: r.get::<String>(2)?,
                    held: r.get::<i64>(3)?.unwrap_or(0),
                    rows: r.get::<i64>(4)?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// The rows of `group` no hold keeps.
    pub fn unheld_in(&self, table: &Managed, group: &Group, params: &mut Params) -> RowSet {
        let category = table.category_sql(params);
        self.rows
            .clone()
            .filter(format!("NOT {}", self.covered))
            .filter(format!(
                "{category} = {}",
                params.bind(group.category.clone())
            ))
            .filter(format!(
                "{} IS NOT DISTINCT FROM {}::text",
                table.tenant_text_sql(),
                params.bind(group.tenant.clone())
            ))
    }
}
