-- pg_retention 0.4.0 → 0.5.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

-- Redaction on write (retention.redact()): one rule per table, and the counts of what the row
-- trigger replaced, per statement (never what it replaced).
CREATE TABLE retention.redaction_rules (
    tbl            regclass CONSTRAINT redaction_rules_pkey PRIMARY KEY,
    columns        text[] NOT NULL
                   CONSTRAINT redaction_has_columns CHECK (cardinality(columns) > 0),
    detectors      text[] NOT NULL
                   CONSTRAINT redaction_detectors_known
                   CHECK (cardinality(detectors) > 0
                          AND detectors <@ ARRAY['card', 'email', 'phone', 'iban', 'ssn', 'custom']),
    patterns       text[] NOT NULL DEFAULT '{}',
    replacement    text NOT NULL,
    redacted_since timestamptz NOT NULL DEFAULT now(),
    redacted_by    name NOT NULL,
    CONSTRAINT redaction_custom_has_patterns
        CHECK (('custom' = ANY (detectors)) = (cardinality(patterns) > 0))
);
COMMENT ON TABLE retention.redaction_rules IS 'Tables whose text columns are redacted on write (retention.redact()): columns, detectors, custom patterns, replacement, who and since when';
COMMENT ON COLUMN retention.redaction_rules.patterns IS 'The custom detector''s regular expressions (PostgreSQL syntax)';
COMMENT ON COLUMN retention.redaction_rules.replacement IS 'What replaces each identifier found; %s stands for the detector''s name';

CREATE TABLE retention.redaction_tallies (
    day         date NOT NULL,
    table_name  text NOT NULL,
    column_name text NOT NULL,
    detector    text NOT NULL
                CONSTRAINT tally_detector_known
                CHECK (detector IN ('card', 'email', 'phone', 'iban', 'ssn', 'custom')),
    redactions  bigint NOT NULL CONSTRAINT tally_redactions_positive CHECK (redactions > 0)
);
CREATE INDEX redaction_tallies_day ON retention.redaction_tallies (day);
COMMENT ON TABLE retention.redaction_tallies IS 'Identifiers replaced on write, per statement, day (UTC), table (schema.name, as format(''%I.%I'')), column and detector; never what was replaced. Kept after unredact() and DROP TABLE, as evidence';

CREATE VIEW retention.redaction_counts AS
SELECT t.day, t.table_name, t.column_name, t.detector, sum(t.redactions)::bigint AS redactions
  FROM retention.redaction_tallies t
 GROUP BY t.day, t.table_name, t.column_name, t.detector;
COMMENT ON VIEW retention.redaction_counts IS 'Identifiers redacted on write per day (UTC), table, column and detector';

CREATE VIEW retention.redactions AS
SELECT r.tbl, c.column_name, r.detectors, r.patterns, r.replacement, r.redacted_since,
       r.redacted_by,
       coalesce((SELECT sum(t.redactions) FROM retention.redaction_tallies t
                  WHERE t.table_name = (SELECT pg_catalog.format('%I.%I', n.nspname, k.relname)
                                          FROM pg_catalog.pg_class k
                                          JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
                                         WHERE k.oid = r.tbl)
                    AND t.column_name = c.column_name
                    AND t.day >= (r.redacted_since AT TIME ZONE 'UTC')::date), 0)::bigint
           AS redacted_values
  FROM retention.redaction_rules r
 CROSS JOIN LATERAL unnest(r.columns) AS c(column_name);
COMMENT ON VIEW retention.redactions IS 'What is redacted where: one row per redacted column, with its detectors, replacement, since when, and the identifiers replaced in it since';

SELECT pg_catalog.pg_extension_config_dump('retention.redaction_rules', '');
SELECT pg_catalog.pg_extension_config_dump('retention.redaction_tallies', '');

