-- pg_retention 0.5.0 -> 0.6.0: per-path soft-delete windows and disposition review (issue 17),
-- whole-partition retirement (issue 14).
-- Every object is as a fresh 0.6.0 install creates it (tests/upgrade.rs compares them).

-- Soft-delete windows per path, and disposition review, on categories and tenant overrides.
ALTER TABLE retention.category_definitions
    ADD COLUMN window_expired interval
        CONSTRAINT category_window_expired_not_negative CHECK (window_expired >= interval '0'),
    ADD COLUMN window_customer_request interval
        CONSTRAINT category_window_request_not_negative CHECK (window_customer_request >= interval '0'),
    ADD COLUMN review text CONSTRAINT category_review_not_empty CHECK (review <> ''),
    ADD COLUMN auto_approve_after interval
        CONSTRAINT category_auto_approve_needs_review
        CHECK (auto_approve_after IS NULL OR review IS NOT NULL);

COMMENT ON COLUMN retention.category_definitions.window_expired IS 'Soft-delete window of rows whose retention ran out (soft_delete_windows.expired); NULL: soft_delete_window';

COMMENT ON COLUMN retention.category_definitions.window_customer_request IS 'Soft-delete window of rows deleted on request (soft_delete_windows.customer_request); NULL: soft_delete_window';

COMMENT ON COLUMN retention.category_definitions.review IS 'Disposition review: the role whose members approve the disposal of due rows; NULL: none';

COMMENT ON COLUMN retention.category_definitions.auto_approve_after IS 'Pending disposition batches older than this are approved without a reviewer';

ALTER TABLE retention.tenant_policies
    ADD COLUMN window_expired interval
        CONSTRAINT tenant_window_expired_not_negative CHECK (window_expired >= interval '0'),
    ADD COLUMN window_customer_request interval
        CONSTRAINT tenant_window_request_not_negative CHECK (window_customer_request >= interval '0');

COMMENT ON COLUMN retention.tenant_policies.window_expired IS 'The tenant''s soft-delete window for expired rows; NULL: its soft_delete_window, else the category''s';

COMMENT ON COLUMN retention.tenant_policies.window_customer_request IS 'The tenant''s soft-delete window for rows deleted on request; NULL: its soft_delete_window, else the category''s';


-- Log entries of approved dispositions carry the batch id (hashed only when set).
ALTER TABLE retention.deletion_log ADD COLUMN approval_id bigint;

COMMENT ON COLUMN retention.deletion_log.approval_id IS 'The approved disposition batch (retention.disposition_batches) the row was disposed of under; hashed only when set';

CREATE OR REPLACE FUNCTION retention.log_canonical(entry retention.deletion_log) RETURNS bytea
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
-- export_log carries approval_id when set.
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


CREATE OR REPLACE VIEW retention.categories AS
SELECT d.name, d.retain_for, d.clock, d.action, d.soft_delete_window, d.event, d.erasure_exempt,
       d.description, d.name = 'deletion_log' AS builtin, d.updated_at, d.updated_by,
       EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = d.name) AS locked,
       nullif(jsonb_strip_nulls(jsonb_build_object('expired', d.window_expired,
                                                   'customer_request', d.window_customer_request)),
              '{}') AS soft_delete_windows,
       d.review, d.auto_approve_after
  FROM retention.category_definitions d
UNION ALL
SELECT 'deletion_log', interval '7 years', 'created', 'delete', NULL, NULL, false,
       'Entries of retention.deletion_log', true, NULL, NULL,
       EXISTS (SELECT 1 FROM retention.category_locks l WHERE l.category = 'deletion_log'),
       NULL, NULL, NULL
 WHERE NOT EXISTS (SELECT 1 FROM retention.category_definitions WHERE name = 'deletion_log');


