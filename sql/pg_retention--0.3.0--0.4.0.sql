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

-- place_hold() gains freeze, release_hold() returns the rows it frees, preview() shows when a
-- released hold's grace ends. Their duty grants move to the new definitions.
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
AS 'MODULE_PATHNAME', 'place_hold_wrapper';
REVOKE ALL ON FUNCTION retention.place_hold(text, text, text, regclass, text, boolean, boolean) FROM PUBLIC;
DROP FUNCTION retention.place_hold(text, text, text, regclass, text, boolean);
DROP FUNCTION retention.release_hold(bigint, text);
CREATE FUNCTION retention."release_hold"(
	"hold_id" bigint, /* Option < i64 > */
	"note" TEXT /* Option < & str > */
) RETURNS bigint /* SqlResult < i64 > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'release_hold_wrapper';
REVOKE ALL ON FUNCTION retention.release_hold(bigint, text) FROM PUBLIC;
DROP FUNCTION retention.preview(interval);
CREATE FUNCTION retention."preview"(
	"horizon" interval DEFAULT '0' /* Option < Interval > */
) RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"category" TEXT,  /* String */
	"tenant" TEXT,  /* Option < String > */
	"action" TEXT,  /* String */
	"rows" bigint,  /* i64 */
	"held_by" bigint,  /* Option < i64 > */
	"held_until" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STABLE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'preview_wrapper';
REVOKE ALL ON FUNCTION retention.preview(interval) FROM PUBLIC;
COMMENT ON FUNCTION retention.place_hold(text, text, text, regclass, text, boolean, boolean) IS
    'Places a legal hold over every row matching all its scopes (freeze: refuse content updates of its rows too); returns the hold id';
COMMENT ON FUNCTION retention.release_hold(bigint, text) IS 'Releases a hold (stamped with who, when, note); returns the rows it frees, which the extension''s purges and deletions leave alone until pg_retention.hold_release_grace after the release';
COMMENT ON FUNCTION retention.preview(interval) IS 'Rows due now or within the horizon, per table, category and tenant, and the holds keeping rows back (held_until: when a released hold''s grace ends)';

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
    FOR r IN SELECT DISTINCT a.grantee::regrole AS grantee
               FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
              WHERE p.oid = 'retention.run(regclass, boolean)'::regprocedure
                AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION retention.preview(interval) TO %s', r.grantee);
    END LOOP;
END
$$;

-- The guard's row trigger fires on DELETE and on UPDATE OF the scope and clock columns only.
CREATE FUNCTION retention."guard_changing"() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'guard_changing_wrapper';
REVOKE ALL ON FUNCTION retention.guard_changing() FROM PUBLIC;
COMMENT ON FUNCTION retention.guard_changing() IS 'Internal: true only while the extension changes the hold guard''s triggers';
COMMENT ON FUNCTION retention.hold_guard() IS 'Trigger the extension puts on each managed table an active hold can cover (BEFORE DELETE OR UPDATE OF its scope and clock columns; BEFORE UPDATE while a frozen hold can cover it; ENABLE ALWAYS): refuses (55006) to delete a held row, to change its tenant, subject, category or clock column, or to change a frozen one at all';

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
        EXECUTE format('CREATE TRIGGER retention_hold_guard BEFORE DELETE%s ON %s
                            FOR EACH ROW EXECUTE FUNCTION retention.hold_guard()',
                       CASE WHEN r.columns IS NOT NULL THEN ' OR UPDATE OF ' || r.columns END,
                       r.tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_hold_guard', r.tbl);
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
                AND (SELECT count(*) FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = m.tbl
                        AND t.tgname IN ('retention_hold_guard', 'retention_hold_guard_truncate')) < 2))
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
