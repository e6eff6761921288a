-- pg_retention 0.3.0 → 0.4.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

-- Holds: frozen holds, the release grace, and the rows a release freed.
ALTER TABLE retention.holds
    ADD COLUMN frozen boolean NOT NULL DEFAULT false,
    ADD COLUMN grace_until timestamptz,
    ADD COLUMN rows_freed bigint,
    ADD CONSTRAINT hold_grace_after_release
        CHECK (grace_until IS NULL OR grace_until >= released_at);
COMMENT ON COLUMN retention.holds.frozen IS 'Placed with freeze => true: rows it covers cannot be updated at all, not only moved out of its scope';
COMMENT ON COLUMN retention.holds.grace_until IS 'Stamped at release (released_at + pg_retention.hold_release_grace): until then the rows it kept stay out of the extension''s purges and deletions';
COMMENT ON COLUMN retention.holds.rows_freed IS 'Stamped at release: rows the hold covered that no other hold kept';
-- The view lists every column of holds, the new ones included.
CREATE OR REPLACE VIEW retention.holds_due_for_review AS
SELECT h.*
  FROM retention.holds h
 WHERE h.released_at IS NULL
   AND coalesce(h.reviewed_at, h.placed_at) < now() - interval '90 days';

CREATE OR REPLACE FUNCTION retention.guard_hold_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A hold inserted directly waits for running purge batches, as place_hold() does, and
    -- names a category that exists (the built-in deletion_log included).
    IF TG_OP = 'INSERT' THEN
        PERFORM retention.hold_lock();
        IF NEW.category IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM retention.categories c WHERE c.name = NEW.category) THEN
            RAISE EXCEPTION 'category "%" does not exist', NEW.category
                USING ERRCODE = 'undefined_object';
        END IF;
        RETURN NEW;
    END IF;
    -- A hold's release and review are stamped only through release_hold() and review_hold()
    -- (retention.hold_stamping() is true only inside them); every other column stays as
    -- placed, and a release is stamped once.
    IF TG_OP = 'UPDATE' AND retention.hold_stamping()
       AND (OLD.id, OLD.reason, OLD.tenant, OLD.subject, OLD.tbl, OLD.category, OLD.notify,
            OLD.placed_at, OLD.placed_by, OLD.frozen)
           IS NOT DISTINCT FROM
           (NEW.id, NEW.reason, NEW.tenant, NEW.subject, NEW.tbl, NEW.category, NEW.notify,
            NEW.placed_at, NEW.placed_by, NEW.frozen)
       AND (OLD.released_at IS NULL
            OR (OLD.released_at, OLD.released_by, OLD.release_note, OLD.grace_until,
                OLD.rows_freed)
               IS NOT DISTINCT FROM
               (NEW.released_at, NEW.released_by, NEW.release_note, NEW.grace_until,
                NEW.rows_freed))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'retention.holds are records: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Use retention.release_hold() or retention.review_hold().';
END
$$;

-- The active holds that can cover rows of managed table tbl: scoped to it or to no table, and
-- whose tenant, subject and category scopes the table can match. Retention wins over deletion:
-- while one exists, the table is guarded (src/guard.rs) and can be neither unmanaged nor
-- dropped.
CREATE FUNCTION retention.covering_holds(tbl regclass) RETURNS SETOF retention.holds
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.*
      FROM retention.holds h
      JOIN retention.managed_tables m ON m.tbl = $1
     WHERE h.released_at IS NULL
       AND (h.tbl IS NULL OR h.tbl = m.tbl)
       AND (h.tenant IS NULL OR m.tenant_column IS NOT NULL)
       AND (h.subject IS NULL OR m.subject_column IS NOT NULL)
       AND (h.category IS NULL OR h.category = m.category OR m.category_column IS NOT NULL)
$$;
COMMENT ON FUNCTION retention.covering_holds(regclass) IS 'The active holds that can cover rows of a managed table';

