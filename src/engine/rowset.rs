//! The one statement builder: a typed description of a set of rows of an application table
//! (its relation, conditions over the row alias `t`, order, limit, lock), rendered on demand
//! to the SQL shapes the engine runs through the executor (pg/executor.rs). Conditions are SQL
//! fragments whose values are bound parameters (pg/params.rs) and whose identifiers are quoted
//! where they are made; the relation is the regclass text of the table, quoted by Postgres.

use crate::engine::managed::Managed;

/// How a selection locks its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Reads without locking.
    None,
    /// `FOR UPDATE OF t`: waits for concurrent writers (a path that must act on every row).
    Wait,
    /// `FOR UPDATE OF t SKIP LOCKED`: leaves rows being written to a later batch.
    SkipLocked,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::Wait => " FOR UPDATE OF t",
            Lock::SkipLocked => " FOR UPDATE OF t SKIP LOCKED",
        }
    }
}

/// A set of rows of one relation, as alias `t`.
#[derive(Debug, Clone)]
pub struct RowSet {
    relation: String,
    conditions: Vec<String>,
    order: Option<String>,
    limit: Option<String>,
    lock: Lock,
}

impl RowSet {
    /// Every row of a managed table.
    pub fn of(table: &Managed) -> RowSet {
        RowSet::of_relation(&table.display_name)
    }

    /// Every row of `relation` (regclass text: a partition of a managed table).
    pub fn of_relation(relation: &str) -> RowSet {
        RowSet {
            relation: relation.to_string(),
            conditions: Vec::new(),
            order: None,
            limit: None,
            lock: Lock::None,
        }
    }

    /// Only the rows for which `condition` holds.
    pub fn filter(mut self, condition: impl Into<String>) -> RowSet {
        self.conditions.push(condition.into());
        self
    }

    /// Only the rows for which every one of `conditions` holds.
    pub fn filters(mut self, conditions: impl IntoIterator<Item = String>) -> RowSet {
        self.conditions.extend(conditions);
        self
    }

    /// In the order of `order` (an expression over `t`), when given.
    pub fn order_by(mut self, order: Option<String>) -> RowSet {
        self.order = order;
        self
    }

    /// At most `placeholder` rows (a bound parameter).
    pub fn limit(mut self, placeholder: String) -> RowSet {
        self.limit = Some(placeholder);
        self
    }

    /// Locking its rows as `lock` says.
    pub fn lock(mut self, lock: Lock) -> RowSet {
        self.lock = lock;
        self
    }

    /// `FROM relation AS t WHERE …`, for a statement of another shape to select from.
    pub fn source_sql(&self) -> String {
        format!(
            "FROM {} AS t WHERE {}",
            self.relation,
            self.conditions_sql()
        )
    }

    /// `SELECT columns` of the rows, ordered, limited and locked as described.
    pub fn select(&self, columns: &str) -> String {
        let order = self
            .order
            .as_ref()
            .map(|o| format!(" ORDER BY {o}"))
            .unwrap_or_default();
        let limit = self
            .limit
            .as_ref()
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
        format!(
            "SELECT {columns} {}{order}{limit}{}",
            self.source_sql(),
            self.lock.sql()
        )
    }

    /// `SELECT columns … GROUP BY group_by`: one line per group.
    pub fn grouped(&self, columns: &str, group_by: &str) -> String {
        format!("SELECT {columns} {} GROUP BY {group_by}", self.source_sql())
    }

    /// `SELECT count(*)` of the rows.
    pub fn count(&self) -> String {
        format!("SELECT count(*) {}", self.source_sql())
    }

    /// `SELECT EXISTS (…)`: whether there is such a row.
    pub fn exists(&self) -> String {
        format!("SELECT EXISTS (SELECT 1 {})", self.source_sql())
    }

    /// `DELETE` of the rows, returning `returning` of each.
    pub fn delete(&self, returning: &str) -> String {
        format!(
            "DELETE FROM {} AS t WHERE {} RETURNING {returning}",
            self.relation,
            self.conditions_sql()
        )
    }

    /// `UPDATE … SET assignments` of the rows, returning `returning` of each (when given).
    pub fn update(&self, assignments: &str, returning: Option<&str>) -> String {
        let returning = returning
            .map(|r| format!(" RETURNING {r}"))
            .unwrap_or_default();
        format!(
            "UPDATE {} AS t SET {assignments} WHERE {}{returning}",
            self.relation,
            self.conditions_sql()
        )
    }

    fn conditions_sql(&self) -> String {
        if self.conditions.is_empty() {
            "true".to_string()
        } else {
            self.conditions.join(" AND ")
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::{Lock, RowSet};
    use pgrx::prelude::*;

    #[pg_test]
    fn a_batch_selection_is_ordered_limited_and_skips_locked_rows() {
        let sql = RowSet::of_relation("public.events")
            .filter("t.created_at < $1")
            .filter("NOT t.held")
            .order_by(Some("t.created_at".into()))
            .limit("$2".into())
            .lock(Lock::SkipLocked)
            .select("t.ctid");
        assert_eq!(
            sql,
            "SELECT t.ctid FROM public.events AS t WHERE t.created_at < $1 AND NOT t.held \
             ORDER BY t.created_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
        );
    }

    #[pg_test]
    fn counts_groups_and_acting_statements() {
        let rows = RowSet::of_relation("\"Odd\".\"T\"").filter("t.k = ANY($1)");
        assert_eq!(
            rows.count(),
            "SELECT count(*) FROM \"Odd\".\"T\" AS t WHERE t.k = ANY($1)"
        );
        assert_eq!(
            RowSet::of_relation("s.t").exists(),
            "SELECT EXISTS (SELECT 1 FROM s.t AS t WHERE true)"
        );
        assert_eq!(
            rows.grouped("t.tn, count(*)", "1"),
            "SELECT t.tn, count(*) FROM \"Odd\".\"T\" AS t WHERE t.k = ANY($1) GROUP BY 1"
        );
        assert_eq!(
            rows.delete("t.k"),
            "DELETE FROM \"Odd\".\"T\" AS t WHERE t.k = ANY($1) RETURNING t.k"
        );
        assert_eq!(
            rows.update("\"del\" = now()", None),
            "UPDATE \"Odd\".\"T\" AS t SET \"del\" = now() WHERE t.k = ANY($1)"
        );
    }

    #[pg_test]
    fn a_waiting_lock_waits_for_writers() {
        let sql = RowSet::of_relation("s.t")
            .filter("t.k = $1")
            .lock(Lock::Wait)
            .select("t.ctid");
        assert_eq!(
            sql,
            "SELECT t.ctid FROM s.t AS t WHERE t.k = $1 FOR UPDATE OF t"
        );
    }
}
