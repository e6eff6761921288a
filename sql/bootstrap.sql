-- pg_retention catalog: the tables and views every function works on.
-- Loaded before any function (extension_sql_file!(…, bootstrap)); comments are in finalize.sql.
-- Every configuration table is registered with pg_extension_config_dump so pg_dump keeps it.

-- Keys, tenants and subjects are read as text: a SQL_ASCII database can hold bytes that are
-- no text in any encoding, and the purge could not log them faithfully.
DO $$
BEGIN
    IF pg_catalog.current_setting('server_encoding') = 'SQL_ASCII' THEN
        RAISE EXCEPTION 'pg_retention needs a database encoding other than SQL_ASCII'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Create the database with ENCODING ''UTF8''.';
    END IF;
END
$$;

-- The categories users define. retention.categories (below) shows them with the built-in
-- deletion_log category, whose 7-year default is not a row: pg_dump carries every row here
-- (a changed deletion_log period included) without clashing with CREATE EXTENSION.
CREATE TABLE retention.category_definitions (
    name               text PRIMARY KEY
                       CONSTRAINT category_name_not_empty CHECK (name <> ''),
    retain_for         interval NOT NULL
                       CONSTRAINT category_retain_for_not_negative CHECK (retain_for >= interval '0'),
    clock              text NOT NULL DEFAULT 'created'
                       CONSTRAINT category_clock_known
                       CHECK (clock IN ('created', 'last_activity', 'event', 'parent')),
    action             text NOT NULL DEFAULT 'delete'
                       CONSTRAINT category_action_known CHECK (action IN ('delete', 'anonymize')),
    soft_delete_window interval
                       CONSTRAINT category_window_not_negative
                       CHECK (soft_delete_window >= interval '0'),
    event              text,
    erasure_exempt     boolean NOT NULL DEFAULT false,
    description        text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         name NOT NULL DEFAULT current_user,
    CONSTRAINT category_event_iff_event_clock CHECK ((clock = 'event') = (event IS NOT NULL)),
    window_expired     interval
                       CONSTRAINT category_window_expired_not_negative
                       CHECK (window_expired >= interval '0'),
    window_customer_request interval
                       CONSTRAINT category_window_request_not_negative
                       CHECK (window_customer_request >= interval '0'),
    review             text CONSTRAINT category_review_not_empty CHECK (review <> ''),
    auto_approve_after interval
                       CONSTRAINT category_auto_approve_needs_review
                       CHECK (auto_approve_after IS NULL OR review IS NOT NULL)
);
COMMENT ON COLUMN retention.category_definitions.window_expired IS 'Soft-delete window of rows whose retention ran out (soft_delete_windows.expired); NULL: soft_delete_window';
COMMENT ON COLUMN retention.category_definitions.window_customer_request IS 'Soft-delete window of rows deleted on request (soft_delete_windows.customer_request); NULL: soft_delete_window';
COMMENT ON COLUMN retention.category_definitions.review IS 'Disposition review: the role whose members approve the disposal of due rows; NULL: none';
COMMENT ON COLUMN retention.category_definitions.auto_approve_after IS 'Pending disposition batches older than this are approved without a reviewer';

-- The deletion log's own retention: 7 years unless redefined. It can be changed, not dropped.
-- Locked categories (retention.lock_category()): records, like holds; never removed.
CREATE TABLE retention.category_locks (
    category  text CONSTRAINT category_locks_pkey PRIMARY KEY,
    locked_at timestamptz NOT NULL DEFAULT now(),
    locked_by name NOT NULL
);
COMMENT ON TABLE retention.category_locks IS 'Locked categories (retention.lock_category()): their period, window and tenant overrides only lengthen, their clock, event, action and erasure exemption stay; records, never removed';

CREATE VIEW retention.categories AS
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

CREATE TABLE retention.managed_tables (
    tbl                regclass PRIMARY KEY,
    category           text NOT NULL REFERENCES retention.category_definitions (name),
    created_column     text,
    activity_column    text,
    tenant_column      text,
    subject_column     text,
    category_column    text,
    soft_delete_column text,
    anonymize          jsonb,
    key_columns        text[] NOT NULL
                       CONSTRAINT managed_has_key CHECK (cardinality(key_columns) > 0),
    managed_at         timestamptz NOT NULL DEFAULT now(),
    managed_by         name NOT NULL DEFAULT current_user
);

