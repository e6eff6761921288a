//! Managed tables: `retention.manage`, `retention.unmanage`, and the [`Managed`] shape the
//! purge engine builds its statements from.

use crate::catalog::{self, Action, Category, Clock};
use crate::error::{required, RetentionError, SqlResult};
use crate::regclass::RegClass;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
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
    /// Column → replacement (`null`, `"hash"`, or a constant) for categories that anonymize.
    pub anonymize: Vec<(String, serde_json::Value)>,
    /// Column → `format_type` of the anonymized columns.
    pub anonymize_types: std::collections::BTreeMap<String, String>,
    /// Its parent-bound children, once looked up (`cascade::children`).
    pub children: std::cell::OnceCell<Vec<crate::cascade::Child>>,
    /// The table's owner: every statement against the table runs as this role (owner.rs).
    pub owner: pg_sys::Oid,
    /// Whether `cascade::check_unlogged_cascades` has passed.
    pub cascades_checked: std::cell::Cell<bool>,
    /// Whether the table passed the purge's checks (owner.rs), once per load.
    pub verified: std::cell::Cell<bool>,
}

const MANAGED_SELECT: &str = "
    SELECT m.tbl::oid, format('%I.%I', n.nspname, c.relname), m.category, m.created_column,
           m.activity_column, m.tenant_column, m.subject_column, m.category_column,
           m.soft_delete_column, m.key_columns, c.relkind = 'p', m.anonymize,
           (SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = m.tbl AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname::text IN (SELECT jsonb_object_keys(m.anonymize))),
           c.relowner
      FROM retention.managed_tables m
      JOIN pg_catalog.pg_class c ON c.oid = m.tbl
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

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
            Some(pgrx::JsonB(serde_json::Value::Object(map))) => map.into_iter().collect(),
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
        children: Default::default(),
        cascades_checked: Default::default(),
        verified: Default::default(),
    })
}

impl Managed {
    /// Every managed table, in a stable order (by name).
    pub fn load_all(client: &SpiClient) -> Result<Vec<Managed>, RetentionError> {
        let sql = format!("{MANAGED_SELECT} ORDER BY n.nspname, c.relname");
        client
            .select(&sql, None, &[])?
            .map(|row| from_row(&row))
            .collect()
    }

    /// One managed table; [`RetentionError::NotManaged`] otherwise.
    pub fn load(client: &SpiClient, oid: pg_sys::Oid) -> Result<Managed, RetentionError> {
        let sql = format!("{MANAGED_SELECT} WHERE m.tbl = $1");
        let rows = client.select(&sql, Some(1), &[oid.into()])?;
        match rows.into_iter().next() {
            Some(row) => {
                let table = from_row(&row)?;
                table.check_shape()?;
                Ok(table)
            }
            None => {
                crate::regclass::RegClass(oid).table(client)?;
                Err(RetentionError::NotManaged(relation_name(client, oid)?))
            }
        }
    }

