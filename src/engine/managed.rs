//! Managed tables: `retention.manage`, `retention.unmanage`, and the [`Managed`] shape the
//! purge engine builds its statements from.

use crate::engine::catalog::{Action, Category, Clock};
use crate::error::RetentionError;
use crate::pg::citus::Distribution;
use crate::pg::regclass::relation_name;
use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, SpiClient};

/// A table under retention, as recorded in `retention.managed_tables`.
#[derive(Debug, Clone)]
pub struct Managed {
    pub oid: pg_sys::Oid,
    /// `schema.table`, each part quoted when needed: safe to splice into SQL, and the form the
    /// deletion log records.
    pub display_name: String,
    pub category: String,
    pub created_column: Option<String>,
    pub activity_column: Option<String>,
    pub tenant_column: Option<String>,
    pub subject_column: Option<String>,
    pub category_column: Option<String>,
    pub soft_delete_column: Option<String>,
    pub key_columns: Vec<String>,
    /// Partitioned tables are acted on by primary key (a ctid is only unique per partition).
    pub partitioned: bool,
    /// How a Citus distributed table is spread over shards: it is acted on by primary key, one
    /// distribution-key value per statement (see purge.rs).
    pub distribution: Option<Distribution>,
    /// Column → replacement, for categories that anonymize.
    pub anonymize: Vec<(String, Replacement)>,
    /// Column → `format_type` of the anonymized columns.
    pub anonymize_types: std::collections::BTreeMap<String, String>,
    /// Its parent-bound children, once looked up (children.rs).
    pub children: std::cell::OnceCell<Vec<Child>>,
    /// The table's owner: every statement against the table runs as this role (owner.rs).
    pub owner: pg_sys::Oid,
    /// Whether the check for unlogged cascades (children.rs) has passed.
    pub cascades_checked: std::cell::Cell<bool>,
    /// Whether the table passed the purge's checks (owner.rs), once per load.
    pub verified: std::cell::Cell<bool>,
}

/// What an anonymized column becomes (`manage(anonymize => '{"column": replacement}')`).
#[derive(Debug, Clone, PartialEq)]
pub enum Replacement {
    /// `null`: NULL.
    Null,
    /// `"hash"`: the hex SHA-256 of the value (one-way; NULL stays NULL).
    Hash,
    /// Anything else: that constant, cast to the column's type.
    Constant(serde_json::Value),
}

impl From<serde_json::Value> for Replacement {
    fn from(value: serde_json::Value) -> Replacement {
        match value {
            serde_json::Value::Null => Replacement::Null,
            serde_json::Value::String(s) if s == "hash" => Replacement::Hash,
            constant => Replacement::Constant(constant),
        }
    }
}

/// A parent-bound child of a table, through one foreign key.
#[derive(Debug, Clone)]
pub struct Child {
    pub table: Managed,
    pub category: Category,
    /// The child's foreign-key columns and the parent columns they reference, in order.
    pub fk_columns: Vec<String>,
    pub parent_columns: Vec<String>,
}

const MANAGED_SELECT: &str = "
    SELECT m.tbl::oid, format('%I.%I', n.nspname, c.relname), m.category, m.created_column,
           m.activity_column, m.tenant_column, m.subject_column, m.category_column,
           m.soft_delete_column, m.key_columns, c.relkind = 'p', m.anonymize,
           (SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = m.tbl AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname::text IN (SELECT jsonb_object_keys(m.anonymize))),
           c.relowner, {citus}
      FROM retention.managed_tables m
      JOIN pg_catalog.pg_class c ON c.oid = m.tbl
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

