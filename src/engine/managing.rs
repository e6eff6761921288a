//! Managing a table (`retention.manage`, `retention.unmanage`): its key, column roles,
//! anonymize map and default category checked, recorded, and the guards that depend on the
//! managed tables (hold guard, category locks) brought in step. What a managed table is, and
//! the SQL fragments over its rows, is managed.rs.

use crate::engine::catalog::{self, Category};
use crate::engine::managed::*;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::regclass::RegClass;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

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
    let found: Vec<(String, String)> = crate::pg::executor::select(
        client,
        table,
        &RowSet::of(table)
            .filter(format!(
                "{} = ANY($1::text[]::jsonb[])",
                table.key_json_sql()
            ))
            .select(&format!(
                "{}::text, {}",
                table.key_json_sql(),
                table.anonymized_fingerprint_sql()
            )),
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
        match Replacement::from(value.clone()) {
            Replacement::Hash => check_hash_column(client, table, column)?,
            Replacement::Null => check_constant(client, table, column, None)?,
            Replacement::Constant(c) => check_constant(client, table, column, Some(&c))?,
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
    value: Option<&serde_json::Value>,
) -> Result<(), RetentionError> {
    let (_, type_name) = column_type(client, table, column)?;
    if let Some(value) = value {
        crate::pg::executor::as_owner(table, || {
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
        crate::pg::identity::caller_name().into(),
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
    crate::engine::guard::sync(client)?;
    crate::engine::category_lock::sync(client)?;
    crate::engine::guard::invalidate(client)?;
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
pub struct Roles<'a> {
    pub created: Option<&'a str>,
    pub activity: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub category: Option<&'a str>,
    pub soft_delete: Option<&'a str>,
}

/// Checks and records one table (the body of `manage()`).
pub fn manage_table(
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
        distribution: None,
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
/// Retention wins over deletion: a table an active hold can cover is not unmanaged (managing
/// it again with fewer scope columns would let its rows out of the hold).
pub fn refuse_if_held(client: &SpiClient, table: &Managed) -> Result<(), RetentionError> {
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