CREATE TABLE retention.disposition_batches (
    id            bigint GENERATED BY DEFAULT AS IDENTITY
                  CONSTRAINT disposition_batches_pkey PRIMARY KEY,
    tbl           regclass NOT NULL,
    category      text NOT NULL,
    tenant        text,
    due_day       date NOT NULL,
    rows_due      bigint NOT NULL CONSTRAINT disposition_rows_not_negative CHECK (rows_due >= 0),
    reviewer      text NOT NULL,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'pending'
                  CONSTRAINT disposition_status_known
                  CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_at    timestamptz,
    decided_by    name,
    note          text,
    auto_approved boolean NOT NULL DEFAULT false,
    keep_until    timestamptz,
    closed_at     timestamptz,
    CONSTRAINT disposition_decision_stamped
        CHECK ((status = 'pending') = (decided_at IS NULL) AND (decided_at IS NULL) = (decided_by IS NULL)),
    CONSTRAINT disposition_rejection_keeps
        CHECK ((status = 'rejected') = (keep_until IS NOT NULL))
);

CREATE UNIQUE INDEX disposition_batches_open
    ON retention.disposition_batches (tbl, category, tenant, due_day) NULLS NOT DISTINCT
    WHERE closed_at IS NULL;

COMMENT ON TABLE retention.disposition_batches IS 'Disposition review: due rows of reviewed categories, per table, category, tenant and due day (UTC), and each reviewer''s decision; records, kept after the rows are gone';

COMMENT ON COLUMN retention.disposition_batches.rows_due IS 'Due rows no hold keeps, as last counted by a purge cycle';

COMMENT ON COLUMN retention.disposition_batches.reviewer IS 'The reviewing role: its members decide';

COMMENT ON COLUMN retention.disposition_batches.keep_until IS 'A rejection: the rows stay until then, then wait for a new review';

COMMENT ON COLUMN retention.disposition_batches.closed_at IS 'Approved: when no row was left to dispose of; rejected: when the keeping ended';


CREATE VIEW retention.disposition_queue AS
SELECT b.id AS batch_id,
       (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = b.tbl) AS table_name,
       b.category, b.tenant, b.due_day, b.rows_due AS rows, b.status, b.reviewer, b.queued_at,
       b.queued_at + d.auto_approve_after AS auto_approve_at,
       b.decided_at, b.decided_by, b.note, b.keep_until
  FROM retention.disposition_batches b
  LEFT JOIN retention.category_definitions d ON d.name = b.category AND b.status = 'pending'
 WHERE b.closed_at IS NULL
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                WHERE r.rolname = b.reviewer AND pg_catalog.pg_has_role(r.oid, 'MEMBER'));

COMMENT ON VIEW retention.disposition_queue IS 'Open disposition batches the current user may decide (a member of the batch''s reviewing role): pending, approved and not yet disposed of, or rejected and kept';

SELECT pg_catalog.pg_extension_config_dump('retention.disposition_batches', '');

SELECT pg_catalog.pg_extension_config_dump('retention.disposition_batches_id_seq', '');

-- Whole-partition retirement (issue 14).
CREATE TABLE retention.partition_retirement (
    tbl           regclass CONSTRAINT partition_retirement_pkey PRIMARY KEY,
    mode          text NOT NULL
                  CONSTRAINT retirement_mode_known CHECK (mode IN ('drop', 'detach', 'move', 'off')),
    target_schema text,
    set_at        timestamptz NOT NULL DEFAULT now(),
    set_by        name NOT NULL,
    CONSTRAINT retirement_move_has_schema CHECK ((mode = 'move') = (target_schema IS NOT NULL))
);
COMMENT ON TABLE retention.partition_retirement IS 'What happens to a partition of a managed partitioned table whose rows are all due (retention.set_partition_retirement()): drop (the default, when no row), detach, move (detach into target_schema) or off (rows go one by one)';
SELECT pg_catalog.pg_extension_config_dump('retention.partition_retirement', '');
-- A dropped table's retirement setting goes with it.
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
    DELETE FROM retention.partition_retirement r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = r.tbl::oid;
END
$$;


-- Locked categories: each path's window only lengthens.

CREATE OR REPLACE FUNCTION retention.guard_locked_category() RETURNS trigger
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


CREATE OR REPLACE FUNCTION retention.guard_locked_override() RETURNS trigger
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