/// The managed tables `filter` selects, with their Citus distribution where Citus is present.
fn select(
    client: &SpiClient,
    filter: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Vec<Managed>, RetentionError> {
    let sql = MANAGED_SELECT.replace("{citus}", crate::pg::citus::INSTALLED_SQL) + filter;
    let mut citus = false;
    let mut tables = client
        .select(&sql, None, args)?
        .map(|row| {
            citus = row.get::<bool>(15)?.unwrap_or(false);
            from_row(&row)
        })
        .collect::<Result<Vec<_>, RetentionError>>()?;
    if citus {
        for table in &mut tables {
            table.distribution = crate::pg::citus::distribution(client, table.oid)?;
        }
    }
    Ok(tables)
}

fn from_row(row: &pgrx::spi::SpiHeapTupleData) -> Result<Managed, RetentionError> {
    let display_name = row.get::<String>(2)?.unwrap_or_default();
    // A row written past manage() (by a superuser) may hold NULL key columns: they load as
    // none, which `check_shape` refuses for this table alone.
    let key_columns: Vec<String> = row
        .get::<Vec<Option<String>>>(10)?
        .unwrap_or_default()
        .into_iter()
        .collect::<Option<_>>()
        .unwrap_or_default();
    Ok(Managed {
        oid: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
        display_name,
        category: row.get::<String>(3)?.unwrap_or_default(),
        created_column: row.get::<String>(4)?,
        activity_column: row.get::<String>(5)?,
        tenant_column: row.get::<String>(6)?,
        subject_column: row.get::<String>(7)?,
        category_column: row.get::<String>(8)?,
        soft_delete_column: row.get::<String>(9)?,
        key_columns,
        partitioned: row.get::<bool>(11)?.unwrap_or(false),
        anonymize: match row.get::<pgrx::JsonB>(12)? {
            Some(pgrx::JsonB(serde_json::Value::Object(map))) => map
                .into_iter()
                .map(|(column, value)| (column, Replacement::from(value)))
                .collect(),
            _ => Vec::new(),
        },
        anonymize_types: match row.get::<pgrx::JsonB>(13)? {
            Some(pgrx::JsonB(serde_json::Value::Object(map))) => map
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => Default::default(),
        },
        owner: row.get::<pg_sys::Oid>(14)?.unwrap_or(pg_sys::InvalidOid),
        distribution: None,
        children: Default::default(),
        cascades_checked: Default::default(),
        verified: Default::default(),
    })
}

impl Managed {
    /// Every managed table, in a stable order (by name).
    pub fn load_all(client: &SpiClient) -> Result<Vec<Managed>, RetentionError> {
        select(client, " ORDER BY n.nspname, c.relname", &[])
    }

    /// One managed table; [`RetentionError::NotManaged`] otherwise.
    pub fn load(client: &SpiClient, oid: pg_sys::Oid) -> Result<Managed, RetentionError> {
        match select(client, " WHERE m.tbl = $1", &[oid.into()])?.pop() {
            Some(table) => {
                table.check_shape()?;
                Ok(table)
            }
            None => {
                crate::pg::regclass::RegClass(oid).table(client)?;
                Err(RetentionError::NotManaged(relation_name(client, oid)?))
            }
        }
    }

    /// `t.col, …` for the key columns and every role column, each once: what the outputs of
    /// an acting statement (key, tenant, clock, fingerprint) are computed from.
    pub fn row_columns_sql(&self) -> String {
        let roles = [
            &self.tenant_column,
            &self.subject_column,
            &self.category_column,
            &self.created_column,
            &self.activity_column,
            &self.soft_delete_column,
        ];
        let candidates = (self.key_columns.iter())
            .chain(roles.into_iter().flatten())
            .chain(self.anonymize.iter().map(|(c, _)| c));
        let mut columns: Vec<&str> = Vec::new();
        for column in candidates.map(String::as_str) {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        let quoted: Vec<String> = columns
            .iter()
            .map(|c| format!("t.{}", quote_identifier(c)))
            .collect();
        quoted.join(", ")
    }

    /// Whether a statement matches rows by primary key rather than by `ctid`: in a partitioned
    /// table a ctid is unique per partition only, and Citus refuses ctid matching across
    /// shards. A statement on a distributed table that carries the distribution-key equality
    /// in every part (`one_shard`) runs on one shard, where ctids are unique and Citus allows
    /// them: matching by ctid there spares an index probe per row.
    pub fn by_key(&self, one_shard: bool) -> bool {
        self.partitioned || (self.distribution.is_some() && !one_shard)
    }

    /// Refuses a table whose recorded key columns are unusable (empty, or NULL in the catalog).
    pub fn check_shape(&self) -> Result<(), RetentionError> {
        if self.key_columns.is_empty() {
            return Err(RetentionError::UnsafeTarget(
                format!(
                    "the key columns recorded for {} are empty or contain NULL",
                    self.display_name
                ),
                "Unmanage the table and manage it again.".into(),
            ));
        }
        Ok(())
    }

    /// The quoted column a category's clock reads on this table, if the clock has one.
    pub fn clock_column(&self, category: &Category) -> Option<&str> {
        match category.clock {
            Clock::Created => self.created_column.as_deref(),
            Clock::LastActivity => self.activity_column.as_deref(),
            Clock::Event | Clock::Parent => None,
        }
    }

    /// Checks that rows of this table can carry `category`: its clock has a column here, its
    /// soft-delete window has a column to stamp.
    pub fn check_category(
        &self,
        client: &SpiClient,
        category: &Category,
    ) -> Result<(), RetentionError> {
        let missing = |role: &str, arg: &str| {
            RetentionError::MissingColumnRole(
                format!(
                    "category \"{}\" needs a {role} column, and table {} has none",
                    category.name, self.display_name
                ),
                format!("Call retention.manage() with {arg} => '<column>'."),
            )
        };
        match category.clock {
            Clock::Created if self.created_column.is_none() => {
                return Err(missing("creation-time", "created_column"))
            }
            Clock::LastActivity if self.activity_column.is_none() => {
                return Err(missing("last-activity", "activity_column"))
            }
            Clock::Event if self.tenant_column.is_none() => {
                return Err(missing("tenant", "tenant_column"))
            }
            Clock::Parent => {
                let has_fk = !client
                    .select(
                        "SELECT 1 FROM pg_catalog.pg_constraint
                          WHERE conrelid = $1 AND contype = 'f'",
                        Some(1),
                        &[self.oid.into()],
                    )?
                    .is_empty();
                if !has_fk {
                    return Err(RetentionError::MissingColumnRole(
                        format!(
                            "category \"{}\" uses the parent clock, and table {} has no foreign key",
                            category.name, self.display_name
                        ),
                        "Add the foreign key that links each row to its parent.".into(),
                    ));
                }
            }
            _ => {}
        }
        if category.windows.any_path() && self.soft_delete_column.is_none() {
            return Err(missing("soft-delete", "soft_delete_column"));
        }
        if category.action == Action::Anonymize {
            let has_map = !client
                .select(
                    "SELECT 1 FROM retention.managed_tables
                      WHERE tbl = $1 AND jsonb_typeof(anonymize) = 'object'",
                    Some(1),
                    &[self.oid.into()],
                )?
                .is_empty();
            if !has_map {
                return Err(RetentionError::MissingColumnRole(
                    format!(
                        "category \"{}\" anonymizes, and table {} has no anonymize map",
                        category.name, self.display_name
                    ),
                    "Call retention.manage() with anonymize => '{\"column\": null, …}'.".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether `category` is this table's default or tagged on any of its rows.
    pub fn uses_category(
        &self,
        client: &SpiClient,
        category: &str,
    ) -> Result<bool, RetentionError> {
        if self.category == category {
            return Ok(true);
        }
        let Some(column) = &self.category_column else {
            return Ok(false);
        };
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = $1 LIMIT 1",
            self.display_name,
            quote_identifier(column)
        );
        Ok(!crate::pg::executor::select(client, self, &sql, &[category.into()])?.is_empty())
    }

    /// SQL for the category of row alias `t`: its tag, else the table's default.
    pub fn category_sql(&self, params: &mut crate::pg::params::Params) -> String {
        let default = params.bind(self.category.as_str());
        match &self.category_column {
            Some(c) => format!("coalesce(t.{}::text, {default})", quote_identifier(c)),
            None => format!("{default}::text"),
        }
    }

    /// The SET list that anonymizes row `t`: `null` → NULL, `"hash"` → hex SHA-256 of the value
    /// (one-way; NULL stays NULL), anything else → that constant, cast to the column's type.
    pub fn anonymize_set_sql(&self, params: &mut crate::pg::params::Params) -> String {
        self.anonymize
            .iter()
            .map(|(column, value)| {
                let c = quote_identifier(column);
                let replacement = match value {
                    Replacement::Null => "NULL".to_string(),
                    Replacement::Hash => {
                        format!("encode(sha256(convert_to(t.{c}::text, 'UTF8')), 'hex')")
                    }
                    Replacement::Constant(constant) => format!(
                        "{}::text::{}",
                        params.bind(constant_text(constant)),
                        self.anonymize_types
                            .get(column)
                            .map(String::as_str)
                            .unwrap_or("text")
                    ),
                };
                format!("{c} = {replacement}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// SQL over row alias `t`: md5 of the anonymized columns' values, as the anonymized row's
    /// fingerprint in retention.anonymized_rows. Each value is written in a form no session
    /// setting changes (TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output,
    /// client_encoding), so every session computes the same fingerprint for the same values.
    pub fn anonymized_fingerprint_sql(&self) -> String {
        let fields: Vec<String> = self
            .anonymize
            .iter()
            .map(|(column, _)| {
                let c = format!("t.{}", quote_identifier(column));
                let kind = self
                    .anonymize_types
                    .get(column)
                    .map(String::as_str)
                    .unwrap_or("");
                let text = if kind.starts_with("timestamp")
                    || kind.starts_with("time ")
                    || kind == "date"
                    || kind.starts_with("interval")
                {
                    format!("extract(epoch FROM {c})::text")
                } else if kind == "bytea" {
                    format!("encode({c}, 'hex')")
                } else if kind == "double precision" || kind == "real" || kind == "money" {
                    format!("{c}::numeric::text")
                } else {
                    format!("{c}::text")
                };
                format!("coalesce(length({text})::text || ':' || {text}, '-')")
            })
            .collect();
        format!(
            "md5(convert_to(concat({}), 'UTF8'))",
            if fields.is_empty() {
                "''".to_string()
            } else {
                fields.join(", ")
            }
        )
    }

    /// SQL over row alias `t`: the path of the row's soft delete, from its latest
    /// `soft_delete` or `restore` entry in the log ('expired' when that entry says so, else
    /// 'customer_request'). It runs as the table's owner, who cannot read the log: the answer
    /// comes through `retention.soft_delete_path()`, which answers that one question for any
    /// table name and key (as `is_anonymized` does: it reveals no row).
    pub fn soft_delete_path_sql(&self, params: &mut crate::pg::params::Params) -> String {
        format!(
            "retention.soft_delete_path({}, {})",
            params.bind(self.display_name.as_str()),
            self.key_json_sql()
        )
    }

    /// SQL for the primary key of row alias `t` as a jsonb object `{"<pk column>": value, …}`.
    pub fn key_json_sql(&self) -> String {
        let pairs: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| format!("{}, t.{}", quote_literal_text(c), quote_identifier(c)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    }

    /// SQL for the tenant of row alias `t` as text (`NULL::text` without a tenant column).
    pub fn tenant_text_sql(&self) -> String {
        self.tenant_column
            .as_deref()
            .map(|c| format!("t.{}::text", quote_identifier(c)))
            .unwrap_or_else(|| "NULL::text".into())
    }

    /// SQL for the primary key of row alias `t` as the key-array element
    /// `tagging::key_match_sql` takes: the value as text, or an array of them for a composite
    /// key (`array_agg` of it is a key array).
    pub fn key_text_sql(&self) -> String {
        let parts: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| format!("t.{}::text", quote_identifier(c)))
            .collect();
        match parts.as_slice() {
            [one] => one.clone(),
            _ => format!("ARRAY[{}]", parts.join(", ")),
        }
    }

    /// SQL turning a `row_key` jsonb expression back into the key-array element
    /// `tagging::key_match_sql` takes: the value as text, or an array of them for a composite key.
    pub fn key_from_json_sql(&self, json: &str) -> String {
        let values: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| format!("{json}->>{}", quote_literal_text(c)))
            .collect();
        if values.len() == 1 {
            values[0].clone()
        } else {
            format!("ARRAY[{}]", values.join(", "))
        }
    }

    /// `format_type` of each primary-key column, in key order.
    pub fn key_types(&self, client: &SpiClient) -> Result<Vec<String>, RetentionError> {
        let mut types = Vec::with_capacity(self.key_columns.len());
        for column in &self.key_columns {
            let (_, name) = column_type(client, self, column)?;
            types.push(name);
        }
        Ok(types)
    }
}

/// The text of an anonymize constant: a JSON string's content, any other value's JSON text.
pub fn constant_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string literal for SQL text (`'…'`, quotes doubled).
pub fn quote_literal_text(s: &str) -> String {
    pgrx::spi::quote_literal(s)
}

/// Type oid and `format_type` of a column; [`RetentionError::UnknownColumn`] when absent.
pub fn column_type(
    client: &SpiClient,
    table: &Managed,
    column: &str,
) -> Result<(pg_sys::Oid, String), RetentionError> {
    let rows = client.select(
        "SELECT atttypid, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        Some(1),
        &[table.oid.into(), column.into()],
    )?;
    match rows.into_iter().next() {
        Some(row) => Ok((
            row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
            row.get::<String>(2)?.unwrap_or_default(),
        )),
        None => Err(RetentionError::UnknownColumn {
            table: table.display_name.clone(),
            column: column.to_string(),
        }),
    }
}

/// Refuses unless the calling role (see identity.rs) owns the table, or holds USAGE on its
/// schema and every privilege in `needed` on it. The purge acts on a table as its owner: a
/// role must not reach, through the extension, rows it could not change itself.
pub fn check_rights(
    client: &SpiClient,
    oid: pg_sys::Oid,
    display_name: &str,
    needed: &[&str],
    doing: &str,
) -> Result<(), RetentionError> {
    let caller = crate::pg::identity::caller_oid();
    check_rights_of(client, caller, oid, display_name, needed, doing)
}

/// [`check_rights`] for `role` (InvalidOid, a dropped role, has none).
pub fn check_rights_of(
    client: &SpiClient,
    role: pg_sys::Oid,
    oid: pg_sys::Oid,
    display_name: &str,
    needed: &[&str],
    doing: &str,
) -> Result<(), RetentionError> {
    let allowed = client
        .select(
            "SELECT pg_catalog.pg_has_role($3, c.relowner, 'USAGE')
                    OR (pg_catalog.has_schema_privilege($3, c.relnamespace, 'USAGE')
                        AND (SELECT bool_and(pg_catalog.has_table_privilege($3, c.oid, p))
                               FROM unnest($2::text[]) AS p))
               FROM pg_catalog.pg_class c WHERE c.oid = $1 AND $3 <> 0",
            Some(1),
            &[oid.into(), needed.to_vec().into(), role.into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if allowed {
        return Ok(());
    }
    Err(RetentionError::InsufficientPrivilege(format!(
        "{doing} {display_name} needs ownership, or USAGE on its schema and {} on the table",
        needed.join(", ")
    )))
}

/// The privileges managing a table with `category` needs: SELECT and DELETE, and UPDATE when
/// the policy soft-deletes or anonymizes.
pub fn managing_needs(category: &Category) -> Vec<&'static str> {
    let mut needed = vec!["SELECT", "DELETE"];
    if category.windows.any_path() || category.action == Action::Anonymize {
        needed.push("UPDATE");
    }
    needed
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    #[pg_test]
    fn an_anonymize_map_reads_as_typed_replacements() {
        use super::Replacement;
        use serde_json::json;
        assert_eq!(Replacement::from(json!(null)), Replacement::Null);
        assert_eq!(Replacement::from(json!("hash")), Replacement::Hash);
        assert_eq!(
            Replacement::from(json!("redacted")),
            Replacement::Constant(json!("redacted"))
        );
        assert_eq!(Replacement::from(json!(0)), Replacement::Constant(json!(0)));
    }

    fn setup() {
        Spi::run(
            "SELECT retention.define_category('conversations', '1 year');
             SELECT retention.define_category('projects', '0', soft_delete_window => '90 days');
             CREATE TABLE chats (id int PRIMARY KEY, created_at timestamptz, tenant uuid, note int);",
        )
        .unwrap();
    }

    #[pg_test]
    fn manage_records_the_table_and_its_key() {
        setup();
        Spi::run("SELECT retention.manage('chats', 'conversations', created_column => 'created_at', tenant_column => 'tenant')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.managed_tables WHERE tbl = 'chats'::regclass AND key_columns = '{id}' AND tenant_column = 'tenant'"), 1);
        Spi::run("SELECT retention.unmanage('chats')").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.managed_tables"), 0);
    }

    #[pg_test]
    fn odd_catalog_values_fail_clearly_not_internally() {
        // A category column changed to type name after manage() works like text.
        Spi::run(
            "SELECT retention.define_category('conversations', '1 year');
             SELECT retention.define_category('audit_logs', '7 years');
             CREATE TABLE named (id int PRIMARY KEY, created_at timestamptz NOT NULL, cat text);
             SELECT retention.manage('named', 'conversations', created_column => 'created_at',
                                     category_column => 'cat');
             ALTER TABLE named ALTER COLUMN cat TYPE name;
             INSERT INTO named VALUES (1, now() - interval '2 years', NULL),
                                      (2, now() - interval '2 years', NULL),
                                      (3, now(), NULL);
             SELECT retention.tag('named', 'audit_logs', ARRAY[2]);",
        )
        .unwrap();
        assert_eq!(int("SELECT sum(rows)::bigint FROM retention.preview()"), 1);
        assert_eq!(int("SELECT hard_deleted FROM retention.run()"), 1);
        assert_eq!(int("SELECT retention.request_delete('named', ARRAY[3])"), 1);
        assert_eq!(
            int("SELECT count(*) FROM named WHERE cat = 'audit_logs'"),
            1
        );
        // Key columns a superuser wrote as NULL past manage(): 55000, and the cycle goes on.
        Spi::run("UPDATE retention.managed_tables SET key_columns = '{NULL}'").unwrap();
        assert_eq!(sqlstate("SELECT * FROM retention.preview()"), "55000");
        assert_eq!(
            sqlstate("SELECT retention.request_delete('named', ARRAY[2])"),
            "55000"
        );
        assert_eq!(
            int("SELECT count(*) FROM retention.run() WHERE error LIKE '%key columns%'"),
            1
        );
    }

    #[pg_test]
    fn a_held_table_is_neither_unmanaged_nor_dropped() {
        setup();
        Spi::run(
            "SELECT retention.manage('chats', 'conversations', created_column => 'created_at', tenant_column => 'tenant');
             CREATE TABLE plain (id int PRIMARY KEY, created_at timestamptz);
             SELECT retention.manage('plain', 'conversations', created_column => 'created_at');",
        )
        .unwrap();
        let hold = int("SELECT retention.place_hold('subpoena', tbl => 'chats', notify => false)");
        let tenant_hold =
            int("SELECT retention.place_hold('a customer', tenant => 'acme', notify => false)");
        assert_eq!(sqlstate("SELECT retention.unmanage('chats')"), "55006");
        assert_eq!(sqlstate("DROP TABLE chats"), "55006");
        assert_eq!(
            int("SELECT count(*) FROM retention.managed_tables WHERE tbl = 'chats'::regclass"),
            1
        );
        // A tenant hold cannot cover a table without tenants.
        assert_eq!(sqlstate("DROP TABLE plain"), "00000");
        Spi::run(&format!("SELECT retention.release_hold({hold}, 'settled')")).unwrap();
        // The tenant hold still can cover chats' rows.
        assert_eq!(sqlstate("SELECT retention.unmanage('chats')"), "55006");
        Spi::run(&format!(
            "SELECT retention.release_hold({tenant_hold}, 'settled')"
        ))
        .unwrap();
        assert_eq!(sqlstate("SELECT retention.unmanage('chats')"), "00000");
    }

    #[pg_test]
    fn manage_rejects_bad_input() {
        setup();
        assert_eq!(
            sqlstate("SELECT retention.manage('chats', 'nope', created_column => 'created_at')"),
            "42704"
        );
        assert_eq!(
            sqlstate("SELECT retention.manage('chats', 'conversations', created_column => 'nope')"),
            "42703"
        );
        assert_eq!(
            sqlstate("SELECT retention.manage('chats', 'conversations', created_column => 'note')"),
            "42804"
        );
        assert_eq!(
            sqlstate("SELECT retention.manage('chats', 'conversations')"),
            "55000"
        );
        assert_eq!(
            sqlstate(
                "SELECT retention.manage('chats', 'projects', created_column => 'created_at')"
            ),
            "55000"
        );
        assert_eq!(
            sqlstate("SELECT retention.manage(NULL, 'conversations')"),
            "22004"
        );
        Spi::run("CREATE TABLE nokey (created_at timestamptz)").unwrap();
        assert_eq!(
            sqlstate(
                "SELECT retention.manage('nokey', 'conversations', created_column => 'created_at')"
            ),
            "42P16"
        );
        Spi::run("CREATE VIEW chat_view AS SELECT * FROM chats").unwrap();
        assert_eq!(sqlstate("SELECT retention.manage('chat_view', 'conversations', created_column => 'created_at')"), "42809");
        assert_eq!(sqlstate("SELECT retention.manage('chats', 'conversations', created_column => 'created_at', anonymize => '[1]')"), "22023");
        assert_eq!(sqlstate("SELECT retention.unmanage('chats')"), "42704");
        assert_eq!(int("SELECT count(*) FROM retention.managed_tables"), 0);
        Spi::run(
            "SELECT retention.manage('chats', 'conversations', created_column => 'created_at')",
        )
        .unwrap();
        assert_eq!(
            sqlstate(
                "SELECT retention.manage('chats', 'conversations', created_column => 'created_at')"
            ),
            "42710"
        );
    }

    #[pg_test]
    fn dropping_a_managed_table_unmanages_it() {
        setup();
        Spi::run(
            "SELECT retention.manage('chats', 'conversations', created_column => 'created_at')",
        )
        .unwrap();
        Spi::run("DROP TABLE chats").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.managed_tables"), 0);
    }

    #[pg_test]
    fn hostile_names_are_quoted() {
        Spi::run(
            r#"SELECT retention.define_category('conversations', '1 year');
               CREATE SCHEMA "We; DROP";
               CREATE TABLE "We; DROP"."Chat ""Log""" ("Key" int PRIMARY KEY, "Created At" timestamptz, "Ten'ant" text);
               INSERT INTO "We; DROP"."Chat ""Log""" VALUES (1, now() - interval '2 years', 'a'), (2, now(), 'b');
               SELECT retention.manage('"We; DROP"."Chat ""Log"""', 'conversations', created_column => 'Created At', tenant_column => 'Ten''ant');
               SELECT * FROM retention.run();"#,
        )
        .unwrap();
        assert_eq!(int(r#"SELECT count(*) FROM "We; DROP"."Chat ""Log""""#), 1);
        assert_eq!(
            int(
                r#"SELECT count(*) FROM retention.deletion_log WHERE table_name = '"We; DROP"."Chat ""Log"""' AND row_key = '{"Key": 1}' AND tenant = 'a'"#
            ),
            1
        );
    }
}