CREATE OR REPLACE FUNCTION retention.covering_hold(tbl regclass, OUT id bigint, OUT reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.id, h.reason FROM retention.covering_holds($1) h ORDER BY h.id LIMIT 1
$$;
REVOKE ALL ON FUNCTION retention.covering_holds(regclass) FROM PUBLIC;

-- place_hold() gains freeze. Its duty grants move to the new definition (below). Until this
-- update, the library serves the old six-argument definition too (symbol place_hold_wrapper).
CREATE FUNCTION retention."place_hold"(
	"reason" TEXT, /* Option < & str > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"subject" TEXT DEFAULT NULL, /* Option < & str > */
	"tbl" regclass DEFAULT NULL, /* Option < RegClass > */
	"category" TEXT DEFAULT NULL, /* Option < & str > */
	"notify" bool DEFAULT true, /* Option < bool > */
	"freeze" bool DEFAULT false /* Option < bool > */
) RETURNS bigint /* SqlResult < i64 > */
VOLATILE PARALLEL UNSAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'place_hold_with_freeze_wrapper';
REVOKE ALL ON FUNCTION retention.place_hold(text, text, text, regclass, text, boolean, boolean) FROM PUBLIC;
DROP FUNCTION retention.place_hold(text, text, text, regclass, text, boolean);
COMMENT ON FUNCTION retention.place_hold(text, text, text, regclass, text, boolean, boolean) IS
    'Places a legal hold over every row matching all its scopes (freeze: refuse content updates of its rows too); returns the hold id';
COMMENT ON FUNCTION retention.release_hold(bigint, text) IS 'Releases a hold (stamped with who, when, note, and the rows it frees, which the extension''s purges and deletions leave alone until pg_retention.hold_release_grace after the release)';
COMMENT ON FUNCTION retention.preview(interval) IS 'Rows due now or within the horizon, per table, category and tenant, and the holds keeping rows back (a released hold until its grace ends)';

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
        retention.hold_stamping()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.holds, retention.notifications,
        retention.categories, retention.holds_due_for_review, retention.queued_deletions
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

-- The guard's row trigger fires before DELETE; a scope trigger after UPDATE OF the scope and
-- clock columns only.
CREATE FUNCTION retention."guard_changing"() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'guard_changing_wrapper';
REVOKE ALL ON FUNCTION retention.guard_changing() FROM PUBLIC;
COMMENT ON FUNCTION retention.guard_changing() IS 'Internal: true only while the extension changes the hold guard''s triggers';
COMMENT ON FUNCTION retention.hold_guard() IS 'Row trigger the extension puts on each managed table an active hold can cover (BEFORE DELETE; AFTER UPDATE OF its scope and clock columns; BEFORE UPDATE while a frozen hold can cover it; ENABLE ALWAYS): refuses (55006) to delete a held row, to change its tenant, subject, category or clock column, or to change a frozen one at all';

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT m.tbl::text AS tbl,
                    (SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = m.tbl AND NOT a.attisdropped
                        AND a.attname IN (m.tenant_column, m.subject_column, m.category_column,
                                          m.created_column, m.activity_column)) AS columns
               FROM retention.managed_tables m
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                             WHERE t.tgrelid = m.tbl AND t.tgname = 'retention_hold_guard')
    LOOP
        EXECUTE format('DROP TRIGGER retention_hold_guard ON %s', r.tbl);
        EXECUTE format('CREATE TRIGGER retention_hold_guard BEFORE DELETE ON %s
                            FOR EACH ROW EXECUTE FUNCTION retention.hold_guard()', r.tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_hold_guard', r.tbl);
        IF r.columns IS NOT NULL THEN
            EXECUTE format('CREATE TRIGGER retention_hold_scope AFTER UPDATE OF %s ON %s
                                FOR EACH ROW EXECUTE FUNCTION retention.hold_guard()',
                           r.columns, r.tbl);
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_hold_scope', r.tbl);
        END IF;
    END LOOP;
END
$$;