-- define_category() and set_tenant_policy() gain arguments: new signatures.
DROP FUNCTION retention.define_category(text, interval, text, text, interval, text, boolean, text);
DROP FUNCTION retention.set_tenant_policy(text, text, interval, interval);
CREATE FUNCTION retention."define_category"(
	"name" TEXT, /* Option < & str > */
	"retain_for" interval, /* Option < Interval > */
	"clock" TEXT DEFAULT 'created', /* Option < & str > */
	"action" TEXT DEFAULT 'delete', /* Option < & str > */
	"soft_delete_window" interval DEFAULT NULL, /* Option < Interval > */
	"event" TEXT DEFAULT NULL, /* Option < & str > */
	"erasure_exempt" bool DEFAULT false, /* Option < bool > */
	"description" TEXT DEFAULT NULL, /* Option < & str > */
	"soft_delete_windows" jsonb DEFAULT NULL, /* Option < pgrx :: JsonB > */
	"review" TEXT DEFAULT NULL, /* Option < & str > */
	"auto_approve_after" interval DEFAULT NULL /* Option < Interval > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'define_category_with_governance_wrapper';

CREATE FUNCTION retention."set_tenant_policy"(
	"tenant" TEXT, /* Option < & str > */
	"category" TEXT, /* Option < & str > */
	"retain_for" interval, /* Option < Interval > */
	"soft_delete_window" interval DEFAULT NULL, /* Option < Interval > */
	"soft_delete_windows" jsonb DEFAULT NULL /* Option < pgrx :: JsonB > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_tenant_policy_with_windows_wrapper';

CREATE FUNCTION retention."approve_disposition"(
	"batch_id" bigint, /* Option < i64 > */
	"note" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'approve_disposition_wrapper';

CREATE FUNCTION retention."reject_disposition"(
	"batch_id" bigint, /* Option < i64 > */
	"note" TEXT, /* Option < & str > */
	"keep_for" interval /* Option < Interval > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reject_disposition_wrapper';

CREATE FUNCTION retention."set_partition_retirement"(
	"tbl" regclass, /* Option < RegClass > */
	"mode" TEXT, /* Option < & str > */
	"target_schema" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS VOID /* SqlResult < () > */
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_partition_retirement_wrapper';
REVOKE ALL ON FUNCTION retention.set_partition_retirement(regclass, text, text),
    retention.define_category(text, interval, text, text, interval, text, boolean, text, jsonb, text, interval),
    retention.set_tenant_policy(text, text, interval, interval, jsonb),
    retention.approve_disposition(bigint, text),
    retention.reject_disposition(bigint, text, interval) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION retention.approve_disposition(bigint, text),
    retention.reject_disposition(bigint, text, interval) TO PUBLIC;

GRANT SELECT ON retention.disposition_queue TO PUBLIC;

COMMENT ON FUNCTION retention.define_category(text, interval, text, text, interval, text, boolean, text, jsonb, text, interval) IS
    'Creates or updates a retention category: period, clock (created, last_activity, event, parent), action (delete, anonymize), soft-delete window (one for every path, or per path: soft_delete_windows => {"expired": …, "customer_request": …}), disposition review (review => role, auto_approve_after)';

COMMENT ON FUNCTION retention.set_partition_retirement(regclass, text, text) IS 'Sets what happens to a partition of a managed partitioned table whose rows are all due: drop (default), detach, move (to target_schema) or off';
COMMENT ON FUNCTION retention.approve_disposition(bigint, text) IS 'Approves a pending disposition batch (a member of its reviewing role): the next cycle disposes of its rows, each log entry carrying the batch id as approval_id';

COMMENT ON FUNCTION retention.reject_disposition(bigint, text, interval) IS 'Rejects a pending disposition batch (a member of its reviewing role): its rows are kept for keep_for, then wait for a new review';

COMMENT ON FUNCTION retention.set_tenant_policy(text, text, interval, interval, jsonb) IS 'Overrides a category''s period (and its soft-delete windows, for every path or per path) for one tenant';


-- The duties gain the new signatures and the disposition records.

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
        retention.category_locks, retention.disposition_batches
        TO %s', grantee);
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
        retention.category_locks, retention.disposition_batches
        TO %s', grantee);
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
