//! Redaction on write: `retention.redact()` puts a row trigger on a table that rewrites the
//! identifiers found in chosen text columns before the row is stored (zero retention for what
//! is inside the text); `retention.unredact()` takes it away. The rule is a record in
//! `retention.redaction_rules`; the detectors are in detect.rs, the triggers in trigger.rs.

pub mod detect;
mod trigger;

pub use trigger::init;

use crate::engine::managed::quote_literal_text;
use crate::error::{required, RetentionError};
use detect::Detector;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

/// The row trigger's name: triggers of one event fire in name order, so this one runs after
/// the table's own BEFORE triggers and redacts what they wrote too.
pub const ROW_TRIGGER: &str = "zz_retention_redact";
/// The statement trigger that records the counts (on the table and each of its partitions).
pub const COUNT_TRIGGER: &str = "zz_retention_redact_count";

/// What `redact()` was asked for, checked.
pub struct Rule {
    pub columns: Vec<String>,
    pub detectors: Vec<Detector>,
    pub patterns: Vec<String>,
    pub replacement: String,
}

impl Rule {
    /// The trigger's arguments: replacement, detectors, the number of patterns, the patterns,
    /// the columns (read back by trigger.rs).
    fn trigger_args(&self) -> String {
        let detectors: Vec<&str> = self.detectors.iter().map(|d| d.as_str()).collect();
        let mut args = vec![
            self.replacement.clone(),
            detectors.join(","),
            self.patterns.len().to_string(),
        ];
        args.extend(self.patterns.iter().cloned());
        args.extend(self.columns.iter().cloned());
        args.iter()
            .map(|a| quote_literal_text(a))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The column list: present, not empty, no NULL and no repeats.
pub fn column_list(columns: Option<Vec<Option<String>>>) -> Result<Vec<String>, RetentionError> {
    let columns: Vec<String> = required(columns, "columns")?
        .into_iter()
        .collect::<Option<_>>()
        .ok_or(RetentionError::NullArgument("columns"))?;
    if columns.is_empty() {
        return Err(RetentionError::InvalidValue(
            "columns must name at least one column".into(),
        ));
    }
    let mut seen = columns.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != columns.len() {
        return Err(RetentionError::InvalidValue(
            "columns names a column twice".into(),
        ));
    }
    Ok(columns)
}

/// The detectors and custom patterns: names from detect.rs, each `custom:<regex>` a pattern,
/// `custom` alone taking `pattern`.
pub fn detector_list(
    detectors: Option<Vec<Option<String>>>,
    pattern: Option<String>,
) -> Result<(Vec<Detector>, Vec<String>), RetentionError> {
    let names: Vec<String> = required(detectors, "detectors")?
        .into_iter()
        .collect::<Option<_>>()
        .ok_or(RetentionError::NullArgument("detectors"))?;
    let mut found = Vec::new();
    let mut patterns = Vec::new();
    for name in names {
        match name.strip_prefix("custom:") {
            Some(regex) => patterns.push(regex.to_string()),
            None => found.push(
                name.parse()
                    .map_err(|_| RetentionError::UnknownDetector(name))?,
            ),
        }
    }
    let named_custom = found.contains(&Detector::Custom);
    match pattern {
        Some(p) if named_custom => patterns.push(p),
        Some(_) => {
            return Err(RetentionError::InvalidValue(
                "pattern is the custom detector's: add 'custom' to detectors".into(),
            ))
        }
        None if named_custom => {
            return Err(RetentionError::InvalidValue(
                "the custom detector needs a pattern (pattern => '…' or 'custom:…')".into(),
            ))
        }
        None => {}
    }
    if !patterns.is_empty() && !named_custom {
        found.push(Detector::Custom);
    }
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(RetentionError::InvalidValue(
            "detectors must name at least one detector".into(),
        ));
    }
    Ok((found, patterns))
}

/// Refuses a Citus distributed table: Citus does not run row triggers on its shards by default.
pub fn refuse_distributed(
    client: &SpiClient,
    oid: pg_sys::Oid,
    name: &str,
) -> Result<(), RetentionError> {
    let distributed = crate::pg::citus::is_citus_table(client, oid)?;
    if distributed {
        return Err(RetentionError::Unsupported(format!(
            "{name} is a Citus distributed table: redact before the write reaches it (see the README)"
        )));
    }
    Ok(())
}

/// Every column exists and holds text, varchar or jsonb.
pub fn check_columns(
    client: &SpiClient,
    oid: pg_sys::Oid,
    table: &str,
    columns: &[String],
) -> Result<(), RetentionError> {
    for column in columns {
        let found = client
            .select(
                "SELECT atttypid IN ('text'::regtype, 'varchar'::regtype, 'jsonb'::regtype),
                        pg_catalog.format_type(atttypid, atttypmod)
                   FROM pg_catalog.pg_attribute
                  WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                Some(1),
                &[oid.into(), column.as_str().into()],
            )?
            .next()
            .map(|r| Ok::<_, RetentionError>((r.get::<bool>(1)?, r.get::<String>(2)?)))
            .transpose()?;
        match found {
            None => {
                return Err(RetentionError::UnknownColumn {
                    table: table.into(),
                    column: column.clone(),
                })
            }
            Some((Some(false), found)) => {
                return Err(RetentionError::WrongColumnType {
                    table: table.into(),
                    column: column.clone(),
                    found: found.unwrap_or_default(),
                    expected: "text, varchar or jsonb".into(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Each custom pattern compiles as a PostgreSQL regular expression (2201B otherwise) and does
/// not match the empty string.
pub fn check_patterns(patterns: &[String]) -> Result<(), RetentionError> {
    for pattern in patterns {
        // SAFETY: a text datum built here, matched by PostgreSQL's own `~`; nothing else runs
        // between the call and the catch.
        let empty = PgTryBuilder::new(|| unsafe {
            let as_text = |s: &str| {
                pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
                    s.as_ptr() as *const _,
                    s.len() as i32,
                ))
            };
            Ok(pg_sys::OidFunctionCall2Coll(
                pg_sys::Oid::from(pg_sys::F_TEXTREGEXEQ),
                pg_sys::DEFAULT_COLLATION_OID,
                as_text(""),
                as_text(pattern),
            )
            .value()
                != 0)
        })
        .catch_when(PgSqlErrorCode::ERRCODE_INVALID_REGULAR_EXPRESSION, |e| {
            let message = match e {
                pg_sys::panic::CaughtError::PostgresError(report)
                | pg_sys::panic::CaughtError::ErrorReport(report) => report.message().to_string(),
                _ => "not a regular expression".to_string(),
            };
            Err(RetentionError::InvalidPattern(pattern.clone(), message))
        })
        .execute()?;
        if empty {
            return Err(RetentionError::InvalidValue(format!(
                "pattern \"{pattern}\" matches the empty string"
            )));
        }
    }
    Ok(())
}

/// Records the rule and (re)creates the triggers on `table` and its partitions.
pub fn install(
    client: &mut SpiClient,
    oid: pg_sys::Oid,
    table: &str,
    rule: &Rule,
) -> Result<(), RetentionError> {
    let detectors: Vec<&str> = rule.detectors.iter().map(|d| d.as_str()).collect();
    client.update(
        "INSERT INTO retention.redaction_rules
                (tbl, columns, detectors, patterns, replacement, redacted_by)
         VALUES ($1::oid::regclass, $2, $3, $4, $5, $6)
         ON CONFLICT (tbl) DO UPDATE
            SET columns = EXCLUDED.columns, detectors = EXCLUDED.detectors,
                patterns = EXCLUDED.patterns, replacement = EXCLUDED.replacement,
                redacted_since = now(), redacted_by = EXCLUDED.redacted_by",
        None,
        &[
            oid.into(),
            rule.columns.clone().into(),
            detectors.into(),
            rule.patterns.clone().into(),
            rule.replacement.as_str().into(),
            crate::pg::identity::caller_name().into(),
        ],
    )?;
    crate::engine::guard::changing(|| {
        remove_triggers(client, oid)?;
        crate::engine::guard::create_always(
            client,
            table,
            ROW_TRIGGER,
            &format!(
                "BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION retention.redact_row({})",
                rule.trigger_args()
            ),
        )?;
        for part in tree(client, oid)? {
            crate::engine::guard::create_always(
                client,
                &part,
                COUNT_TRIGGER,
                &format!("AFTER INSERT OR UPDATE ON {part} FOR EACH STATEMENT EXECUTE FUNCTION retention.redaction_count()"),
            )?;
        }
        Ok(())
    })
}

/// The table and every partition under it, as quoted names.
fn tree(client: &SpiClient, oid: pg_sys::Oid) -> Result<Vec<String>, RetentionError> {
    client
        .select(
            "SELECT $1::oid::regclass::text
             UNION ALL
             SELECT relid::text FROM pg_catalog.pg_partition_tree($1::oid::regclass) WHERE level > 0",
            None,
            &[oid.into()],
        )?
        .map(|r| Ok(r.get::<String>(1)?.unwrap_or_default()))
        .collect()
}

/// Drops the redaction triggers from `table` and its partitions (the row trigger's clones go
/// with it).
pub fn remove_triggers(client: &mut SpiClient, oid: pg_sys::Oid) -> Result<(), RetentionError> {
    let existing = client
        .select(
            "SELECT t.tgrelid::regclass::text, t.tgname::text
               FROM pg_catalog.pg_trigger t
              WHERE t.tgname IN ($2, $3) AND t.tgparentid = 0
                AND (t.tgrelid = $1
                     OR t.tgrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass)))",
            None,
            &[oid.into(), ROW_TRIGGER.into(), COUNT_TRIGGER.into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
        .collect::<Result<Vec<_>, RetentionError>>()?;
    for (table, trigger) in existing {
        client.update(
            &format!("DROP TRIGGER {} ON {table}", quote_identifier(&trigger)),
            None,
            &[],
        )?;
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{int, sqlstate};
    use pgrx::prelude::*;

    fn text(sql: &str) -> String {
        Spi::get_one::<String>(sql).unwrap().unwrap_or_default()
    }

    fn notes() {
        Spi::run(
            "CREATE TABLE notes (id int PRIMARY KEY, body text, short varchar(12), doc jsonb, n int);
             SELECT retention.redact('notes', '{body,short,doc}');",
        )
        .unwrap();
    }

    #[pg_test]
    fn identifiers_are_replaced_before_the_row_is_stored() {
        notes();
        Spi::run(
            "INSERT INTO notes VALUES
               (1, 'card 4111 1111 1111 1111, mail jo@example.com, call (415) 555-2671',
                'a@b.io x', '{\"a\": [\"x 4111111111111111\", {\"m\": \"jo@ex.com\"}], \"k\": 5}', 1),
               (2, 'order 4111111111111112 on 2024-01-15', NULL, NULL, 2)",
        )
        .unwrap();
        assert_eq!(
            text("SELECT body FROM notes WHERE id = 1"),
            "card [redacted:card], mail [redacted:email], call [redacted:phone]"
        );
        // varchar(12) keeps its length: the replacement is cut.
        assert_eq!(text("SELECT short FROM notes WHERE id = 1"), "[redacted:em");
        assert_eq!(
            text("SELECT doc::text FROM notes WHERE id = 1"),
            r#"{"a": ["x [redacted:card]", {"m": "[redacted:email]"}], "k": 5}"#
        );
        // A card that fails Luhn and a date stay; NULLs stay NULL.
        assert_eq!(
            text("SELECT body FROM notes WHERE id = 2"),
            "order 4111111111111112 on 2024-01-15"
        );
        assert_eq!(
            int("SELECT count(*) FROM notes WHERE id = 2 AND short IS NULL AND doc IS NULL"),
            1
        );
        assert_eq!(
            text("SELECT string_agg(column_name || ':' || detector || '=' || redactions, ' ' ORDER BY column_name, detector)
                    FROM retention.redaction_counts"),
            "body:card=1 body:email=1 body:phone=1 doc:card=1 doc:email=1 short:email=1"
        );
        assert_eq!(
            int("SELECT sum(redacted_values)::bigint FROM retention.redactions"),
            6
        );
    }

    #[pg_test]
    fn an_update_cannot_bring_an_identifier_back() {
        notes();
        Spi::run("INSERT INTO notes (id, body) VALUES (1, 'clean')").unwrap();
        Spi::run(
            "UPDATE notes SET body = body || ' +44 20 7946 0958 / DE89 3704 0044 0532 0130 00'",
        )
        .unwrap();
        assert_eq!(
            text("SELECT body FROM notes"),
            "clean [redacted:phone] / DE89 3704 0044 0532 0130 00"
        );
        Spi::run("SELECT retention.redact('notes', '{body}', '{iban,ssn}', '***')").unwrap();
        Spi::run("UPDATE notes SET body = body || ' 123-45-6789'").unwrap();
        assert_eq!(
            text("SELECT body FROM notes"),
            "clean [redacted:phone] / *** ***"
        );
    }

    #[pg_test]
    fn custom_patterns_are_postgres_regular_expressions() {
        notes();
        Spi::run(
            "SELECT retention.redact('notes', '{body}', '{card,custom}', pattern => 'ORD-[0-9]+')",
        )
        .unwrap();
        Spi::run(
            "INSERT INTO notes (id, body) VALUES (1, 'ORD-123 and ORD-9 paid by 4111111111111111')",
        )
        .unwrap();
        assert_eq!(
            text("SELECT body FROM notes"),
            "[redacted:custom] and [redacted:custom] paid by [redacted:card]"
        );
        Spi::run("SELECT retention.redact('notes', '{body}', ARRAY['custom:(?i)secret\\w*'])")
            .unwrap();
        assert_eq!(
            text("SELECT patterns[1] FROM retention.redaction_rules"),
            r"(?i)secret\w*"
        );
        Spi::run("UPDATE notes SET body = 'a SECRETS b'").unwrap();
        assert_eq!(text("SELECT body FROM notes"), "a [redacted:custom] b");
    }

    #[pg_test]
    fn bad_input_gets_specific_sqlstates() {
        notes();
        for (sql, state) in [
            (
                "SELECT retention.redact('notes', '{body}', '{bogus}')",
                "22023",
            ),
            ("SELECT retention.redact('notes', '{body}', '{}')", "22023"),
            ("SELECT retention.redact('notes', '{}')", "22023"),
            ("SELECT retention.redact('notes', '{body,body}')", "22023"),
            ("SELECT retention.redact('notes', '{n}')", "42804"),
            ("SELECT retention.redact('notes', '{nope}')", "42703"),
            (
                "SELECT retention.redact('notes', '{body}', '{custom}', pattern => '(unclosed')",
                "2201B",
            ),
            (
                "SELECT retention.redact('notes', '{body}', ARRAY['custom:[z-a]'])",
                "2201B",
            ),
            (
                "SELECT retention.redact('notes', '{body}', '{custom}', pattern => 'x*')",
                "22023",
            ),
            (
                "SELECT retention.redact('notes', '{body}', '{custom}')",
                "22023",
            ),
            (
                "SELECT retention.redact('notes', '{body}', '{card}', pattern => 'x')",
                "22023",
            ),
            ("SELECT retention.redact(NULL, '{body}')", "22004"),
            ("SELECT retention.redact('notes', NULL)", "22004"),
            ("SELECT retention.redact('notes', '{body,NULL}')", "22004"),
            ("SELECT retention.redact('notes', '{body}', NULL)", "22004"),
            (
                "SELECT retention.redact('notes', '{body}', replacement => NULL)",
                "22004",
            ),
            ("SELECT retention.redact(12345678, '{body}')", "42P01"),
            (
                "SELECT retention.redact('pg_class_oid_index', '{body}')",
                "42809",
            ),
            ("SELECT retention.unredact(NULL)", "22004"),
            ("SELECT retention.unredact('pg_class')", "42704"),
        ] {
            assert_eq!(sqlstate(sql), state, "{sql}");
        }
        // The rule is unchanged by the refused calls.
        assert_eq!(
            text("SELECT columns::text FROM retention.redaction_rules"),
            "{body,short,doc}"
        );
    }

    #[pg_test]
    fn redacted_columns_and_triggers_stay_in_place() {
        notes();
        for sql in [
            "ALTER TABLE notes DROP COLUMN short",
            "ALTER TABLE notes RENAME COLUMN body TO b",
            "ALTER TABLE notes ALTER COLUMN doc TYPE int USING 0",
            "DROP TRIGGER zz_retention_redact ON notes",
            "DROP TRIGGER zz_retention_redact_count ON notes",
            "ALTER TABLE notes DISABLE TRIGGER ALL",
            "ALTER TABLE notes ENABLE TRIGGER zz_retention_redact",
            "ALTER TRIGGER zz_retention_redact ON notes RENAME TO x",
        ] {
            assert_eq!(sqlstate(sql), "2BP01", "{sql}");
        }
        Spi::run("ALTER TABLE notes DROP COLUMN n").unwrap();
        Spi::run("SELECT retention.unredact('notes')").unwrap();
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass"),
            0
        );
        Spi::run("INSERT INTO notes (id, body) VALUES (1, 'jo@example.com')").unwrap();
        assert_eq!(text("SELECT body FROM notes"), "jo@example.com");
        Spi::run("ALTER TABLE notes DROP COLUMN short").unwrap();
    }

    #[pg_test]
    fn partitions_old_and_new_are_redacted_and_counted_under_their_root() {
        Spi::run(
            "CREATE TABLE ev (id int, at date, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
             SELECT retention.redact('ev', '{body}');
             CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
             INSERT INTO ev VALUES (1, '2026-01-05', 'a@b.io'), (2, '2026-02-05', 'c@d.io');
             INSERT INTO ev_2 VALUES (3, '2026-02-06', 'e@d.io');
             CREATE TABLE ev_3 (id int, at date, body text, PRIMARY KEY (id, at));
             ALTER TABLE ev ATTACH PARTITION ev_3 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
             INSERT INTO ev_3 VALUES (4, '2026-03-06', 'g@h.io'), (5, '2026-03-07', 'i@j.io');",
        )
        .unwrap();
        assert_eq!(
            int("SELECT count(*) FROM ev WHERE body = '[redacted:email]'"),
            5
        );
        assert_eq!(
            text("SELECT table_name || ' ' || redactions FROM retention.redaction_counts"),
            "public.ev 5"
        );
        Spi::run("DROP TABLE ev").unwrap();
        assert_eq!(int("SELECT count(*) FROM retention.redaction_rules"), 0);
        assert_eq!(
            int("SELECT sum(redactions)::bigint FROM retention.redaction_counts"),
            5
        );
    }

    #[pg_test]
    fn rolled_back_rows_are_not_counted() {
        notes();
        Spi::run(
            "CREATE FUNCTION pg_temp.try_insert() RETURNS void LANGUAGE plpgsql AS $$
             BEGIN
                 BEGIN
                     INSERT INTO notes (id, body) VALUES (1, 'a@b.io'), (1, 'c@d.io');
                 EXCEPTION WHEN unique_violation THEN NULL;
                 END;
                 INSERT INTO notes (id, body) VALUES (2, 'e@f.io');
             END $$;
             SELECT pg_temp.try_insert();",
        )
        .unwrap();
        assert_eq!(
            int("SELECT sum(redactions)::bigint FROM retention.redaction_counts"),
            1
        );
    }

    #[pg_test]
    fn redacting_needs_the_trigger_right_on_the_table() {
        notes();
        Spi::run(
            "CREATE ROLE redaction_admin;
             SELECT retention.grant_policy_admin('redaction_admin');
             CREATE TABLE others (id int PRIMARY KEY, body text);
             GRANT SELECT, INSERT, UPDATE ON others TO redaction_admin;
             SET ROLE redaction_admin;",
        )
        .unwrap();
        assert_eq!(
            sqlstate("SELECT retention.redact('others', '{body}')"),
            "42501"
        );
        assert_eq!(sqlstate("SELECT retention.unredact('notes')"), "42501");
        assert_eq!(sqlstate("INSERT INTO retention.redaction_rules VALUES ('others', '{body}', '{card}', '{}', 'x', now(), 'me')"), "42501");
        Spi::run(
            "RESET ROLE; GRANT TRIGGER ON others TO redaction_admin; SET ROLE redaction_admin",
        )
        .unwrap();
        Spi::run("SELECT retention.redact('others', '{body}')").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(text("SELECT redacted_by::text FROM retention.redaction_rules WHERE tbl = 'others'::regclass"), "redaction_admin");
    }
}