-- SECURITY DEFINER, as forget_dropped_tables. After ALTER TABLE, DROP TRIGGER and ALTER
-- TRIGGER: a column the policy of an altered managed table reads is neither dropped nor
-- renamed, and a table an active hold can cover keeps its guard triggers, enabled always. The
-- extension's own changes of the guard (retention.guard_changing()) pass, and so does a
-- restore that creates the triggers after the table. PostgreSQL itself refuses ALTER COLUMN …
-- TYPE of a guarded column: the guard's row trigger depends on it (UPDATE OF).
CREATE FUNCTION retention.check_guarded_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    broken record;
BEGIN
    IF retention.guard_changing() THEN
        RETURN;
    END IF;
    SELECT m.tbl::text AS tbl, r.role, r.col INTO broken
      FROM retention.managed_tables m
     CROSS JOIN LATERAL (VALUES ('created', m.created_column), ('activity', m.activity_column),
                                ('tenant', m.tenant_column), ('subject', m.subject_column),
                                ('category', m.category_column),
                                ('soft-delete', m.soft_delete_column)) AS r(role, col)
     WHERE r.col IS NOT NULL
       AND m.tbl::oid IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = m.tbl AND a.attname = r.col AND NOT a.attisdropped)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column "%" of table % is the % column of its retention policy: it cannot be dropped or renamed',
                        broken.col, broken.tbl, broken.role
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Unmanage the table with retention.unmanage() first, or manage it again without this column.';
    END IF;
    SELECT m.tbl::text AS tbl, c.id, c.reason INTO broken
      FROM retention.managed_tables m
     CROSS JOIN LATERAL retention.covering_hold(m.tbl) c
     WHERE c.id IS NOT NULL
       AND (EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                     WHERE t.tgrelid = m.tbl AND t.tgenabled <> 'A'
                       AND t.tgfoid IN ('retention.hold_guard()'::regprocedure,
                                        'retention.hold_guard_truncate()'::regprocedure))
            OR (TG_TAG IN ('DROP TRIGGER', 'ALTER TRIGGER')
                AND ((SELECT count(*) FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = m.tbl
                         AND t.tgname IN ('retention_hold_guard', 'retention_hold_guard_truncate')) < 2
                     OR (coalesce(m.tenant_column, m.subject_column, m.category_column,
                                  m.created_column, m.activity_column) IS NOT NULL
                         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                          WHERE t.tgrelid = m.tbl AND t.tgname = 'retention_hold_scope'))
                     OR (EXISTS (SELECT 1 FROM retention.covering_holds(m.tbl) h WHERE h.frozen)
                         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                          WHERE t.tgrelid = m.tbl AND t.tgname = 'retention_hold_freeze')))))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table % is under legal hold % (%): its hold guard cannot be dropped or disabled',
                        broken.tbl, broken.id, broken.reason
            USING ERRCODE = 'object_in_use',
                  HINT = 'Legal releases the hold with retention.release_hold().';
    END IF;
END
$$;

CREATE EVENT TRIGGER retention_guard_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'DROP TRIGGER', 'ALTER TRIGGER')
    EXECUTE FUNCTION retention.check_guarded_tables();
REVOKE ALL ON FUNCTION retention.check_guarded_tables() FROM PUBLIC;
COMMENT ON FUNCTION retention.check_guarded_tables() IS 'Event trigger: refuses to drop or rename a column a managed table''s policy reads, and to drop or disable the hold guard of a table an active hold can cover';
COMMENT ON EVENT TRIGGER retention_guard_ddl IS 'Keeps managed tables'' policy columns and guarded tables'' hold guards in place (retention.check_guarded_tables())';

