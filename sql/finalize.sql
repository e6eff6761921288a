-- pg_retention: what depends on the functions, and what users read with \d+ and \df+.
-- Loaded last (extension_sql_file!(…, finalize)).

------------------------------------------------------------------------------------------------
-- The deletion log: canonical form, chain verification, append-only guard.
------------------------------------------------------------------------------------------------

-- log_field and log_canonical are plain SQL expressions with every function schema-qualified
-- and no SET clause, so that the planner inlines them: verify_log() hashes every entry.
CREATE FUNCTION retention.log_field(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN value IS NULL THEN '-'
                  ELSE pg_catalog.octet_length(value)::text OPERATOR(pg_catalog.||) ':'
                       OPERATOR(pg_catalog.||) value END $$;

CREATE FUNCTION retention.log_canonical(entry retention.deletion_log) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT pg_catalog.convert_to(
       retention.log_field(entry.id::text)
    || retention.log_field(((extract(epoch FROM entry.logged_at) * 1000000)::bigint)::text)
    || retention.log_field(entry.action)
    || retention.log_field(entry.table_name)
    || retention.log_field(entry.row_key::text)
    || retention.log_field(entry.tenant)
    || retention.log_field(entry.category)
    || retention.log_field(entry.reason)
    || retention.log_field(CASE WHEN entry.retain_for IS NOT NULL THEN
             ((extract(year FROM entry.retain_for) * 12 + extract(month FROM entry.retain_for))::bigint)::text
             || ',' || (extract(day FROM entry.retain_for)::bigint)::text
             || ',' || ((extract(hour FROM entry.retain_for) * 3600000000
                         + extract(minute FROM entry.retain_for) * 60000000
                         + extract(microseconds FROM entry.retain_for))::bigint)::text
           END)
    || retention.log_field(entry.run_id::text)
    || retention.log_field(entry.actor::text)
    || CASE WHEN entry.approval_id IS NULL THEN ''
            ELSE retention.log_field(entry.approval_id::text) END,
    'UTF8')
$$;

CREATE FUNCTION retention.verify_log() RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH anchor AS (
    SELECT coalesce((SELECT last_id FROM retention.log_anchor ORDER BY last_id DESC LIMIT 1), 0) AS last_id,
           coalesce((SELECT last_hash FROM retention.log_anchor ORDER BY last_id DESC LIMIT 1),
                    decode(repeat('00', 32), 'hex')) AS last_hash
), chain AS (
    SELECT l.id, l.prev_hash, l.hash,
           sha256(l.prev_hash || retention.log_canonical(l)) AS computed,
           lag(l.id) OVER w AS prev_id, lag(l.hash) OVER w AS prev_row_hash
      FROM retention.deletion_log l
    WINDOW w AS (ORDER BY l.id)
)
SELECT min(c.id)
  FROM chain c, anchor a
 WHERE c.computed IS DISTINCT FROM c.hash
    OR (c.prev_id IS NULL AND (c.id <> a.last_id + 1 OR c.prev_hash <> a.last_hash))
    OR (c.prev_id IS NOT NULL AND (c.id <> c.prev_id + 1 OR c.prev_hash <> c.prev_row_hash))
$$;

CREATE FUNCTION retention.refuse_log_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Entries leave only through the log's own retention (retention.log_trimming() is true
    -- only inside it).
    IF TG_OP = 'DELETE' AND retention.log_trimming() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'retention.deletion_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Entries leave the log only through its own retention (category deletion_log).';
END
$$;

CREATE FUNCTION retention.guard_hold_change() RETURNS trigger
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

CREATE TRIGGER deletion_log_append_only BEFORE UPDATE OR DELETE ON retention.deletion_log
    FOR EACH ROW EXECUTE FUNCTION retention.refuse_log_change();
CREATE TRIGGER deletion_log_no_truncate BEFORE TRUNCATE ON retention.deletion_log
    FOR EACH STATEMENT EXECUTE FUNCTION retention.refuse_log_change();
