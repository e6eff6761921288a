-- pg_retention 0.1.0 → 0.2.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

-- Roles without rights on retention can drop their own objects again: the sql_drop event
-- trigger's function runs with its owner's rights (it removes only rows of dropped tables).
CREATE OR REPLACE FUNCTION retention.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM retention.managed_tables m
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = m.tbl::oid;
END
$$;

-- A hold inserted directly (not through place_hold) sends no notification unless it says so.
ALTER TABLE retention.holds ALTER COLUMN notify SET DEFAULT false;

-- The status view gains the ids of holds due for review, and a row for the whole database
-- (table_name NULL) that exists even when no table is managed.
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
           AND coalesce(h.reviewed_at, h.placed_at) < now() - interval '90 days') AS holds_due_for_review,
       (SELECT count(*) FROM retention.deletion_queue q
         WHERE q.done_at IS NULL AND q.tbl = m.tbl) AS queued_deletions,
       (SELECT a.pid FROM pg_stat_activity a
         WHERE a.backend_type = 'pg_retention worker' AND a.datname = current_database()
         LIMIT 1) AS worker_pid,
       (SELECT array_agg(h.id ORDER BY h.id) FROM retention.holds h
         WHERE h.released_at IS NULL AND (h.tbl IS NULL OR h.tbl = m.tbl)
           AND coalesce(h.reviewed_at, h.placed_at) < now() - interval '90 days') AS holds_due_for_review_ids
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
           AND coalesce(h.reviewed_at, h.placed_at) < now() - interval '90 days'),
       (SELECT count(*) FROM retention.deletion_queue q WHERE q.done_at IS NULL),
       (SELECT a.pid FROM pg_stat_activity a
         WHERE a.backend_type = 'pg_retention worker' AND a.datname = current_database()
         LIMIT 1),
       (SELECT array_agg(h.id ORDER BY h.id) FROM retention.holds h
         WHERE h.released_at IS NULL
           AND coalesce(h.reviewed_at, h.placed_at) < now() - interval '90 days')
  FROM (SELECT 1) AS database
  LEFT JOIN LATERAL (SELECT r.id, r.started_at, r.status, r.rows_acted, r.error
                       FROM retention.runs r ORDER BY r.id DESC LIMIT 1) last ON true;

COMMENT ON VIEW retention.status IS 'Per managed table, and for the whole database (table_name NULL): last run, errors, rows logged in 24 h, holds (and the ids of those not reviewed in 90 days), queued deletions, worker';

-- The duty helpers refuse a NULL role with 22004 (not a syntax error from the dynamic GRANT).
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
        retention.reapply_deletions(timestamptz),
        retention.log_trimming(),
        retention.hold_stamping()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON
        retention.category_definitions, retention.managed_tables, retention.tenant_policies,
        retention.tenant_events, retention.deletion_queue, retention.erasure_records,
        retention.anonymized_rows, retention.runs TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON retention.deletion_log TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT ON retention.log_anchor TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.categories, retention.holds, retention.status, retention.queued_deletions,
        retention.erasure_requests, retention.overdue_erasure_requests TO %s', grantee);
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE retention.deletion_queue_id_seq,
        retention.runs_id_seq, retention.erasure_records_id_seq TO %s', grantee);
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
        retention.place_hold(text, text, text, regclass, text, boolean),
        retention.release_hold(bigint, text),
        retention.review_hold(bigint, text),
        retention.hold_stamping()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON retention.holds TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT ON retention.notifications TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.categories, retention.holds_due_for_review,
        retention.queued_deletions TO %s', grantee);
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE retention.holds_id_seq,
        retention.notifications_id_seq TO %s', grantee);
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
        retention.log_canonical(retention.deletion_log),
        retention.log_field(text)
        TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.deletion_log, retention.log_anchor, retention.runs,
        retention.holds, retention.notifications, retention.categories, retention.status,
        retention.erasure_requests, retention.overdue_erasure_requests,
        retention.holds_due_for_review TO %s', grantee);
END
$$;

-- A hold may name the built-in category deletion_log, which has no row of its own in
-- category_definitions: place_hold() and drop_category() check hold categories instead.
ALTER TABLE retention.holds DROP CONSTRAINT holds_category_fkey;

-- A fingerprint of the anonymized values: a row the application filled again (or a new row
-- reusing the key) is anonymized again. 0.1.0's marks have none and count as anonymized.
ALTER TABLE retention.anonymized_rows ADD COLUMN fingerprint text;
COMMENT ON TABLE retention.anonymized_rows IS 'Rows anonymized by their category''s policy or an erasure request, with a fingerprint of the anonymized values: anonymized again only if they hold new values';

-- Without the foreign key, the holds guard checks a directly inserted hold's category.
CREATE OR REPLACE FUNCTION retention.guard_hold_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A hold inserted directly waits for running purge batches, as place_hold() does, and
    -- names a category that exists (the built-in deletion_log included).
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_advisory_xact_lock(1380275278, 1);
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
            OLD.placed_at, OLD.placed_by)
           IS NOT DISTINCT FROM
           (NEW.id, NEW.reason, NEW.tenant, NEW.subject, NEW.tbl, NEW.category, NEW.notify,
            NEW.placed_at, NEW.placed_by)
       AND (OLD.released_at IS NULL
            OR (OLD.released_at, OLD.released_by, OLD.release_note)
               IS NOT DISTINCT FROM (NEW.released_at, NEW.released_by, NEW.release_note))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'retention.holds are records: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Use retention.release_hold() or retention.review_hold().';
END
$$;

-- A queued deletion remembers the row's tenant: a new row that reused the key for another
-- tenant before the hold's release is not deleted in its place.
ALTER TABLE retention.deletion_queue ADD COLUMN row_tenant jsonb;