CREATE TABLE retention.tenant_policies (
    tenant             text NOT NULL CONSTRAINT tenant_not_empty CHECK (tenant <> ''),
    category           text NOT NULL REFERENCES retention.category_definitions (name),
    retain_for         interval NOT NULL
                       CONSTRAINT tenant_retain_for_not_negative CHECK (retain_for >= interval '0'),
    soft_delete_window interval
                       CONSTRAINT tenant_window_not_negative CHECK (soft_delete_window >= interval '0'),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tenant, category),
    window_expired     interval
                       CONSTRAINT tenant_window_expired_not_negative
                       CHECK (window_expired >= interval '0'),
    window_customer_request interval
                       CONSTRAINT tenant_window_request_not_negative
                       CHECK (window_customer_request >= interval '0')
);
COMMENT ON COLUMN retention.tenant_policies.window_expired IS 'The tenant''s soft-delete window for expired rows; NULL: its soft_delete_window, else the category''s';
COMMENT ON COLUMN retention.tenant_policies.window_customer_request IS 'The tenant''s soft-delete window for rows deleted on request; NULL: its soft_delete_window, else the category''s';

CREATE TABLE retention.tenant_events (
    tenant      text NOT NULL CONSTRAINT event_tenant_not_empty CHECK (tenant <> ''),
    event       text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tenant, event)
);

CREATE TABLE retention.holds (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    reason       text NOT NULL CONSTRAINT hold_reason_not_empty CHECK (reason <> ''),
    tenant       text,
    subject      text,
    tbl          regclass,
    category     text,
    notify       boolean NOT NULL DEFAULT false,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    placed_by    name NOT NULL DEFAULT current_user,
    released_at  timestamptz,
    released_by  name,
    release_note text,
    reviewed_at  timestamptz,
    reviewed_by  name,
    review_note  text,
    frozen       boolean NOT NULL DEFAULT false,
    grace_until  timestamptz,
    rows_freed   bigint,
    CONSTRAINT hold_has_scope
        CHECK (tenant IS NOT NULL OR subject IS NOT NULL OR tbl IS NOT NULL OR category IS NOT NULL),
    CONSTRAINT hold_release_stamped
        CHECK ((released_at IS NULL) = (released_by IS NULL)),
    CONSTRAINT hold_grace_after_release
        CHECK (grace_until IS NULL OR grace_until >= released_at)
);
CREATE INDEX holds_active ON retention.holds (id) WHERE released_at IS NULL;

CREATE TABLE retention.notifications (
    id       bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    channel  text NOT NULL,
    hold_id  bigint NOT NULL REFERENCES retention.holds (id),
    payload  jsonb NOT NULL
);