CREATE TRIGGER holds_append_only BEFORE INSERT OR UPDATE OR DELETE ON retention.holds
    FOR EACH ROW EXECUTE FUNCTION retention.guard_hold_change();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON retention.holds
    FOR EACH STATEMENT EXECUTE FUNCTION retention.guard_hold_change();
-- Also with session_replication_role = replica.
ALTER TABLE retention.deletion_log ENABLE ALWAYS TRIGGER deletion_log_append_only;
ALTER TABLE retention.deletion_log ENABLE ALWAYS TRIGGER deletion_log_no_truncate;
ALTER TABLE retention.holds ENABLE ALWAYS TRIGGER holds_append_only;
ALTER TABLE retention.holds ENABLE ALWAYS TRIGGER holds_no_truncate;

CREATE FUNCTION retention.export_log(since timestamptz DEFAULT '-infinity',
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
SELECT (jsonb_build_object(
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
           'hash', encode(l.hash, 'hex'))
       || CASE WHEN l.approval_id IS NULL THEN '{}'::jsonb
               ELSE jsonb_build_object('approval_id', l.approval_id) END)::text
  FROM retention.deletion_log l
 WHERE l.logged_at >= since AND l.logged_at < until
 ORDER BY l.id;
END
$$;

-- Counsel reviews each active hold at least this often: one whose last review (or placement) is
-- older is due for review (holds_due_for_review, status, evidence). IMMUTABLE SQL with no SET
-- clause, so that the planner inlines it as a constant; executable by everyone (granted below).
CREATE FUNCTION retention.hold_review_period() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT interval '90 days' $$;
COMMENT ON FUNCTION retention.hold_review_period() IS
    'How often counsel reviews an active hold: one whose last review, or placement, is older than this is due for review (holds_due_for_review, status, evidence)';

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
                                           ELSE h.placed_at END < mo.ends - retention.hold_review_period())
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

------------------------------------------------------------------------------------------------
-- Dropped tables leave retention management with them.
------------------------------------------------------------------------------------------------

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

