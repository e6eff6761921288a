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
