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
-- squatted by any role). Holds inserted directly take the hold lock through hold_lock().
CREATE FUNCTION retention."hold_lock"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hold_lock_wrapper';
REVOKE ALL ON FUNCTION retention.hold_lock() FROM PUBLIC;
COMMENT ON FUNCTION retention.hold_lock() IS
    'Takes the hold lock exclusively until the end of the transaction, as place_hold() does: a hold inserted directly waits for running purge batches. The extension''s locks are object locks only its own code (and this function, granted with the legal duty) can take.';
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, aclexplode(p.proacl) a
              WHERE p.oid = 'retention.place_hold(text, text, text, regclass, text, boolean)'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0
                AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION retention.hold_lock() TO %s', r.grantee);
    END LOOP;
END
$$;

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
        retention.hold_stamping(),
        retention.hold_lock()
        TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON retention.holds TO %s', grantee);
    EXECUTE format('GRANT SELECT, INSERT ON retention.notifications TO %s', grantee);
    EXECUTE format('GRANT SELECT ON retention.categories, retention.holds_due_for_review,
        retention.queued_deletions TO %s', grantee);
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE retention.holds_id_seq,
        retention.notifications_id_seq TO %s', grantee);
END
$$;