CREATE FUNCTION retention.covering_hold(tbl regclass, OUT id bigint, OUT reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.id, h.reason FROM retention.covering_holds($1) h ORDER BY h.id LIMIT 1
$$;

-- SECURITY DEFINER: it fires on everyone's DDL, and a role without rights on retention must
-- still be able to drop its own objects. It removes only the rows of tables being dropped, and
-- refuses (55006) to drop a managed table an active hold can cover.
CREATE FUNCTION retention.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held record;
BEGIN
    SELECT d.object_identity, c.id, c.reason INTO held
      FROM pg_event_trigger_dropped_objects() d
      JOIN retention.managed_tables m ON m.tbl::oid = d.objid
      CROSS JOIN LATERAL retention.covering_hold(m.tbl) c
     WHERE d.object_type = 'table' AND c.id IS NOT NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table % is under legal hold % (%): it cannot be dropped',
                        held.object_identity, held.id, held.reason
            USING ERRCODE = 'object_in_use',
                  HINT = 'Legal releases the hold with retention.release_hold().';
    END IF;
    DELETE FROM retention.managed_tables m
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = m.tbl::oid;
    DELETE FROM retention.partition_retirement r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = r.tbl::oid;
END
$$;

CREATE EVENT TRIGGER retention_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION retention.forget_dropped_tables();

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
COMMENT ON EVENT TRIGGER retention_guard_ddl IS 'Keeps managed tables'' policy columns and guarded tables'' hold guards in place (retention.check_guarded_tables())';

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
               NULL::interval AS soft_delete_window, NULL::text AS event, false AS erasure_exempt,
               NULL::interval AS window_expired, NULL::interval AS window_customer_request
          INTO was;
    ELSE
        was := OLD;
    END IF;
    IF NEW.name IS DISTINCT FROM cat OR NEW.retain_for < was.retain_for
       OR NEW.clock IS DISTINCT FROM was.clock OR NEW.action IS DISTINCT FROM was.action
       OR NEW.event IS DISTINCT FROM was.event
       -- Each path's window (its own, else the category's one window) only lengthens.
       OR (coalesce(was.window_expired, was.soft_delete_window) IS NOT NULL
           AND coalesce(coalesce(NEW.window_expired, NEW.soft_delete_window)
                          < coalesce(was.window_expired, was.soft_delete_window), true))
       OR (coalesce(was.window_customer_request, was.soft_delete_window) IS NOT NULL
           AND coalesce(coalesce(NEW.window_customer_request, NEW.soft_delete_window)
                          < coalesce(was.window_customer_request, was.soft_delete_window), true))
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
    cat_expired interval;
    cat_request interval;
    shortens boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = cat) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    -- Windows per path: the override's own, its one window, the category's (src/windows.rs).
    SELECT c.retain_for, coalesce(d.window_expired, c.soft_delete_window),
           coalesce(d.window_customer_request, c.soft_delete_window)
      INTO cat_period, cat_expired, cat_request
      FROM retention.categories c
      LEFT JOIN retention.category_definitions d ON d.name = c.name
     WHERE c.name = cat;
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM retention.tenant_policies p
                    WHERE p.tenant = NEW.tenant AND p.category = NEW.category) THEN
            RETURN NEW;
        END IF;
        shortens := NEW.retain_for < cat_period
                    OR coalesce(NEW.window_expired, NEW.soft_delete_window, cat_expired) < cat_expired
                    OR coalesce(NEW.window_customer_request, NEW.soft_delete_window, cat_request) < cat_request;
    ELSIF TG_OP = 'UPDATE' THEN
        shortens := NEW.tenant IS DISTINCT FROM OLD.tenant OR NEW.category IS DISTINCT FROM OLD.category
                    OR NEW.retain_for < OLD.retain_for
                    OR coalesce(NEW.window_expired, NEW.soft_delete_window, cat_expired)
                       < coalesce(OLD.window_expired, OLD.soft_delete_window, cat_expired)
                    OR coalesce(NEW.window_customer_request, NEW.soft_delete_window, cat_request)
                       < coalesce(OLD.window_customer_request, OLD.soft_delete_window, cat_request);
    ELSE
        shortens := OLD.retain_for > cat_period
                    OR coalesce(OLD.window_expired, OLD.soft_delete_window, cat_expired) > cat_expired
                    OR coalesce(OLD.window_customer_request, OLD.soft_delete_window, cat_request) > cat_request;
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

------------------------------------------------------------------------------------------------
-- Monitoring.
------------------------------------------------------------------------------------------------

CREATE VIEW retention.status AS
SELECT format('%I.%I', n.nspname, c.relname) AS table_name,
       m.category AS default_category,
       last.id AS last_run_id,
       last.started_at AS last_run_at,
       last.status AS last_run_status,
       (last.detail ->> 'hard_deleted')::bigint + (last.detail ->> 'soft_deleted')::bigint
           + (last.detail ->> 'anonymized')::bigint AS last_run_rows,
       last.detail ->> 'error' AS last_error,
       (SELECT count(*) FROM retention.deletion_log l
         WHERE l.table_name = format('%I.%I', n.nspname, c.relname)
           AND l.logged_at > now() - interval '1 day') AS rows_logged_24h,
       (SELECT count(*) FROM retention.holds h
         WHERE h.released_at IS NULL AND (h.tbl IS NULL OR h.tbl = m.tbl)) AS active_holds,
       (SELECT count(*) FROM retention.holds h
         WHERE h.released_at IS NULL AND (h.tbl IS NULL OR h.tbl = m.tbl)
           AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period()) AS holds_due_for_review,
       (SELECT count(*) FROM retention.deletion_queue q
         WHERE q.done_at IS NULL AND q.tbl = m.tbl) AS queued_deletions,
       (SELECT a.pid FROM pg_stat_activity a
         WHERE a.backend_type = 'pg_retention worker' AND a.datname = current_database()
         LIMIT 1) AS worker_pid,
       (SELECT array_agg(h.id ORDER BY h.id) FROM retention.holds h
         WHERE h.released_at IS NULL AND (h.tbl IS NULL OR h.tbl = m.tbl)
           AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period()) AS holds_due_for_review_ids
  FROM retention.managed_tables m
  JOIN pg_class c ON c.oid = m.tbl
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN LATERAL (
      SELECT r.id, r.started_at, r.status, d AS detail
        FROM retention.runs r
        CROSS JOIN LATERAL jsonb_array_elements(r.details) d
       WHERE d ->> 'table' = format('%I.%I', n.nspname, c.relname)
       ORDER BY r.id DESC LIMIT 1) last ON true
