-- pg_retention 0.2.0 → 0.3.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

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

-- The extension's locks are object locks that only its code takes (advisory locks could be
-- squatted by any role). A hold a superuser inserts directly takes the hold lock through
-- hold_lock().
CREATE FUNCTION retention."hold_lock"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hold_lock_wrapper';
REVOKE ALL ON FUNCTION retention.hold_lock() FROM PUBLIC;
COMMENT ON FUNCTION retention.hold_lock() IS
    'Takes the hold lock exclusively until the end of the transaction, as place_hold() does: a hold a superuser inserts directly waits for running purge batches. The extension''s locks are object locks only its own code can take.';


-- The first active hold that can cover rows of managed table tbl: scoped to it or to no table,
-- and whose tenant, subject and category scopes the table can match. Retention wins over
-- deletion: while one exists, the table can be neither unmanaged nor dropped.
CREATE FUNCTION retention.covering_hold(tbl regclass, OUT id bigint, OUT reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.id, h.reason
      FROM retention.holds h
      JOIN retention.managed_tables m ON m.tbl = $1
     WHERE h.released_at IS NULL
       AND (h.tbl IS NULL OR h.tbl = m.tbl)
       AND (h.tenant IS NULL OR m.tenant_column IS NOT NULL)
       AND (h.subject IS NULL OR m.subject_column IS NOT NULL)
       AND (h.category IS NULL OR h.category = m.category OR m.category_column IS NOT NULL)
     ORDER BY h.id
     LIMIT 1
$$;
REVOKE ALL ON FUNCTION retention.covering_hold(regclass) FROM PUBLIC;
COMMENT ON FUNCTION retention.covering_hold(regclass) IS 'The first active hold (id, reason) that can cover rows of a managed table; NULLs when none';

-- The hold guard: triggers on every managed table (src/guard.rs).
CREATE FUNCTION retention."hold_guard"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'hold_guard_wrapper';
CREATE FUNCTION retention."hold_guard_truncate"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'hold_guard_truncate_wrapper';
REVOKE ALL ON FUNCTION retention.hold_guard(), retention.hold_guard_truncate() FROM PUBLIC;
COMMENT ON FUNCTION retention.hold_guard() IS 'Trigger the extension puts on each managed table (BEFORE DELETE OR UPDATE, ENABLE ALWAYS; present exactly while an active hold can cover the table): refuses (55006) to delete a held row, or to change its tenant, subject, category or clock column';
COMMENT ON FUNCTION retention.hold_guard_truncate() IS 'Trigger the extension puts on each managed table (BEFORE TRUNCATE, ENABLE ALWAYS; present exactly while an active hold can cover the table): refuses (55006) while a row of the table is held';
DO $$
DECLARE r record;
BEGIN
    -- Guarded exactly where an active hold can cover rows (src/guard.rs, sync).
    FOR r IN SELECT m.tbl FROM retention.managed_tables m
              WHERE (SELECT c.id FROM retention.covering_hold(m.tbl) c) IS NOT NULL LOOP
        EXECUTE format('CREATE TRIGGER retention_hold_guard BEFORE DELETE OR UPDATE ON %s
                            FOR EACH ROW EXECUTE FUNCTION retention.hold_guard()', r.tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_hold_guard', r.tbl);
        EXECUTE format('CREATE TRIGGER retention_hold_guard_truncate BEFORE TRUNCATE ON %s
                            FOR EACH STATEMENT EXECUTE FUNCTION retention.hold_guard_truncate()', r.tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_hold_guard_truncate', r.tbl);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION retention.forget_dropped_tables() RETURNS event_trigger
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
END
$$;
COMMENT ON FUNCTION retention.forget_dropped_tables() IS 'Event trigger: unmanages dropped tables, and refuses to drop one an active hold can cover';

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
    EXECUTE format('GRANT SELECT ON
        retention.category_definitions, retention.managed_tables, retention.tenant_policies,
        retention.tenant_events, retention.deletion_queue, retention.erasure_records,
        retention.anonymized_rows, retention.runs, retention.deletion_log, retention.log_anchor,
        retention.categories, retention.holds, retention.status, retention.queued_deletions,
        retention.erasure_requests, retention.overdue_erasure_requests TO %s', grantee);
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
    EXECUTE format('GRANT SELECT ON retention.holds, retention.notifications,
        retention.categories, retention.holds_due_for_review, retention.queued_deletions
        TO %s', grantee);
END
$$;

-- No role keeps a write privilege on a retention table or sequence that a 0.2.0 duty (or a
-- DBA) granted: every change goes through the functions.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, c.relkind, a.privilege_type,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
               FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
              WHERE c.relnamespace = 'retention'::regnamespace AND c.relkind IN ('r', 'p', 'S')
                AND a.grantee <> c.relowner
                AND (c.relkind = 'S' OR a.privilege_type <> 'SELECT')
    LOOP
        EXECUTE format('REVOKE %s ON %s %s FROM %s', r.privilege_type,
                       CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.rel, r.grantee);
    END LOOP;
    -- Roles that hold a duty get exactly the duty's 0.3.0 grants.
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee, p.proname
               FROM pg_catalog.pg_proc p, aclexplode(p.proacl) a
              WHERE p.pronamespace = 'retention'::regnamespace
                AND p.proname IN ('manage', 'place_hold', 'verify_log')
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        PERFORM CASE r.proname
                    WHEN 'manage' THEN retention.grant_policy_admin(r.grantee)
                    WHEN 'place_hold' THEN retention.grant_legal(r.grantee)
                    ELSE retention.grant_auditor(r.grantee)
                END;
    END LOOP;
END
$$;