-- Answers (issue 16): export requests and deliveries, evidence for auditors.
-- Export requests (GDPR Art. 15 access, Art. 20 portability): the twin of erasure requests.
-- A DSAR platform may submit with its own external_id, idempotently.
CREATE TABLE retention.export_records (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    subject      text NOT NULL CONSTRAINT export_subject_not_empty CHECK (subject <> ''),
    tenant       text CONSTRAINT export_tenant_not_empty CHECK (tenant <> ''),
    external_id  text CONSTRAINT export_external_id_unique UNIQUE
                      CONSTRAINT export_external_id_not_empty CHECK (external_id <> ''),
    received_at  timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CONSTRAINT export_status_known CHECK (status IN ('pending', 'verified', 'completed')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by name NOT NULL,
    verified_at  timestamptz,
    verified_by  name,
    completed_at timestamptz
);
COMMENT ON TABLE retention.export_records IS 'Export requests per data subject (the table behind retention.export_requests)';
COMMENT ON COLUMN retention.export_records.external_id IS 'The id a DSAR platform gave the request: submitting it again returns the same request';
COMMENT ON COLUMN retention.export_records.completed_at IS 'When the data was first delivered by retention.export_data()';

-- Every delivery of exported data: who, when, and how many rows per table; never the content.
CREATE TABLE retention.export_deliveries (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    request_id   bigint CONSTRAINT delivery_request_exists REFERENCES retention.export_records (id),
    tenant       text,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    delivered_by name NOT NULL,
    rows         jsonb NOT NULL,
    CONSTRAINT delivery_has_one_scope CHECK ((request_id IS NULL) <> (tenant IS NULL))
);
COMMENT ON TABLE retention.export_deliveries IS 'Every export delivered (export_data for a request, export_tenant for a tenant): who, when, rows per table; never the content';
COMMENT ON COLUMN retention.export_deliveries.rows IS 'Rows delivered per table: {"schema.table": count}';

CREATE VIEW retention.export_requests AS
SELECT e.id, e.subject, e.tenant, e.external_id, e.status, e.received_at, e.due_at,
       e.status <> 'completed' AND e.due_at < now() AS overdue,
       e.requested_by, e.verified_at, e.verified_by, e.completed_at
  FROM retention.export_records e;
COMMENT ON VIEW retention.export_requests IS 'Export requests: status (pending, verified, completed), due_at = received + 30 days, overdue';

CREATE VIEW retention.overdue_export_requests AS
SELECT r.*, now() - r.due_at AS overdue_by
  FROM retention.export_requests r
 WHERE r.overdue;
COMMENT ON VIEW retention.overdue_export_requests IS 'Export requests past their 30-day due date and not delivered';

SELECT pg_catalog.pg_extension_config_dump('retention.export_records', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_records_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_deliveries_id_seq', '');

CREATE FUNCTION retention."request_export"(
	"subject" TEXT, /* Option < & str > */
	"received_at" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"external_id" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bigint /* SqlResult < i64 > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'request_export_wrapper';
CREATE FUNCTION retention."verify_export"(
	"request_id" bigint /* Option < i64 > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_export_wrapper';
CREATE FUNCTION retention."export_data"(
	"request_id" bigint /* Option < i64 > */
) RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"row_key" jsonb,  /* JsonB */
	"data" jsonb  /* JsonB */
)
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'export_data_wrapper';
CREATE FUNCTION retention."export_tenant"(
	"tenant" TEXT /* Option < & str > */
) RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"row_key" jsonb,  /* JsonB */
	"data" jsonb  /* JsonB */
)
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'export_tenant_wrapper';
CREATE FUNCTION retention."explain"(
	"tbl" regclass, /* Option < RegClass > */
	"key" anyarray /* Option < AnyArray > */
) RETURNS TABLE (
	"row_key" jsonb,  /* JsonB */
	"present" bool,  /* bool */
	"category" TEXT,  /* Option < String > */
	"tagged" bool,  /* Option < bool > */
	"clock" TEXT,  /* Option < String > */
	"clock_value" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"retain_for" interval,  /* Option < Interval > */
	"policy" TEXT,  /* Option < String > */
	"due_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"soft_deleted_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"window_ends" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"holds" jsonb,  /* JsonB */
	"queued" jsonb,  /* JsonB */
	"next_action" TEXT,  /* String */
	"next_action_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"log" jsonb  /* JsonB */
)
STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'explain_wrapper';
REVOKE ALL ON FUNCTION retention.explain(regclass, anyarray) FROM PUBLIC;
COMMENT ON FUNCTION retention.explain(regclass, anyarray) IS
    'Per key: category (tagged or default), clock and its value, policy in force and due time, soft delete and window end, holds keeping it, queued requests, the purger''s next action and when; for a row that is gone, its deletion-log entries';
CREATE FUNCTION retention."metrics"() RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"rows_deleted" bigint,  /* i64 */
	"rows_soft_deleted" bigint,  /* i64 */
	"rows_anonymized" bigint,  /* i64 */
	"rows_restored" bigint,  /* i64 */
	"backlog_rows" bigint,  /* i64 */
	"held_back_rows" bigint,  /* i64 */
	"oldest_overdue_seconds" double precision,  /* Option < f64 > */
	"last_success" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"failed_runs_24h" bigint,  /* i64 */
	"last_error" TEXT  /* Option < String > */
)
STRICT STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'metrics_wrapper';
REVOKE ALL ON FUNCTION retention.metrics() FROM PUBLIC;
COMMENT ON FUNCTION retention.metrics() IS
    'Per managed table, for Prometheus: rows deleted, soft-deleted, anonymized and restored (from the log), rows due now and held back, seconds the oldest due row is overdue, last successful run, failed runs in 24 h, last error';