UNION ALL
-- The whole database, managed tables or not: table_name is NULL.
SELECT NULL, NULL, last.id, last.started_at, last.status, last.rows_acted, last.error,
       (SELECT count(*) FROM retention.deletion_log l WHERE l.logged_at > now() - interval '1 day'),
       (SELECT count(*) FROM retention.holds h WHERE h.released_at IS NULL),
       (SELECT count(*) FROM retention.holds h
         WHERE h.released_at IS NULL
           AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period()),
       (SELECT count(*) FROM retention.deletion_queue q WHERE q.done_at IS NULL),
       (SELECT a.pid FROM pg_stat_activity a
         WHERE a.backend_type = 'pg_retention worker' AND a.datname = current_database()
         LIMIT 1),
       (SELECT array_agg(h.id ORDER BY h.id) FROM retention.holds h
         WHERE h.released_at IS NULL
           AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period())
  FROM (SELECT 1) AS database
  LEFT JOIN LATERAL (SELECT r.id, r.started_at, r.status, r.rows_acted, r.error
                       FROM retention.runs r ORDER BY r.id DESC LIMIT 1) last ON true;

-- What each running purger does now (the worker's cycle, or a session's run()), in the style of
-- pg_stat_progress_vacuum: from shared memory (src/progress.rs).
CREATE VIEW retention.progress AS
SELECT p.* FROM retention.progress_rows() p;
COMMENT ON VIEW retention.progress IS 'Running purgers of this database: pid, worker or run, table, step of steps, rows done, estimated rows left in the step, rows per second, whether throttled, when the table started';

CREATE VIEW retention.holds_due_for_review AS
SELECT h.*
  FROM retention.holds h
 WHERE h.released_at IS NULL
   AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period();

------------------------------------------------------------------------------------------------
-- Privileges: nothing that changes retention state is executable by PUBLIC.
------------------------------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA retention FROM PUBLIC;

-- Statements against an application table run as the table's owner (see the README's trust
-- model), who has no rights on retention's tables. An anonymizing batch asks this function
-- whether a row already carries its anonymized values. It answers that question only: it
-- reveals no row, and a caller must already know a key and its anonymized values to ask.
CREATE FUNCTION retention.is_anonymized(tbl regclass, row_key jsonb, fingerprint text)
RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM retention.anonymized_rows a
                    WHERE a.tbl = $1 AND a.row_key = $2
                      AND (a.fingerprint IS NULL OR a.fingerprint = $3))
$$;
COMMENT ON FUNCTION retention.is_anonymized(regclass, jsonb, text) IS
    'Whether row row_key of tbl is marked anonymized with these values (fingerprint); marks from 0.1.0 carry none and always match. Called by anonymizing batches, which run as the table''s owner.';