CREATE FUNCTION retention."redact"(
	"tbl" regclass, /* Option < RegClass > */
	"columns" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"detectors" TEXT[] DEFAULT '{card,email,phone}', /* :: std :: option :: Option < Vec < Option < String > > > */
	"replacement" TEXT DEFAULT '[redacted:%s]', /* Option < String > */
	"pattern" TEXT DEFAULT NULL /* Option < String > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'redact_wrapper';
CREATE FUNCTION retention."unredact"(
	"tbl" regclass /* Option < RegClass > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unredact_wrapper';
CREATE FUNCTION retention."redact_row"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'redact_row_wrapper';
CREATE FUNCTION retention."redaction_count"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'redaction_count_wrapper';
COMMENT ON FUNCTION retention.redact(regclass, text[], text[], text, text) IS
    'Redacts identifiers on write: a row trigger replaces what the detectors (card, email, phone, iban, ssn, custom patterns) find in the named text, varchar or jsonb columns before a row is stored; counts each replacement';
COMMENT ON FUNCTION retention.unredact(regclass) IS 'Stops redacting a table (its counts stay)';
COMMENT ON FUNCTION retention.redact_row() IS 'Row trigger zz_retention_redact (BEFORE INSERT OR UPDATE, ENABLE ALWAYS) that retention.redact() puts on a table: replaces identifiers in the redacted columns; its arguments carry the rule';
COMMENT ON FUNCTION retention.redaction_count() IS 'Statement trigger zz_retention_redact_count (AFTER INSERT OR UPDATE, on a redacted table and each of its partitions): records the statement''s redactions in retention.redaction_tallies';

-- SECURITY DEFINER, as forget_dropped_tables: a dropped table's redaction rule goes with it
-- (its counts stay, as evidence).
CREATE FUNCTION retention.forget_redacted_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM retention.redaction_rules r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = r.tbl::oid;
END
$$;
COMMENT ON FUNCTION retention.forget_redacted_tables() IS 'Event trigger: forgets the redaction rules of dropped tables';

CREATE EVENT TRIGGER retention_forget_redacted_tables ON sql_drop
    EXECUTE FUNCTION retention.forget_redacted_tables();
COMMENT ON EVENT TRIGGER retention_forget_redacted_tables IS 'Forgets the redaction rules of dropped tables (retention.forget_redacted_tables())';

-- SECURITY DEFINER, as check_guarded_tables. After ALTER TABLE, DROP TRIGGER, ALTER TRIGGER
-- and CREATE TABLE: a redacted column keeps its name and a text, varchar or jsonb type; the
-- redaction triggers stay, enabled always; a partition created under a redacted table gets the
-- counting trigger (one attached later counts each row at once instead). redact() and
-- unredact() themselves pass (retention.guard_changing()), and so does a restore, which
-- creates the triggers after the tables and their rules.
CREATE FUNCTION retention.check_redacted_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    broken record;
BEGIN
    IF retention.guard_changing() THEN
        RETURN;
    END IF;
    SELECT r.tbl::text AS tbl, c.col INTO broken
      FROM retention.redaction_rules r CROSS JOIN LATERAL unnest(r.columns) AS c(col)
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = r.tbl AND a.attname = c.col AND NOT a.attisdropped
                          AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'jsonb'::regtype))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column "%" of table % is redacted: it cannot be dropped, renamed or retyped', broken.col, broken.tbl
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Call retention.unredact() first, or retention.redact() without this column.';
    END IF;
    SELECT t.tgrelid::regclass::text AS tbl, t.tgname INTO broken
      FROM pg_catalog.pg_trigger t
     WHERE t.tgfoid IN ('retention.redact_row()'::regprocedure, 'retention.redaction_count()'::regprocedure)
       AND t.tgenabled <> 'A'
     LIMIT 1;
    IF NOT FOUND AND TG_TAG IN ('DROP TRIGGER', 'ALTER TRIGGER') THEN
        SELECT p.relid::text AS tbl, NULL AS tgname INTO broken
          FROM retention.redaction_rules r
         CROSS JOIN LATERAL (SELECT r.tbl AS relid
                             UNION ALL
                             SELECT t.relid FROM pg_catalog.pg_partition_tree(r.tbl) t WHERE t.level > 0) p
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = p.relid AND t.tgname = 'zz_retention_redact_count')
            OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = p.relid AND t.tgname = 'zz_retention_redact')
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'table % is redacted: its redaction triggers cannot be dropped, renamed or disabled', broken.tbl
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Call retention.unredact() to stop redacting it.';
    END IF;
    FOR broken IN
        SELECT p.relid::text AS tbl
          FROM retention.redaction_rules r CROSS JOIN LATERAL pg_catalog.pg_partition_tree(r.tbl) p
         WHERE TG_TAG = 'CREATE TABLE' AND p.relid <> r.tbl
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = p.relid AND t.tgname = 'zz_retention_redact_count')
    LOOP
        EXECUTE format('CREATE TRIGGER zz_retention_redact_count AFTER INSERT OR UPDATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION retention.redaction_count()', broken.tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER zz_retention_redact_count', broken.tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION retention.check_redacted_tables() IS 'Event trigger: keeps redacted columns and the redaction triggers in place, and gives new partitions of a redacted table its counting trigger';

CREATE EVENT TRIGGER retention_redaction_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'DROP TRIGGER', 'ALTER TRIGGER', 'CREATE TABLE')
    EXECUTE FUNCTION retention.check_redacted_tables();
COMMENT ON EVENT TRIGGER retention_redaction_ddl IS 'Keeps redacted tables'' columns and redaction triggers in place (retention.check_redacted_tables())';
-- evidence() gains the identifiers redacted on write per month: its row type changes.
DROP FUNCTION retention.evidence_json(timestamptz, timestamptz);
DROP FUNCTION retention.evidence(timestamptz, timestamptz);
CREATE FUNCTION retention.evidence(since timestamptz, until timestamptz)
RETURNS TABLE (month date, category text,
               soft_deleted bigint, hard_deleted bigint, anonymized bigint, erased bigint,
               restored bigint, held_back bigint,
               erasures_received bigint, erasures_on_time bigint, erasures_late bigint,
               erasures_open bigint,
               exports_received bigint, exports_on_time bigint, exports_late bigint,
               exports_open bigint,
               holds_placed bigint, holds_released bigint, holds_reviewed bigint,
               holds_overdue_for_review bigint, redactions bigint,
               log_intact boolean, log_head_id bigint, log_head_hash text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    head_id bigint;
    head_hash bytea;
    broken bigint;
    held jsonb := '{}';
    current_month date;
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'arguments "since" and "until" must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(since) OR NOT isfinite(until) OR until <= since THEN
        RAISE EXCEPTION 'the period must be finite and end after it starts'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT l.id, l.hash INTO head_id, head_hash
      FROM retention.deletion_log l WHERE l.logged_at < until ORDER BY l.id DESC LIMIT 1;
    broken := retention.verify_log();
    IF now() >= since AND now() < until THEN
        current_month := date_trunc('month', now())::date;
        SELECT coalesce(jsonb_object_agg(p.category, p.rows), '{}') INTO held
          FROM (SELECT p.category, sum(p.rows) AS rows FROM retention.preview() p
                 WHERE p.held_by IS NOT NULL GROUP BY p.category) p;
    END IF;
    RETURN QUERY
    WITH months AS (
        SELECT m::date AS month, greatest(m, since) AS starts, least(m + interval '1 month', until) AS ends
          FROM generate_series(date_trunc('month', since), until - interval '1 microsecond',
                               interval '1 month') AS m
    ), acted AS (
        SELECT mo.month, l.category,
               count(*) FILTER (WHERE l.action = 'soft_delete') AS soft_deleted,
               count(*) FILTER (WHERE l.action = 'hard_delete') AS hard_deleted,
               count(*) FILTER (WHERE l.action = 'anonymize') AS anonymized,
               count(*) FILTER (WHERE l.reason = 'erasure_request') AS erased,
               count(*) FILTER (WHERE l.action = 'restore') AS restored
          FROM months mo
          JOIN retention.deletion_log l ON l.logged_at >= mo.starts AND l.logged_at < mo.ends
         GROUP BY mo.month, l.category
    ), per_category AS (
        SELECT coalesce(a.month, mo.month) AS month, coalesce(a.category, h.key) AS category,
               coalesce(a.soft_deleted, 0) AS soft_deleted, coalesce(a.hard_deleted, 0) AS hard_deleted,
               coalesce(a.anonymized, 0) AS anonymized, coalesce(a.erased, 0) AS erased,
               coalesce(a.restored, 0) AS restored,
               CASE WHEN coalesce(a.month, mo.month) = current_month
                    THEN coalesce((held ->> coalesce(a.category, h.key))::bigint, 0) END AS held_back
          FROM months mo
          LEFT JOIN jsonb_each_text(held) h ON mo.month = current_month
          FULL JOIN acted a ON a.month = mo.month AND a.category = h.key
         WHERE a.month IS NOT NULL OR h.key IS NOT NULL
    ), requests AS (
        SELECT mo.month, r.kind,
               count(*) FILTER (WHERE r.received_at >= mo.starts AND r.received_at < mo.ends) AS received,
               count(*) FILTER (WHERE r.completed_at >= mo.starts AND r.completed_at < mo.ends
                                  AND r.completed_at <= r.due_at) AS on_time,
               count(*) FILTER (WHERE r.completed_at >= mo.starts AND r.completed_at < mo.ends
                                  AND r.completed_at > r.due_at) AS late,
               count(*) FILTER (WHERE r.received_at < mo.ends
                                  AND (r.completed_at IS NULL OR r.completed_at >= mo.ends)) AS open
          FROM months mo
         CROSS JOIN (SELECT 'erasure' AS kind, e.received_at, e.due_at, e.completed_at
                       FROM retention.erasure_requests e
                     UNION ALL
                     SELECT 'export', x.received_at, x.due_at, x.completed_at
                       FROM retention.export_requests x) r
         GROUP BY mo.month, r.kind
    ), holds AS (
        SELECT mo.month,
               count(*) FILTER (WHERE h.placed_at >= mo.starts AND h.placed_at < mo.ends) AS placed,
               count(*) FILTER (WHERE h.released_at >= mo.starts AND h.released_at < mo.ends) AS released,
               count(*) FILTER (WHERE h.reviewed_at >= mo.starts AND h.reviewed_at < mo.ends) AS reviewed,
               count(*) FILTER (WHERE h.placed_at < mo.ends
                                  AND (h.released_at IS NULL OR h.released_at >= mo.ends)
                                  AND CASE WHEN h.reviewed_at < mo.ends THEN h.reviewed_at
                                           ELSE h.placed_at END < mo.ends - interval '90 days')
                   AS overdue
          FROM months mo CROSS JOIN retention.holds h
         GROUP BY mo.month
    ), redacted AS (
        SELECT mo.month, sum(t.redactions)::bigint AS redactions
          FROM months mo
          JOIN retention.redaction_counts t
            ON (t.day::timestamp AT TIME ZONE 'UTC') >= mo.starts
           AND (t.day::timestamp AT TIME ZONE 'UTC') < mo.ends
         GROUP BY mo.month
    )
    SELECT mo.month, NULL::text,
           coalesce(sum(c.soft_deleted), 0)::bigint, coalesce(sum(c.hard_deleted), 0)::bigint,
           coalesce(sum(c.anonymized), 0)::bigint, coalesce(sum(c.erased), 0)::bigint,
           coalesce(sum(c.restored), 0)::bigint,
           CASE WHEN mo.month = current_month THEN coalesce(sum(c.held_back), 0)::bigint END,
           coalesce(max(e.received), 0), coalesce(max(e.on_time), 0), coalesce(max(e.late), 0),
           coalesce(max(e.open), 0),
           coalesce(max(x.received), 0), coalesce(max(x.on_time), 0), coalesce(max(x.late), 0),
           coalesce(max(x.open), 0),
           coalesce(max(h.placed), 0), coalesce(max(h.released), 0), coalesce(max(h.reviewed), 0),
           coalesce(max(h.overdue), 0), coalesce(max(rd.redactions), 0),
           broken IS NULL OR broken > head_id, head_id, encode(head_hash, 'hex')
      FROM months mo
      LEFT JOIN per_category c ON c.month = mo.month
      LEFT JOIN requests e ON e.month = mo.month AND e.kind = 'erasure'
      LEFT JOIN requests x ON x.month = mo.month AND x.kind = 'export'
      LEFT JOIN holds h ON h.month = mo.month
      LEFT JOIN redacted rd ON rd.month = mo.month
     GROUP BY mo.month, mo.starts, mo.ends
    UNION ALL
    SELECT c.month, c.category, c.soft_deleted, c.hard_deleted, c.anonymized, c.erased,
           c.restored, c.held_back,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           broken IS NULL OR broken > head_id, head_id, encode(head_hash, 'hex')
      FROM per_category c
     ORDER BY 1, 2 NULLS FIRST;
END
$$;
COMMENT ON FUNCTION retention.evidence(timestamptz, timestamptz) IS
    'Evidence for auditors, per month and category: rows soft-deleted, hard-deleted, anonymized, erased and restored (from the log), rows held back (current month); per month (category NULL): erasure and export requests received, completed on time or late, open, holds placed, released, reviewed, overdue for review, and identifiers redacted on write; the log''s verification and chain head at until';

-- The same evidence as one document an auditor can archive: the period, who produced it and
-- when, the log's head and verification, and per month its totals and categories; `digest` is
-- the SHA-256 of the document without it.
CREATE FUNCTION retention.evidence_json(since timestamptz, until timestamptz) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH ev AS (SELECT * FROM retention.evidence(since, until)),
    doc AS (
        SELECT jsonb_build_object(
                   'since', since, 'until', until,
                   'generated_at', now(), 'generated_by', current_user::text,
                   'log', (SELECT jsonb_build_object('intact', e.log_intact, 'head_id', e.log_head_id,
                                                     'head_hash', e.log_head_hash)
                             FROM ev e LIMIT 1),
                   'months', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                  'month', t.month,
                                  'totals', to_jsonb(t) - 'month' - 'category' - 'log_intact'
                                            - 'log_head_id' - 'log_head_hash',
                                  'categories', (SELECT coalesce(jsonb_object_agg(c.category,
                                                     jsonb_build_object(
                                                         'soft_deleted', c.soft_deleted,
                                                         'hard_deleted', c.hard_deleted,
                                                         'anonymized', c.anonymized,
                                                         'erased', c.erased,
                                                         'restored', c.restored,
                                                         'held_back', c.held_back)), '{}')
                                                   FROM ev c
                                                  WHERE c.month = t.month AND c.category IS NOT NULL))
                                  ORDER BY t.month), '[]')
                                FROM ev t WHERE t.category IS NULL)) AS d)
    SELECT d || jsonb_build_object('digest', encode(sha256(convert_to(d::text, 'UTF8')), 'hex'))
      FROM doc
$$;
COMMENT ON FUNCTION retention.evidence_json(timestamptz, timestamptz) IS
    'retention.evidence() as one JSON document to archive, with the log''s head and a SHA-256 digest of its content';
REVOKE ALL ON FUNCTION retention.evidence(timestamptz, timestamptz),
    retention.evidence_json(timestamptz, timestamptz) FROM PUBLIC;
-- Deadline extensions of erasure requests (extend_request()); erasure_requests gains
-- extended_by, so the view over it is made again.
-- Deadline extensions (GDPR Art. 12(3)): records, at most two months per request in total.
CREATE TABLE retention.erasure_extensions (
    id          bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT erasure_extensions_pkey PRIMARY KEY,
    request_id  bigint NOT NULL
                CONSTRAINT extension_request_exists REFERENCES retention.erasure_records (id),
    extension   interval NOT NULL CONSTRAINT extension_positive CHECK (extension > interval '0'),
    reason      text NOT NULL CONSTRAINT extension_reason_not_empty CHECK (reason <> ''),
    extended_at timestamptz NOT NULL DEFAULT now(),
    extended_by name NOT NULL
);
CREATE INDEX erasure_extensions_request ON retention.erasure_extensions (request_id);
COMMENT ON TABLE retention.erasure_extensions IS 'Deadline extensions of erasure requests (retention.extend_request(), GDPR Art. 12(3)): how long, the reasons given to the data subject, who and when';

SELECT pg_catalog.pg_extension_config_dump('retention.erasure_extensions', '');
SELECT pg_catalog.pg_extension_config_dump('retention.erasure_extensions_id_seq', '');
DROP VIEW retention.overdue_erasure_requests;
CREATE OR REPLACE VIEW retention.erasure_requests AS
SELECT e.id, e.subject, e.tenant, e.status, e.received_at, e.due_at,
       e.status <> 'completed' AND e.due_at < now() AS overdue,
       e.requested_by, e.verified_at, e.verified_by, e.completed_at,
       e.rows_erased, e.rows_anonymized, e.rows_exempt, e.rows_held, e.details,
       coalesce((SELECT sum(x.extension) FROM retention.erasure_extensions x
                  WHERE x.request_id = e.id), interval '0') AS extended_by
  FROM retention.erasure_records e;

CREATE VIEW retention.overdue_erasure_requests AS
SELECT r.*, now() - r.due_at AS overdue_by
  FROM retention.erasure_requests r
 WHERE r.overdue;

COMMENT ON VIEW retention.erasure_requests IS 'Erasure requests: status (pending, verified, completed, waiting_on_hold), due_at = received + 30 days + extended_by (retention.extend_request()), overdue';
COMMENT ON VIEW retention.overdue_erasure_requests IS 'Erasure requests past their due date (30 days, plus any extension) and not completed';
CREATE FUNCTION retention."extend_request"(
	"request_id" bigint, /* Option < i64 > */
	"by" interval, /* Option < Interval > */
	"reason" TEXT /* Option < & str > */
) RETURNS timestamp with time zone /* SqlResult < TimestampWithTimeZone > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'extend_request_wrapper';
REVOKE ALL ON FUNCTION retention.extend_request(bigint, interval, text) FROM PUBLIC;
COMMENT ON FUNCTION retention.extend_request(bigint, interval, text) IS
    'Extends an open erasure request''s deadline (GDPR Art. 12(3)): by at most two months in total, with the reasons given to the data subject; recorded in erasure_extensions; returns the new due_at';
-- Locked categories (lock_category()); categories gains locked.
-- Locked categories (retention.lock_category()): records, like holds; never removed.
CREATE TABLE retention.category_locks (
    category  text CONSTRAINT category_locks_pkey PRIMARY KEY,
    locked_at timestamptz NOT NULL DEFAULT now(),
    locked_by name NOT NULL
);
COMMENT ON TABLE retention.category_locks IS 'Locked categories (retention.lock_category()): their period, window and tenant overrides only lengthen, their clock, event, action and erasure exemption stay; records, never removed';

SELECT pg_catalog.pg_extension_config_dump('retention.category_locks', '');
CREATE OR REPLACE VIEW retention.categories AS
SELECT d.name, d.retain_for, d.clock, d.action, d.soft_delete_window, d.event, d.erasure_exempt,
       d.description, d.name = 'deletion_log' AS builtin, d.updated_at, d.updated_by,
       EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = d.name) AS locked
  FROM retention.category_definitions d
UNION ALL
SELECT 'deletion_log', interval '7 years', 'created', 'delete', NULL, NULL, false,
       'Entries of retention.deletion_log', true, NULL, NULL,
       EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = 'deletion_log')
 WHERE NOT EXISTS (SELECT 1 FROM retention.category_definitions WHERE name = 'deletion_log');

------------------------------------------------------------------------------------------------
-- Locked categories: records, and the triggers that keep their policy from shrinking.
------------------------------------------------------------------------------------------------

CREATE FUNCTION retention.refuse_lock_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'retention.category_locks are records: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege', HINT = 'A category lock is never lifted.';
END
$$;
COMMENT ON FUNCTION retention.refuse_lock_change() IS 'Trigger: category locks are never changed or removed';
CREATE TRIGGER category_locks_are_records BEFORE UPDATE OR DELETE ON retention.category_locks
    FOR EACH ROW EXECUTE FUNCTION retention.refuse_lock_change();
CREATE TRIGGER category_locks_no_truncate BEFORE TRUNCATE ON retention.category_locks
    FOR EACH STATEMENT EXECUTE FUNCTION retention.refuse_lock_change();
ALTER TABLE retention.category_locks ENABLE ALWAYS TRIGGER category_locks_are_records;
ALTER TABLE retention.category_locks ENABLE ALWAYS TRIGGER category_locks_no_truncate;

-- A locked category's period and window only grow; its clock, event, action and erasure
-- exemption stay; it is never dropped. Checked on the table, so that define_category() and
-- drop_category() (whoever calls them) and a superuser's direct writes meet the same rule.
CREATE FUNCTION retention.guard_locked_category() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cat text := CASE WHEN TG_OP = 'INSERT' THEN NEW.name ELSE OLD.name END;
    was record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = cat) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'category "%" is locked: it cannot be dropped', cat
            USING ERRCODE = 'insufficient_privilege', HINT = 'A category lock is never lifted.';
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- An upsert of an existing row is checked as its update; a first row of a locked
        -- category can only be the built-in deletion_log's, redefined.
        IF EXISTS (SELECT 1 FROM retention.category_definitions d WHERE d.name = NEW.name) THEN
            RETURN NEW;
        END IF;
        SELECT interval '7 years' AS retain_for, 'created'::text AS clock, 'delete'::text AS action,
               NULL::interval AS soft_delete_window, NULL::text AS event, false AS erasure_exempt
          INTO was;
    ELSE
        was := OLD;
    END IF;
    IF NEW.name IS DISTINCT FROM cat OR NEW.retain_for < was.retain_for
       OR NEW.clock IS DISTINCT FROM was.clock OR NEW.action IS DISTINCT FROM was.action
       OR NEW.event IS DISTINCT FROM was.event
       OR (was.soft_delete_window IS NOT NULL
           AND (NEW.soft_delete_window IS NULL OR NEW.soft_delete_window < was.soft_delete_window))
       OR (was.erasure_exempt AND NOT NEW.erasure_exempt) THEN
        RAISE EXCEPTION 'category "%" is locked: its period and window can only be lengthened, its clock, event, action and erasure exemption kept', cat
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A category lock is never lifted; define another category for a shorter policy.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION retention.guard_locked_category() IS 'Trigger: a locked category''s period and window only lengthen, its clock, event, action and erasure exemption stay, and it is never dropped';
CREATE TRIGGER category_definitions_locked BEFORE INSERT OR UPDATE OR DELETE
    ON retention.category_definitions
    FOR EACH ROW EXECUTE FUNCTION retention.guard_locked_category();
ALTER TABLE retention.category_definitions ENABLE ALWAYS TRIGGER category_definitions_locked;

-- A tenant override of a locked category may lengthen it, never shorten it: a new override is
-- at least the category's period and window, a changed one at least what it was, and one that
-- lengthens cannot be removed.
CREATE FUNCTION retention.guard_locked_override() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cat text := CASE WHEN TG_OP = 'DELETE' THEN OLD.category ELSE NEW.category END;
    cat_period interval;
    cat_window interval;
    shortens boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = cat) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    SELECT c.retain_for, c.soft_delete_window INTO cat_period, cat_window
      FROM retention.categories c WHERE c.name = cat;
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM retention.tenant_policies p
                    WHERE p.tenant = NEW.tenant AND p.category = NEW.category) THEN
            RETURN NEW;
        END IF;
        shortens := NEW.retain_for < cat_period OR NEW.soft_delete_window < cat_window;
    ELSIF TG_OP = 'UPDATE' THEN
        shortens := NEW.tenant IS DISTINCT FROM OLD.tenant OR NEW.category IS DISTINCT FROM OLD.category
                    OR NEW.retain_for < OLD.retain_for
                    OR coalesce(NEW.soft_delete_window, cat_window) < coalesce(OLD.soft_delete_window, cat_window);
    ELSE
        shortens := OLD.retain_for > cat_period OR coalesce(OLD.soft_delete_window, cat_window) > cat_window;
    END IF;
    IF shortens THEN
        RAISE EXCEPTION 'category "%" is locked: tenant "%"''s period and window can only be lengthened', cat,
                        CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant ELSE NEW.tenant END
            USING ERRCODE = 'insufficient_privilege', HINT = 'A category lock is never lifted.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION retention.guard_locked_override() IS 'Trigger: a tenant override of a locked category only lengthens it';
CREATE TRIGGER tenant_policies_locked BEFORE INSERT OR UPDATE OR DELETE ON retention.tenant_policies
    FOR EACH ROW EXECUTE FUNCTION retention.guard_locked_override();
ALTER TABLE retention.tenant_policies ENABLE ALWAYS TRIGGER tenant_policies_locked;

-- When a row of a locked category is due: its clock plus the period in force for its tenant;
-- NULL when its category is not locked or follows its parent, infinity while its clock has not
-- started. `r` is the row as jsonb, `m` its table's management.
CREATE FUNCTION retention.locked_until(m retention.managed_tables, r jsonb) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cat text := coalesce(r ->> m.category_column, m.category);
    c record;
    v_tenant text := r ->> m.tenant_column;
    starts timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = cat) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM retention.categories k WHERE k.name = cat;
    IF c.clock = 'parent' THEN
        RETURN NULL;   -- goes with its parent, which the lock does not reach
    END IF;
    starts := CASE c.clock
                  WHEN 'created' THEN (r ->> m.created_column)::timestamptz
                  WHEN 'last_activity' THEN (r ->> m.activity_column)::timestamptz
                  ELSE (SELECT e.occurred_at FROM retention.tenant_events e
                         WHERE e.tenant = v_tenant AND e.event = c.event)
              END;
    RETURN coalesce(starts + coalesce((SELECT p.retain_for FROM retention.tenant_policies p
                                        WHERE p.tenant = v_tenant AND p.category = cat),
                                       c.retain_for),
                    'infinity');
END
$$;
COMMENT ON FUNCTION retention.locked_until(retention.managed_tables, jsonb) IS 'Internal: when a row of a locked category is due (NULL when not locked, infinity before its clock starts)';

-- The lock's guard on application tables: a row of a locked category is deleted only once it
-- is due, and no update moves it out of its category or makes it due sooner, whoever does it.
-- The triggers retention_lock_guard (BEFORE DELETE) and retention_lock_update (BEFORE UPDATE OF
-- its category, clock and tenant columns), ENABLE ALWAYS, are on exactly the managed tables
-- that can hold such rows (src/category_lock.rs). SECURITY DEFINER: they fire for the
-- application's roles, which cannot read the policy; they read the row and the policy, and
-- only refuse.
CREATE FUNCTION retention.lock_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m retention.managed_tables;
    until timestamptz;
BEGIN
    SELECT * INTO m FROM retention.managed_tables WHERE tbl = TG_RELID;
    IF NOT FOUND THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    until := retention.locked_until(m, to_jsonb(OLD));
    IF until IS NULL OR until <= now() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' AND retention.locked_until(m, to_jsonb(NEW)) >= until THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a row of table % is in a locked category: it is kept until %',
                    TG_TABLE_NAME, until
        USING ERRCODE = 'object_in_use',
              HINT = 'A locked category''s rows leave only when they expire; an update may not re-tag or re-time them.';
END
$$;
COMMENT ON FUNCTION retention.lock_guard() IS 'Row trigger retention_lock_guard (BEFORE DELETE) and retention_lock_update (BEFORE UPDATE OF the category, clock and tenant columns), ENABLE ALWAYS, on managed tables that can hold rows of a locked category: refuses (55006) to delete such a row before it is due, or to re-tag or re-time it to be due sooner';

-- TRUNCATE of a table that holds rows of a locked category is refused (its statement trigger
-- retention_lock_guard_truncate goes with retention_lock_guard).
CREATE FUNCTION retention.lock_guard_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m retention.managed_tables;
    locked text[];
    found boolean;
BEGIN
    SELECT * INTO m FROM retention.managed_tables WHERE tbl = TG_RELID;
    SELECT array_agg(l.category) INTO locked FROM retention.category_locks l;
    IF m.tbl IS NULL OR locked IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE %s = ANY ($1))', TG_RELID::regclass,
                   CASE WHEN m.category_column IS NULL THEN quote_literal(m.category)
                        ELSE format('coalesce(t.%I::text, %L)', m.category_column, m.category) END)
       INTO found USING locked;
    IF found THEN
        RAISE EXCEPTION 'table % holds rows of a locked category: it cannot be truncated', TG_RELID::regclass
            USING ERRCODE = 'object_in_use',
                  HINT = 'A locked category''s rows leave only when they expire.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION retention.lock_guard_truncate() IS 'Statement trigger retention_lock_guard_truncate (BEFORE TRUNCATE, ENABLE ALWAYS), with retention_lock_guard: refuses (55006) to truncate a table holding rows of a locked category';

-- SECURITY DEFINER, as check_guarded_tables. The lock's triggers stay enabled always, and are
-- not dropped from a table that can hold rows of a locked category; the extension's own
-- changes pass, and so does a restore (it creates them after the table).
CREATE FUNCTION retention.check_locked_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    broken text;
BEGIN
    IF retention.guard_changing() THEN
        RETURN;
    END IF;
    SELECT t.tgrelid::regclass::text INTO broken
      FROM pg_catalog.pg_trigger t
     WHERE t.tgfoid IN ('retention.lock_guard()'::regprocedure,
                        'retention.lock_guard_truncate()'::regprocedure)
       AND t.tgenabled <> 'A'
     LIMIT 1;
    IF broken IS NULL AND TG_TAG IN ('DROP TRIGGER', 'ALTER TRIGGER') THEN
        SELECT m.tbl::text INTO broken
          FROM retention.managed_tables m
         WHERE EXISTS (SELECT 1 FROM retention.category_locks l
                        WHERE l.category = m.category OR m.category_column IS NOT NULL)
           AND (SELECT count(*) FROM pg_catalog.pg_trigger t
                 WHERE t.tgrelid = m.tbl
                   AND t.tgname IN ('retention_lock_guard', 'retention_lock_guard_truncate')) < 2
         LIMIT 1;
    END IF;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'table % can hold rows of a locked category: its lock guard cannot be dropped, renamed or disabled', broken
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'A category lock is never lifted.';
    END IF;
END
$$;
COMMENT ON FUNCTION retention.check_locked_tables() IS 'Event trigger: keeps the lock''s triggers on the tables that can hold rows of a locked category, enabled always';

CREATE EVENT TRIGGER retention_lock_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'DROP TRIGGER', 'ALTER TRIGGER')
    EXECUTE FUNCTION retention.check_locked_tables();
COMMENT ON EVENT TRIGGER retention_lock_ddl IS 'Keeps the lock''s triggers in place (retention.check_locked_tables())';

CREATE FUNCTION retention."lock_category"(
	"name" TEXT /* Option < & str > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lock_category_wrapper';
REVOKE ALL ON FUNCTION retention.lock_category(text), retention.refuse_lock_change(),
    retention.guard_locked_category(), retention.guard_locked_override(), retention.lock_guard(),
    retention.lock_guard_truncate(), retention.check_locked_tables(),
    retention.locked_until(retention.managed_tables, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION retention.lock_category(text) IS 'Locks a category (legal duty): from now on its period, window and tenant overrides only lengthen, its clock, event, action and erasure exemption stay, and its rows leave only by expiry (request_delete refuses them, erasure counts them exempt); never unlocked';
-- export_log() refuses a NULL or reversed period, as evidence() does.
CREATE OR REPLACE FUNCTION retention.export_log(since timestamptz DEFAULT '-infinity',
                                    until timestamptz DEFAULT 'infinity')
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'arguments "since" and "until" must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF until <= since THEN
        RAISE EXCEPTION 'the period must end after it starts'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
SELECT jsonb_build_object(
           'id', l.id,
           'logged_at', to_char(l.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'logged_at_us', (extract(epoch FROM l.logged_at) * 1000000)::bigint,
           'action', l.action,
           'table_name', l.table_name,
           'row_key', l.row_key::text,
           'tenant', l.tenant,
           'category', l.category,
           'reason', l.reason,
           'retain_for', CASE WHEN l.retain_for IS NOT NULL THEN
               ((extract(year FROM l.retain_for) * 12 + extract(month FROM l.retain_for))::bigint)::text
               || ',' || (extract(day FROM l.retain_for)::bigint)::text
               || ',' || ((extract(hour FROM l.retain_for) * 3600000000
                           + extract(minute FROM l.retain_for) * 60000000
                           + extract(microseconds FROM l.retain_for))::bigint)::text END,
           'run_id', l.run_id,
           'actor', l.actor::text,
           'prev_hash', encode(l.prev_hash, 'hex'),
           'hash', encode(l.hash, 'hex'))::text
  FROM retention.deletion_log l
 WHERE l.logged_at >= since AND l.logged_at < until
 ORDER BY l.id;
END
$$;

REVOKE ALL ON FUNCTION retention.redact(regclass, text[], text[], text, text),
    retention.unredact(regclass), retention.redact_row(), retention.redaction_count(),
    retention.forget_redacted_tables(), retention.check_redacted_tables() FROM PUBLIC;
-- The duties that read or manage redaction.
CREATE OR REPLACE FUNCTION retention.grant_policy_admin(grantee regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'argument "grantee" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA retention TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        retention.define_category(text, interval, text, text, interval, text, boolean, text),
        retention.drop_category(text),
        retention.manage(regclass, text, text, text, text, text, text, text, jsonb),
        retention.unmanage(regclass),
        retention.tag(regclass, text, anyarray),
        retention.tag_where(regclass, text, text),
        retention.set_tenant_policy(text, text, interval, interval),
        retention.clear_tenant_policy(text, text),
        retention.record_event(text, text, timestamptz),
        retention.cancel_event(text, text),
        retention.request_delete(regclass, anyarray, text),
        retention.restore(regclass, anyarray),
        retention.request_erasure(text, timestamptz, text),
        retention.extend_request(bigint, interval, text),
        retention.verify_erasure(bigint),
        retention.run(regclass, boolean),
        retention.preview(interval),
        retention.request_export(text, timestamptz, text, text),
        retention.verify_export(bigint),
        retention.export_data(bigint),
        retention.export_tenant(text),
        retention.explain(regclass, anyarray),
        retention.metrics(),
        retention.reapply_deletions(timestamptz),
        retention.redact(regclass, text[], text[], text, text),
        retention.unredact(regclass),
        retention.log_trimming(),
        retention.hold_stamping()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT ON
        retention.category_definitions, retention.managed_tables, retention.tenant_policies,
        retention.tenant_events, retention.deletion_queue, retention.erasure_records,
        retention.anonymized_rows, retention.runs, retention.deletion_log, retention.log_anchor,
        retention.categories, retention.holds, retention.status, retention.queued_deletions,
        retention.erasure_requests, retention.overdue_erasure_requests,
        retention.export_records, retention.export_deliveries, retention.export_requests,
        retention.overdue_export_requests, retention.progress, retention.redaction_rules,
        retention.erasure_extensions, retention.category_locks,
        retention.redaction_tallies, retention.redactions, retention.redaction_counts TO %s', grantee);
END
$$;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid = 'retention.run(regclass, boolean)'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        PERFORM retention.grant_policy_admin(r.grantee);
    END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION retention.grant_auditor(grantee regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'argument "grantee" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA retention TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        retention.verify_log(),
        retention.export_log(timestamptz, timestamptz),
        retention.evidence(timestamptz, timestamptz),
        retention.evidence_json(timestamptz, timestamptz),
        retention.preview(interval),
        retention.explain(regclass, anyarray),
        retention.metrics(),
        retention.log_canonical(retention.deletion_log),
        retention.log_field(text)
        TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.deletion_log, retention.log_anchor, retention.runs,
        retention.holds, retention.notifications, retention.categories, retention.status,
        retention.erasure_requests, retention.overdue_erasure_requests,
        retention.holds_due_for_review, retention.export_requests,
        retention.overdue_export_requests, retention.export_deliveries, retention.progress,
        retention.redactions, retention.redaction_counts, retention.erasure_extensions,
        retention.category_locks
        TO %s', grantee);
END
$$;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid = 'retention.verify_log()'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        PERFORM retention.grant_auditor(r.grantee);
    END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION retention.grant_legal(grantee regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'argument "grantee" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA retention TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        retention.place_hold(text, text, text, regclass, text, boolean, boolean),
        retention.release_hold(bigint, text),
        retention.review_hold(bigint, text),
        retention.lock_category(text),
        retention.hold_stamping()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.holds, retention.notifications,
        retention.categories, retention.holds_due_for_review, retention.queued_deletions,
        retention.category_locks
        TO %s', grantee);
END
$$;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid = 'retention.review_hold(bigint, text)'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        PERFORM retention.grant_legal(r.grantee);
    END LOOP;
END
$$;