CREATE FUNCTION retention."progress_rows"() RETURNS TABLE (
	"pid" INT,  /* i32 */
	"purger" TEXT,  /* String */
	"table_name" TEXT,  /* Option < String > */
	"step" INT,  /* i32 */
	"steps" INT,  /* i32 */
	"rows_done" bigint,  /* i64 */
	"rows_remaining_estimate" bigint,  /* i64 */
	"rows_per_second" double precision,  /* f64 */
	"throttled" bool,  /* bool */
	"table_started_at" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'progress_rows_wrapper';
REVOKE ALL ON FUNCTION retention.progress_rows() FROM PUBLIC;
COMMENT ON FUNCTION retention.progress_rows() IS 'The function behind the view retention.progress';
-- What each running purger does now (the worker's cycle, or a session's run()), in the style of
-- pg_stat_progress_vacuum: from shared memory (src/progress.rs).
CREATE VIEW retention.progress AS
SELECT p.* FROM retention.progress_rows() p;
COMMENT ON VIEW retention.progress IS 'Running purgers of this database: pid, worker or run, table, step of steps, rows done, estimated rows left in the step, rows per second, whether throttled, when the table started';
REVOKE ALL ON FUNCTION retention.request_export(text, timestamptz, text, text),
    retention.verify_export(bigint), retention.export_data(bigint), retention.export_tenant(text)
    FROM PUBLIC;
COMMENT ON FUNCTION retention.request_export(text, timestamptz, text, text) IS
    'Records an export request (GDPR Art. 15/20) for a data subject (one tenant, or all); due 30 days after receipt; idempotent per external_id; returns its id';
COMMENT ON FUNCTION retention.verify_export(bigint) IS 'Marks an export request verified: export_data() may then deliver it';
COMMENT ON FUNCTION retention.export_data(bigint) IS
    'The subject''s rows (held ones included) in every managed table with a subject column, read as the caller; records the delivery and completes the request';
COMMENT ON FUNCTION retention.export_tenant(text) IS
    'A tenant''s rows in every managed table with a tenant column, read as the caller (e.g. before its termination''s deletion); records the delivery';

-- Evidence for auditors (SOC 2): per month of [since, until) and per category, what the policy
-- did, counted from the deletion log; per month (the row whose category is NULL, which also
-- totals the categories), erasure and export requests and holds, counted from their records;
-- and in every row the log's verification and its chain head at `until`. Rows held back are
-- known only now: held_back is given for the month containing now() (what preview() shows
-- held), NULL for other months.
CREATE FUNCTION retention.evidence(since timestamptz, until timestamptz)
RETURNS TABLE (month date, category text,
               soft_deleted bigint, hard_deleted bigint, anonymized bigint, erased bigint,
               restored bigint, held_back bigint,
               erasures_received bigint, erasures_on_time bigint, erasures_late bigint,
               erasures_open bigint,
               exports_received bigint, exports_on_time bigint, exports_late bigint,
               exports_open bigint,
               holds_placed bigint, holds_released bigint, holds_reviewed bigint,
               holds_overdue_for_review bigint,
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
           coalesce(max(h.overdue), 0),
           broken IS NULL OR broken > head_id, head_id, encode(head_hash, 'hex')
      FROM months mo
      LEFT JOIN per_category c ON c.month = mo.month
      LEFT JOIN requests e ON e.month = mo.month AND e.kind = 'erasure'
      LEFT JOIN requests x ON x.month = mo.month AND x.kind = 'export'
      LEFT JOIN holds h ON h.month = mo.month
     GROUP BY mo.month, mo.starts, mo.ends
    UNION ALL
    SELECT c.month, c.category, c.soft_deleted, c.hard_deleted, c.anonymized, c.erased,
           c.restored, c.held_back,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           broken IS NULL OR broken > head_id, head_id, encode(head_hash, 'hex')
      FROM per_category c
     ORDER BY 1, 2 NULLS FIRST;
END
$$;
COMMENT ON FUNCTION retention.evidence(timestamptz, timestamptz) IS
    'Evidence for auditors, per month and category: rows soft-deleted, hard-deleted, anonymized, erased and restored (from the log), rows held back (current month); per month (category NULL): erasure and export requests received, completed on time or late, open, and holds placed, released, reviewed, overdue for review; the log''s verification and chain head at until';

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
        retention.overdue_export_requests, retention.progress TO %s', grantee);
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
        retention.overdue_export_requests, retention.export_deliveries, retention.progress
        TO %s', grantee);
END
$$;

-- The policy-admin and auditor duties gain the new functions and views.
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
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid = 'retention.verify_log()'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        PERFORM retention.grant_auditor(r.grantee);
    END LOOP;
END
$$;