REVOKE ALL ON FUNCTION retention.is_anonymized(regclass, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.is_anonymized(regclass, jsonb, text) TO PUBLIC;
GRANT USAGE ON SCHEMA retention TO PUBLIC;

-- A soft-deleted row's window depends on why it went (src/windows.rs). The batch that
-- finishes soft deletes runs as the table's owner and asks this function the path of each
-- row whose paths' windows differ. Like is_anonymized, it answers that question only.
CREATE FUNCTION retention.soft_delete_path(table_name text, row_key jsonb)
RETURNS text
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN (SELECT l.action = 'soft_delete' AND l.reason = 'expired'
                        FROM retention.deletion_log l
                       WHERE l.table_name = $1 AND l.row_key = $2
                         AND l.action IN ('soft_delete', 'restore')
                       ORDER BY l.id DESC LIMIT 1)
                THEN 'expired' ELSE 'customer_request' END
$$;
COMMENT ON FUNCTION retention.soft_delete_path(text, jsonb) IS
    'Why row row_key of table_name (schema.table) was soft-deleted: expired when its latest soft delete was logged with reason expired, else customer_request (a request, or the application). Called by batches that finish soft deletes, which run as the table''s owner.';
REVOKE ALL ON FUNCTION retention.soft_delete_path(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.soft_delete_path(text, jsonb) TO PUBLIC;

-- The hold review period is read by the views and evidence() each duty reads, as their caller
-- (a view calls functions as the querying role); it answers a constant.
GRANT EXECUTE ON FUNCTION retention.hold_review_period() TO PUBLIC;

-- Disposition review: a member of a batch's reviewing role decides it; the functions check
-- that membership, so anyone may call them. The queue view shows each role its own batches.
GRANT EXECUTE ON FUNCTION retention.approve_disposition(bigint, text),
    retention.reject_disposition(bigint, text, interval) TO PUBLIC;
GRANT SELECT ON retention.disposition_queue TO PUBLIC;

COMMENT ON FUNCTION retention.hold_lock() IS
    'Takes the hold lock exclusively until the end of the transaction, as place_hold() does: a hold a superuser inserts directly waits for running purge batches. The extension''s locks are object locks only its own code can take.';

-- Three duties, granted by the DBA to roles of their choosing (separation of duties). A duty
-- is EXECUTE on its functions and SELECT on what it reads: no duty can write a retention table.
-- The functions write under the extension owner's identity and stamp the calling role. A policy admin also needs, on each application table it manages,
-- ownership or the privileges the category's action needs (the DBA's call, table by table).

CREATE FUNCTION retention.grant_policy_admin(grantee regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'argument "grantee" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA retention TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        retention.define_category(text, interval, text, text, interval, text, boolean, text, jsonb, text, interval),
        retention.drop_category(text),
        retention.manage(regclass, text, text, text, text, text, text, text, jsonb),
        retention.unmanage(regclass),
        retention.tag(regclass, text, anyarray),
        retention.tag_where(regclass, text, text),
        retention.set_tenant_policy(text, text, interval, interval, jsonb),
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
        retention.set_partition_retirement(regclass, text, text),
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
        retention.redaction_tallies, retention.redactions, retention.redaction_counts,
        retention.disposition_batches, retention.partition_retirement TO %s', grantee);
END
$$;

CREATE FUNCTION retention.grant_legal(grantee regrole) RETURNS void
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
        retention.category_locks, retention.disposition_batches
        TO %s', grantee);
END
$$;

CREATE FUNCTION retention.grant_auditor(grantee regrole) RETURNS void
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
        retention.category_locks, retention.disposition_batches
        TO %s', grantee);
END
$$;

REVOKE ALL ON FUNCTION retention.grant_policy_admin(regrole), retention.grant_legal(regrole),
    retention.grant_auditor(regrole) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Comments (\d+, \df+).
------------------------------------------------------------------------------------------------

COMMENT ON SCHEMA retention IS 'pg_retention: data-retention policy, legal holds and the deletion log';
COMMENT ON VIEW retention.categories IS 'Retention categories: how long data is kept, from which clock, and what happens when it runs out (with the built-in deletion_log category)';
COMMENT ON TABLE retention.category_definitions IS 'The categories defined with retention.define_category() (the table behind retention.categories)';
COMMENT ON TABLE retention.managed_tables IS 'Tables under retention, with their default category and the columns each clock and scope reads';
COMMENT ON TABLE retention.tenant_policies IS 'Per-tenant overrides of a category''s period ("unless a customer agreement specifies otherwise")';
COMMENT ON TABLE retention.tenant_events IS 'Tenant events (e.g. termination) that start event clocks';
COMMENT ON TABLE retention.holds IS 'Legal holds: never deleted; release and review are stamped';
COMMENT ON COLUMN retention.holds.frozen IS 'Placed with freeze => true: rows it covers cannot be updated at all, not only moved out of its scope';
COMMENT ON COLUMN retention.holds.grace_until IS 'Stamped at release (released_at + pg_retention.hold_release_grace): until then the rows it kept stay out of the extension''s purges and deletions';
COMMENT ON COLUMN retention.holds.rows_freed IS 'Stamped at release: rows the hold covered that no other hold kept';
COMMENT ON TABLE retention.notifications IS 'Notifications sent on retention_hold when holds are placed or released';
COMMENT ON TABLE retention.deletion_queue IS 'Customer-requested deletions waiting for the holds that cover their rows to be released';
COMMENT ON VIEW retention.queued_deletions IS 'Customer-requested deletions still waiting on a legal hold';
COMMENT ON TABLE retention.erasure_records IS 'Erasure requests per data subject (the table behind retention.erasure_requests)';
COMMENT ON VIEW retention.erasure_requests IS 'Erasure requests: status (pending, verified, completed, waiting_on_hold), due_at = received + 30 days + extended_by (retention.extend_request()), overdue';
COMMENT ON VIEW retention.overdue_erasure_requests IS 'Erasure requests past their due date (30 days, plus any extension) and not completed';
COMMENT ON TABLE retention.anonymized_rows IS 'Rows anonymized by their category''s policy or an erasure request, with a fingerprint of the anonymized values: anonymized again only if they hold new values';
COMMENT ON TABLE retention.runs IS 'History of purge cycles (worker and retention.run()), with per-table counts and errors';
COMMENT ON TABLE retention.deletion_log IS 'One hash-chained entry per row acted on; never the content. Append-only';
COMMENT ON TABLE retention.log_anchor IS 'Where the hash chain starts after the log''s own retention removed old entries';
COMMENT ON VIEW retention.status IS 'Per managed table, and for the whole database (table_name NULL): last run, errors, rows logged in 24 h, holds (and the ids of those due for review: not reviewed within retention.hold_review_period()), queued deletions, worker';
COMMENT ON VIEW retention.holds_due_for_review IS 'Active holds not reviewed by counsel (nor placed) within retention.hold_review_period()';

COMMENT ON FUNCTION retention.define_category(text, interval, text, text, interval, text, boolean, text, jsonb, text, interval) IS
    'Creates or updates a retention category: period, clock (created, last_activity, event, parent), action (delete, anonymize), soft-delete window (one for every path, or per path: soft_delete_windows => {"expired": …, "customer_request": …}), disposition review (review => role, auto_approve_after)';
COMMENT ON FUNCTION retention.set_partition_retirement(regclass, text, text) IS 'Sets what happens to a partition of a managed partitioned table whose rows are all due: drop (default), detach, move (to target_schema) or off';
COMMENT ON FUNCTION retention.approve_disposition(bigint, text) IS 'Approves a pending disposition batch (a member of its reviewing role): the next cycle disposes of its rows, each log entry carrying the batch id as approval_id';
COMMENT ON FUNCTION retention.reject_disposition(bigint, text, interval) IS 'Rejects a pending disposition batch (a member of its reviewing role): its rows are kept for keep_for, then wait for a new review';
COMMENT ON FUNCTION retention.drop_category(text) IS 'Drops a category; refused while a table, tenant policy, hold or row uses it';
COMMENT ON FUNCTION retention.manage(regclass, text, text, text, text, text, text, text, jsonb) IS
    'Puts a table under retention with a default category; validates every column';
COMMENT ON FUNCTION retention.unmanage(regclass) IS 'Takes a table out of retention';
COMMENT ON FUNCTION retention.tag(regclass, text, anyarray) IS 'Tags rows, by primary key, with a category; returns the rows tagged';
COMMENT ON FUNCTION retention.tag_where(regclass, text, text) IS 'Tags every row matching a condition (caller''s privileges); returns the rows tagged';
COMMENT ON FUNCTION retention.set_tenant_policy(text, text, interval, interval, jsonb) IS 'Overrides a category''s period (and its soft-delete windows, for every path or per path) for one tenant';
COMMENT ON FUNCTION retention.clear_tenant_policy(text, text) IS 'Removes a tenant override';
COMMENT ON FUNCTION retention.record_event(text, text, timestamptz) IS 'Records a tenant event (e.g. termination), starting its event clocks';
COMMENT ON FUNCTION retention.cancel_event(text, text) IS 'Cancels a tenant event, stopping its event clocks';
COMMENT ON FUNCTION retention.place_hold(text, text, text, regclass, text, boolean, boolean) IS
    'Places a legal hold over every row matching all its scopes (freeze: refuse content updates of its rows too); returns the hold id';
COMMENT ON FUNCTION retention.lock_category(text) IS 'Locks a category (legal duty): from now on its period, window and tenant overrides only lengthen, its clock, event, action and erasure exemption stay, and its rows leave only by expiry (request_delete refuses them, erasure counts them exempt); never unlocked';
COMMENT ON FUNCTION retention.release_hold(bigint, text) IS 'Releases a hold (stamped with who, when, note, and the rows it frees, which the extension''s purges and deletions leave alone until pg_retention.hold_release_grace after the release)';
COMMENT ON FUNCTION retention.review_hold(bigint, text) IS 'Stamps a counsel review of an active hold';
COMMENT ON FUNCTION retention.request_delete(regclass, anyarray, text) IS
    'Customer-initiated deletion through the standard path; held rows are queued; returns rows acted on';
COMMENT ON FUNCTION retention.restore(regclass, anyarray) IS 'Undoes a soft delete within its recovery window; returns rows restored';
COMMENT ON FUNCTION retention.run(regclass, boolean) IS 'Runs one purge cycle in this session (or counts it, dry_run); per-table counts';
COMMENT ON FUNCTION retention.preview(interval) IS 'Rows due now or within the horizon, per table, category and tenant, and the holds keeping rows back (a released hold until its grace ends)';
COMMENT ON FUNCTION retention.request_export(text, timestamptz, text, text) IS
    'Records an export request (GDPR Art. 15/20) for a data subject (one tenant, or all); due 30 days after receipt; idempotent per external_id; returns its id';
COMMENT ON FUNCTION retention.verify_export(bigint) IS 'Marks an export request verified: export_data() may then deliver it';
COMMENT ON FUNCTION retention.export_data(bigint) IS
    'The subject''s rows (held ones included) in every managed table with a subject column, read as the caller; records the delivery and completes the request';
COMMENT ON FUNCTION retention.export_tenant(text) IS
    'A tenant''s rows in every managed table with a tenant column, read as the caller (e.g. before its termination''s deletion); records the delivery';
COMMENT ON FUNCTION retention.explain(regclass, anyarray) IS
    'Per key: category (tagged or default), clock and its value, policy in force and due time, soft delete and window end, holds keeping it, queued requests, the purger''s next action and when; for a row that is gone, its deletion-log entries';
COMMENT ON FUNCTION retention.metrics() IS
    'Per managed table, for Prometheus: rows deleted, soft-deleted, anonymized and restored (from the log), rows due now and held back, seconds the oldest due row is overdue, last successful run, failed runs in 24 h, last error';
COMMENT ON FUNCTION retention.progress_rows() IS 'The function behind the view retention.progress';
COMMENT ON FUNCTION retention.guard_changing() IS 'Internal: true only while the extension changes the hold guard''s triggers';
COMMENT ON FUNCTION retention.check_guarded_tables() IS 'Event trigger: refuses to drop or rename a column a managed table''s policy reads, and to drop or disable the hold guard of a table an active hold can cover';
COMMENT ON FUNCTION retention.hold_stamping() IS 'Internal: true only while release_hold() or review_hold() stamps a hold';
COMMENT ON FUNCTION retention.grant_policy_admin(regrole) IS
    'Grants a role the policy-admin duty: categories, managed tables, tagging, tenant policies and events, customer and erasure requests, runs';
COMMENT ON FUNCTION retention.grant_legal(regrole) IS 'Grants a role the legal duty: placing, reviewing and releasing legal holds';
COMMENT ON FUNCTION retention.grant_auditor(regrole) IS 'Grants a role the auditor duty: reading and verifying the deletion log, holds and runs';
COMMENT ON FUNCTION retention.verify_log() IS 'Id of the first deletion-log entry whose hash-chain link is broken; NULL when intact';
COMMENT ON FUNCTION retention.request_erasure(text, timestamptz, text) IS
    'Records an erasure request for a data subject (scoped to one tenant, or all); due 30 days after receipt; returns its id';
COMMENT ON FUNCTION retention.extend_request(bigint, interval, text) IS
    'Extends an open erasure request''s deadline (GDPR Art. 12(3)): by at most two months in total, with the reasons given to the data subject; recorded in erasure_extensions; returns the new due_at';
COMMENT ON FUNCTION retention.verify_erasure(bigint) IS 'Marks an erasure request verified: the next purge cycle executes it';
COMMENT ON FUNCTION retention.redact(regclass, text[], text[], text, text) IS
    'Redacts identifiers on write: a row trigger replaces what the detectors (card, email, phone, iban, ssn, custom patterns) find in the named text, varchar or jsonb columns before a row is stored; counts each replacement';
COMMENT ON FUNCTION retention.unredact(regclass) IS 'Stops redacting a table (its counts stay)';
COMMENT ON FUNCTION retention.redact_row() IS 'Row trigger zz_retention_redact (BEFORE INSERT OR UPDATE, ENABLE ALWAYS) that retention.redact() puts on a table: replaces identifiers in the redacted columns; its arguments carry the rule';
COMMENT ON FUNCTION retention.redaction_count() IS 'Statement trigger zz_retention_redact_count (AFTER INSERT OR UPDATE, on a redacted table and each of its partitions): records the statement''s redactions in retention.redaction_tallies';
COMMENT ON FUNCTION retention.reapply_deletions(timestamptz) IS
    'After a restore from backup: deletes again every row the log says was removed since a time and that is present again (holds honoured)';
COMMENT ON FUNCTION retention.export_log(timestamptz, timestamptz) IS
    'Deletion-log entries in [since, until) as JSON lines, with every field of the canonical form, for verification outside the database';
COMMENT ON FUNCTION retention.log_trimming() IS 'Internal: true only while the log''s own retention removes old entries';
COMMENT ON FUNCTION retention.log_canonical(retention.deletion_log) IS 'The bytes hashed for a deletion-log entry (see README, "Verifying the log")';
COMMENT ON FUNCTION retention.log_field(text) IS 'Length-prefixed encoding of one field of the canonical form';
COMMENT ON FUNCTION retention.refuse_log_change() IS 'Trigger: keeps deletion_log append-only';
COMMENT ON FUNCTION retention.guard_hold_change() IS 'Trigger: holds are never deleted; only release and review are stamped';
COMMENT ON FUNCTION retention.forget_dropped_tables() IS 'Event trigger: unmanages dropped tables, and refuses to drop one an active hold can cover';
COMMENT ON FUNCTION retention.hold_guard() IS 'Row trigger the extension puts on each managed table an active hold can cover (BEFORE DELETE; AFTER UPDATE OF its scope and clock columns; BEFORE UPDATE while a frozen hold can cover it; ENABLE ALWAYS): refuses (55006) to delete a held row, to change its tenant, subject, category or clock column, or to change a frozen one at all';
COMMENT ON FUNCTION retention.hold_guard_truncate() IS 'Trigger the extension puts on each managed table (BEFORE TRUNCATE, ENABLE ALWAYS; present exactly while an active hold can cover the table): refuses (55006) while a row of the table is held';
COMMENT ON FUNCTION retention.covering_hold(regclass) IS 'The first active hold (id, reason) that can cover rows of a managed table; NULLs when none';