    /// Refuses a table whose recorded key columns are unusable (empty, or NULL in the catalog).
    pub fn check_shape(&self) -> Result<(), RetentionError> {
        if self.key_columns.is_empty() {
            return Err(RetentionError::MissingColumnRole(
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
        Ok(!crate::owner::select(client, self, &sql, &[category.into()])?.is_empty())
    }

    /// SQL for the category of row alias `t`: its tag, else the table's default.
    pub fn category_sql(&self, params: &mut crate::params::Params) -> String {
        let default = params.bind(self.category.as_str());
        match &self.category_column {
            Some(c) => format!("coalesce(t.{}::text, {default})", quote_identifier(c)),
            None => format!("{default}::text"),
        }
    }

    /// The SET list that anonymizes row `t`: `null` → NULL, `"hash"` → hex SHA-256 of the value
    /// (one-way; NULL stays NULL), anything else → that constant, cast to the column's type.
    pub fn anonymize_set_sql(&self, params: &mut crate::params::Params) -> String {
        self.anonymize
            .iter()
            .map(|(column, value)| {
                let c = quote_identifier(column);
                let replacement = match value {
                    serde_json::Value::Null => "NULL".to_string(),
                    serde_json::Value::String(s) if s == "hash" => {
                        format!("encode(sha256(convert_to(t.{c}::text, 'UTF8')), 'hex')")
                    }
                    constant => format!(
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

/// The relation's name as users see it (regclass output).
pub fn relation_name(client: &SpiClient, oid: pg_sys::Oid) -> Result<String, RetentionError> {
    Ok(client
        .select("SELECT $1::regclass::text", Some(1), &[oid.into()])?
        .first()
        .get_one::<String>()?
        .unwrap_or_default())
}

/// Type oid and `format_type` of a column; [`RetentionError::UnknownColumn`] when absent.
fn column_type(
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

/// Checks that a column exists and has one of the expected types.
fn check_column(
    client: &SpiClient,
    table: &Managed,
    column: &str,
    expected: &[pg_sys::Oid],
    expected_text: &str,
) -> Result<(), RetentionError> {
    let (oid, name) = column_type(client, table, column)?;
    if !expected.is_empty() && !expected.contains(&oid) {
        return Err(RetentionError::WrongColumnType {
            table: table.display_name.clone(),
            column: column.to_string(),
            found: name,
            expected: expected_text.to_string(),
        });
    }
    Ok(())
}

const TIME_TYPES: [pg_sys::Oid; 3] = [
    pg_sys::TIMESTAMPTZOID,
    pg_sys::TIMESTAMPOID,
    pg_sys::DATEOID,
];

/// Warns, with the statement to run, when no index leads with `column`.
fn advise_index(client: &SpiClient, table: &Managed, column: &str) -> Result<(), RetentionError> {
    let indexed = !client
        .select(
            "SELECT 1 FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
              WHERE i.indrelid = $1 AND a.attname = $2 AND i.indpred IS NULL",
            Some(1),
            &[table.oid.into(), column.into()],
        )?
        .is_empty();
    if !indexed {
        pgrx::ereport!(
            PgLogLevel::WARNING,
            PgSqlErrorCode::ERRCODE_WARNING,
            format!(
                "no index on {}({}): purges will scan the whole table",
                table.display_name,
                quote_identifier(column)
            ),
            format!(
                "CREATE INDEX CONCURRENTLY ON {} ({});",
                table.display_name,
                quote_identifier(column)
            )
        );
    }
    Ok(())
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
    let caller = crate::identity::caller_oid();
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

/// Gives the rows anonymized under an earlier management of `table` the fingerprint of their
/// values under its current map. The marks are read and written under the extension's identity,
/// the table as its owner.
fn rebaseline_marks(client: &mut SpiClient, table: &Managed) -> Result<(), RetentionError> {
    let keys: Vec<String> = client
        .select(
            "SELECT row_key::text FROM retention.anonymized_rows WHERE tbl = $1::oid::regclass",
            None,
            &[table.oid.into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Ok(());
    }
    let found: Vec<(String, String)> = crate::owner::select(
        client,
        table,
        &format!(
            "SELECT {}::text, {} FROM {} AS t WHERE {} = ANY($1::text[]::jsonb[])",
            table.key_json_sql(),
            table.anonymized_fingerprint_sql(),
            table.display_name,
            table.key_json_sql()
        ),
        &[keys.into()],
    )?
    .map(|r| {
        Ok((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
        ))
    })
    .collect::<Result<_, RetentionError>>()?;
    let (keys, fingerprints): (Vec<String>, Vec<String>) = found.into_iter().unzip();
    client.update(
        "UPDATE retention.anonymized_rows a SET fingerprint = u.fp
           FROM unnest($2::text[], $3::text[]) AS u(k, fp)
          WHERE a.tbl = $1::oid::regclass AND a.row_key = u.k::jsonb",
        None,
        &[table.oid.into(), keys.into(), fingerprints.into()],
    )?;
    Ok(())
}

/// The table `manage()` is asked for: its oid, `schema.name` and owner. Refuses the
/// extension's records, the system catalogs and temporary tables (not data to purge; the
/// worker cannot see temporary ones), and a table already managed.
fn target(
    client: &SpiClient,
    tbl: RegClass,
) -> Result<(pg_sys::Oid, String, pg_sys::Oid), RetentionError> {
    let oid = tbl.table(client)?;
    let (display_name, schema, owner) = client
        .select(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    CASE WHEN c.relpersistence = 't' THEN 'pg_temp' ELSE n.nspname::text END,
                    c.relowner
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?
        .first()
        .get_three::<String, String, pg_sys::Oid>()?;
    let (display_name, schema) = (display_name.unwrap_or_default(), schema.unwrap_or_default());
    if matches!(
        schema.as_str(),
        "retention" | "pg_catalog" | "information_schema" | "pg_toast" | "pg_temp"
    ) {
        return Err(RetentionError::WrongObjectType(display_name));
    }
    let managed = !client
        .select(
            "SELECT 1 FROM retention.managed_tables WHERE tbl = $1",
            Some(1),
            &[oid.into()],
        )?
        .is_empty();
    if managed {
        return Err(RetentionError::AlreadyManaged(display_name));
    }
    Ok((oid, display_name, owner.unwrap_or(pg_sys::InvalidOid)))
}

/// The primary-key columns of table `oid`, in key order ([`RetentionError::NoPrimaryKey`]).
fn primary_key(
    client: &SpiClient,
    oid: pg_sys::Oid,
    display_name: &str,
) -> Result<Vec<String>, RetentionError> {
    let key_columns: Vec<String> = client
        .select(
            "SELECT a.attname::text
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            None,
            &[oid.into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    if key_columns.is_empty() {
        return Err(RetentionError::NoPrimaryKey(display_name.to_string()));
    }
    Ok(key_columns)
}

/// Each column role `manage()` was given names a column of a type that role can read.
fn check_role_columns(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    let times = "timestamp with time zone, timestamp without time zone or date";
    for c in [&table.created_column, &table.activity_column]
        .into_iter()
        .flatten()
    {
        check_column(client, table, c, &TIME_TYPES, times)?;
    }
    for c in [&table.tenant_column, &table.subject_column]
        .into_iter()
        .flatten()
    {
        check_column(client, table, c, &[], "")?;
    }
    if let Some(c) = &table.category_column {
        check_column(
            client,
            table,
            c,
            &[pg_sys::TEXTOID, pg_sys::VARCHAROID],
            "text",
        )?;
    }
    if let Some(c) = &table.soft_delete_column {
        check_column(
            client,
            table,
            c,
            &[pg_sys::TIMESTAMPTZOID, pg_sys::TIMESTAMPOID],
            "timestamp with time zone",
        )?;
    }
    Ok(())
}

/// The anonymize map is an object of existing, non-key columns, each replacement fitting its
/// column (a `"hash"` needs text of at least 64 characters).
fn check_anonymize_map(
    client: &SpiClient,
    table: &Managed,
    map: &pgrx::JsonB,
) -> Result<(), RetentionError> {
    let serde_json::Value::Object(columns) = &map.0 else {
        return Err(RetentionError::InvalidValue(
            "anonymize must be a JSON object {\"column\": replacement, …}".into(),
        ));
    };
    for (column, value) in columns {
        if value.as_str() == Some("hash") {
            check_hash_column(client, table, column)?;
        } else {
            check_constant(client, table, column, value)?;
        }
        if table.key_columns.contains(column) {
            return Err(RetentionError::InvalidValue(format!(
                "primary-key column \"{column}\" cannot be anonymized"
            )));
        }
    }
    Ok(())
}

/// A column anonymized with `"hash"` holds text of at least 64 characters (a hex SHA-256).
fn check_hash_column(
    client: &SpiClient,
    table: &Managed,
    column: &str,
) -> Result<(), RetentionError> {
    check_column(
        client,
        table,
        column,
        &[pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID],
        "text (a one-way hash is text)",
    )?;
    let (_, type_name) = column_type(client, table, column)?;
    let short = client
        .select(
            "SELECT atttypmod > 0 AND atttypmod - 4 < 64 FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2",
            Some(1),
            &[table.oid.into(), column.into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if short {
        return Err(RetentionError::WrongColumnType {
            table: table.display_name.clone(),
            column: column.to_string(),
            found: type_name,
            expected: "text or a length of at least 64 (a hex SHA-256)".into(),
        });
    }
    Ok(())
}

/// A constant replacement fits its column: cast once now, as the table's owner (a domain CHECK
/// or a cast is the owner's code).
fn check_constant(
    client: &SpiClient,
    table: &Managed,
    column: &str,
    value: &serde_json::Value,
) -> Result<(), RetentionError> {
    let (_, type_name) = column_type(client, table, column)?;
    if !value.is_null() {
        crate::identity::as_owner(table.owner, || {
            client.select(
                &format!("SELECT $1::text::{type_name}"),
                Some(1),
                &[constant_text(value).into()],
            )
        })?;
    }
    Ok(())
}

/// Records `table` in `retention.managed_tables`, stamped with the caller.
fn record(
    client: &mut SpiClient,
    table: &Managed,
    anonymize: Option<pgrx::JsonB>,
) -> Result<(), RetentionError> {
    let args: [DatumWithOid; 11] = [
        table.oid.into(),
        table.category.as_str().into(),
        table.created_column.as_deref().into(),
        table.activity_column.as_deref().into(),
        table.tenant_column.as_deref().into(),
        table.subject_column.as_deref().into(),
        table.category_column.as_deref().into(),
        table.soft_delete_column.as_deref().into(),
        anonymize.into(),
        table.key_columns.clone().into(),
        crate::identity::caller_name().into(),
    ];
    client.update(
        "INSERT INTO retention.managed_tables
             (tbl, category, created_column, activity_column, tenant_column, subject_column,
              category_column, soft_delete_column, anonymize, key_columns, managed_by)
         VALUES ($1::oid::regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        None,
        &args,
    )?;
    Ok(())
}

/// After recording a table: its guards, the category's columns, an index hint, and the
/// fingerprints of rows anonymized under an earlier management of it (so that a changed map
/// alone does not anonymize, and log, them again).
fn settle(
    client: &mut SpiClient,
    table: &Managed,
    category: &Category,
) -> Result<(), RetentionError> {
    crate::guard::sync(client)?;
    crate::category_lock::sync(client)?;
    crate::guard::invalidate(client)?;
    table.check_category(client, category)?;
    if let Some(column) = table.clock_column(category) {
        advise_index(client, table, column)?;
    }
    let managed = Managed::load(client, table.oid)?;
    if !managed.anonymize.is_empty() {
        rebaseline_marks(client, &managed)?;
    }
    Ok(())
}

/// The columns a table is managed with, as `manage()` receives them.
struct Roles<'a> {
    created: Option<&'a str>,
    activity: Option<&'a str>,
    tenant: Option<&'a str>,
    subject: Option<&'a str>,
    category: Option<&'a str>,
    soft_delete: Option<&'a str>,
}

/// Checks and records one table (the body of `manage()`).
fn manage_table(
    client: &mut SpiClient,
    tbl: RegClass,
    category: &str,
    roles: Roles<'_>,
    anonymize: Option<pgrx::JsonB>,
) -> Result<(), RetentionError> {
    let (oid, display_name, owner) = target(client, tbl)?;
    let default_category = catalog::load(client, category)?;
    check_rights(
        client,
        oid,
        &display_name,
        &managing_needs(&default_category),
        &format!("managing with category \"{}\"", default_category.name),
    )?;
    let key_columns = primary_key(client, oid, &display_name)?;
    let own = |c: Option<&str>| c.map(str::to_string);
    let table = Managed {
        oid,
        display_name,
        category: category.to_string(),
        created_column: own(roles.created),
        activity_column: own(roles.activity),
        tenant_column: own(roles.tenant),
        subject_column: own(roles.subject),
        category_column: own(roles.category),
        soft_delete_column: own(roles.soft_delete),
        key_columns,
        partitioned: false,
        anonymize: Vec::new(),
        anonymize_types: Default::default(),
        owner,
        children: Default::default(),
        cascades_checked: Default::default(),
        verified: Default::default(),
    };
    check_role_columns(client, &table)?;
    if let Some(map) = &anonymize {
        check_anonymize_map(client, &table, map)?;
    }
    record(client, &table, anonymize)?;
    settle(client, &table, &default_category)
}

// The SQL signature has one argument per column role, as the README documents it.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn manage(
    tbl: Option<RegClass>,
    category: Option<&str>,
    created_column: default!(Option<&str>, "NULL"),
    activity_column: default!(Option<&str>, "NULL"),
    tenant_column: default!(Option<&str>, "NULL"),
    subject_column: default!(Option<&str>, "NULL"),
    category_column: default!(Option<&str>, "NULL"),
    soft_delete_column: default!(Option<&str>, "NULL"),
    anonymize: default!(Option<pgrx::JsonB>, "NULL"),
) -> SqlResult<()> {
    crate::runs::require_primary("retention.manage()")?;
    let tbl = required(tbl, "tbl")?;
    let category = required(category, "category")?;
    let roles = Roles {
        created: created_column,
        activity: activity_column,
        tenant: tenant_column,
        subject: subject_column,
        category: category_column,
        soft_delete: soft_delete_column,
    };
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| manage_table(client, tbl, category, roles, anonymize))
    })?;
    Ok(())
}

/// Retention wins over deletion: a table an active hold can cover is not unmanaged (managing
/// it again with fewer scope columns would let its rows out of the hold).
fn refuse_if_held(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
    let (id, reason) = client
        .select(
            "SELECT id, reason FROM retention.covering_hold($1::oid::regclass)",
            Some(1),
            &[table.oid.into()],
        )?
        .first()
        .get_two::<i64, String>()?;
    match id {
        Some(id) => Err(RetentionError::UnderHold(format!(
            "table {} is under legal hold {id} ({}): it cannot be unmanaged",
            table.display_name,
            reason.unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn unmanage(tbl: Option<RegClass>) -> SqlResult<()> {
    crate::runs::require_primary("retention.unmanage()")?;
    let oid = required(tbl, "tbl")?.oid();
    crate::identity::as_extension(|| {
        Spi::connect_mut(|client| -> Result<(), RetentionError> {
            let table = Managed::load(client, oid)?;
            check_rights(
                client,
                oid,
                &table.display_name,
                &["SELECT", "DELETE"],
                "unmanaging",
            )?;
            refuse_if_held(client, &table)?;
            let gone = client
                .update(
                    "DELETE FROM retention.managed_tables WHERE tbl = $1 RETURNING 1",
                    None,
                    &[oid.into()],
                )?
                .len();
            if gone == 0 {
                RegClass(oid).table(client)?;
                return Err(RetentionError::NotManaged(relation_name(client, oid)?));
            }
            crate::guard::remove(client, &table.display_name)?;
            crate::category_lock::remove(client, &table.display_name)?;
            if crate::schema_version::at_least(crate::schema_version::GOVERNANCE)? {
                client.update(
                    "DELETE FROM retention.partition_retirement WHERE tbl = $1",
                    None,
                    &[oid.into()],
                )?;
            }
            crate::guard::invalidate(client)?;
            Ok(())
        })
    })?;
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

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