-- Customer-requested deletions of rows under hold: executed when no hold covers them anymore.
CREATE TABLE retention.deletion_queue (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tbl          regclass NOT NULL,
    row_key      jsonb NOT NULL,
    reason       text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by name NOT NULL DEFAULT current_user,
    done_at      timestamptz,
    -- The row's tenant when queued (JSON null for none): a row that took the key since, for
    -- another tenant, is not deleted. NULL without a tenant column (and for 0.1.0's entries).
    row_tenant   jsonb
);
CREATE UNIQUE INDEX deletion_queue_pending ON retention.deletion_queue (tbl, row_key)
    WHERE done_at IS NULL;

CREATE VIEW retention.queued_deletions AS
SELECT q.id, (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = q.tbl) AS table_name, q.row_key, q.reason, q.requested_at, q.requested_by
  FROM retention.deletion_queue q
 WHERE q.done_at IS NULL;

-- Erasure requests (GDPR Art. 17): honoured within 30 days of receipt.
CREATE TABLE retention.erasure_records (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    subject         text NOT NULL CONSTRAINT erasure_subject_not_empty CHECK (subject <> ''),
    tenant          text CONSTRAINT erasure_tenant_not_empty CHECK (tenant <> ''),
    received_at     timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CONSTRAINT erasure_status_known
                    CHECK (status IN ('pending', 'verified', 'completed', 'waiting_on_hold')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    requested_by    name NOT NULL DEFAULT current_user,
    verified_at     timestamptz,
    verified_by     name,
    completed_at    timestamptz,
    rows_erased     bigint NOT NULL DEFAULT 0,
    rows_anonymized bigint NOT NULL DEFAULT 0,
    rows_exempt     bigint NOT NULL DEFAULT 0,
    rows_held       bigint NOT NULL DEFAULT 0,
    details         jsonb NOT NULL DEFAULT '[]'
);

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

CREATE VIEW retention.erasure_requests AS
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

-- Rows already anonymized (never anonymized twice).
CREATE TABLE retention.anonymized_rows (
    tbl           regclass NOT NULL,
    row_key       jsonb NOT NULL,
    anonymized_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, row_key),
    -- md5 of the anonymized columns' values after anonymization: a row holding other values
    -- (new data, or a new row with the same key) is anonymized again when due.
    fingerprint   text
);

CREATE TABLE retention.runs (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    trigger     text NOT NULL CONSTRAINT run_trigger_known CHECK (trigger IN ('worker', 'manual')),
    status      text NOT NULL DEFAULT 'running'
                CONSTRAINT run_status_known CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows_acted  bigint NOT NULL DEFAULT 0,
    details     jsonb NOT NULL DEFAULT '[]',
    error       text,
    pid         integer NOT NULL DEFAULT pg_backend_pid(),
    actor       name NOT NULL DEFAULT current_user
);
CREATE INDEX runs_started_at ON retention.runs (started_at);

CREATE TABLE retention.deletion_log (
    id         bigint PRIMARY KEY,
    logged_at  timestamptz NOT NULL,
    action     text NOT NULL CONSTRAINT log_action_known
               CHECK (action IN ('soft_delete', 'hard_delete', 'anonymize', 'restore', 'erasure')),
    table_name text NOT NULL,
    row_key    jsonb NOT NULL,
    tenant     text,
    category   text,
    reason     text NOT NULL CONSTRAINT log_reason_not_empty CHECK (reason <> ''),
    retain_for interval,
    run_id     bigint,
    actor      name NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    approval_id bigint
);
COMMENT ON COLUMN retention.deletion_log.approval_id IS 'The approved disposition batch (retention.disposition_batches) the row was disposed of under; hashed only when set';
CREATE INDEX deletion_log_logged_at ON retention.deletion_log (logged_at);
CREATE INDEX deletion_log_table_key ON retention.deletion_log (table_name, row_key);

-- Where the chain starts after the log's own retention removed its oldest entries: the id and
-- hash of the last entry removed, and a summary of the removal (the log's entry for itself).
CREATE TABLE retention.log_anchor (
    last_id         bigint PRIMARY KEY,
    last_hash       bytea NOT NULL,
    trimmed_entries bigint NOT NULL,
    trimmed_before  timestamptz NOT NULL,
    trimmed_at      timestamptz NOT NULL DEFAULT now(),
    trimmed_by      name NOT NULL DEFAULT current_user
);

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


-- Disposition review (categories with review => 'role'): due rows wait in batches, one per
-- table, category, tenant and due day, for a member of the role to approve or reject them.
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

-- Whole-partition retirement (src/partitions.rs): per managed partitioned table, what happens
-- to a partition whose rows are all due. No row: drop.
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

-- Configuration and records that pg_dump must carry.
SELECT pg_catalog.pg_extension_config_dump('retention.category_definitions', '');
SELECT pg_catalog.pg_extension_config_dump('retention.managed_tables', '');
SELECT pg_catalog.pg_extension_config_dump('retention.tenant_policies', '');
SELECT pg_catalog.pg_extension_config_dump('retention.tenant_events', '');
SELECT pg_catalog.pg_extension_config_dump('retention.holds', '');
SELECT pg_catalog.pg_extension_config_dump('retention.holds_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.notifications', '');
SELECT pg_catalog.pg_extension_config_dump('retention.notifications_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.deletion_queue', '');
SELECT pg_catalog.pg_extension_config_dump('retention.deletion_queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.erasure_records', '');
SELECT pg_catalog.pg_extension_config_dump('retention.erasure_records_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.anonymized_rows', '');
SELECT pg_catalog.pg_extension_config_dump('retention.runs', '');
SELECT pg_catalog.pg_extension_config_dump('retention.runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.deletion_log', '');
SELECT pg_catalog.pg_extension_config_dump('retention.log_anchor', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_records', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_records_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('retention.export_deliveries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.redaction_rules', '');
SELECT pg_catalog.pg_extension_config_dump('retention.redaction_tallies', '');
SELECT pg_catalog.pg_extension_config_dump('retention.erasure_extensions', '');
SELECT pg_catalog.pg_extension_config_dump('retention.erasure_extensions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.category_locks', '');
SELECT pg_catalog.pg_extension_config_dump('retention.disposition_batches', '');
SELECT pg_catalog.pg_extension_config_dump('retention.disposition_batches_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.partition_retirement', '');
