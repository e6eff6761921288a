-- pg_retention 0.6.0 -> 0.7.0.
-- Every object is as a fresh 0.7.0 install creates it (tests/upgrade.rs compares them).
-- define_category and manage keep their definitions: their entry points are hand-written in
-- 0.7.0 (src/pg/call.rs) under the same symbols.

-- runs.dry_run was never written (a dry run records no run): dropped.
ALTER TABLE retention.runs DROP COLUMN dry_run;

-- The hold review period has one home, retention.hold_review_period(), read by the views and
-- evidence() that count holds due for review (before: the literal '90 days' in each).
CREATE FUNCTION retention.hold_review_period() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT interval '90 days' $$;
COMMENT ON FUNCTION retention.hold_review_period() IS
    'How often counsel reviews an active hold: one whose last review, or placement, is older than this is due for review (holds_due_for_review, status, evidence)';
REVOKE ALL ON FUNCTION retention.hold_review_period() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.hold_review_period() TO PUBLIC;

CREATE OR REPLACE FUNCTION retention.evidence(since timestamptz, until timestamptz)
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

CREATE OR REPLACE VIEW retention.status AS
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

CREATE OR REPLACE VIEW retention.holds_due_for_review AS
SELECT h.*
  FROM retention.holds h
 WHERE h.released_at IS NULL
   AND coalesce(h.reviewed_at, h.placed_at) < now() - retention.hold_review_period();

COMMENT ON VIEW retention.status IS 'Per managed table, and for the whole database (table_name NULL): last run, errors, rows logged in 24 h, holds (and the ids of those due for review: not reviewed within retention.hold_review_period()), queued deletions, worker';
COMMENT ON VIEW retention.holds_due_for_review IS 'Active holds not reviewed by counsel (nor placed) within retention.hold_review_period()';
