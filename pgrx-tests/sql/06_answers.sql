--
-- pg_retention regression suite, part 6: answers for the people around the data.
--
-- Export requests (GDPR Art. 15 access, Art. 20 portability) are the twin of erasure requests:
-- received, verified, then delivered by export_data(), which reads as the caller and records
-- who received how many rows of which table, never the content. evidence() gives an auditor
-- what the policy did, month by month, from the log and the records.
--
\set SHOW_CONTEXT never

CREATE TABLE tickets (
    id         integer PRIMARY KEY,
    tenant     text NOT NULL,
    requester  text,
    created_at timestamptz NOT NULL,
    body       text
);
SELECT retention.define_category('tickets', '1 year');
SELECT retention.manage('tickets', 'tickets', created_column => 'created_at',
                        tenant_column => 'tenant', subject_column => 'requester');
INSERT INTO tickets VALUES
    (1, 'acme',   'alice', now() - interval '400 days', 'printer on fire'),
    (2, 'acme',   'bob',   now() - interval '10 days',  'password reset'),
    (3, 'globex', 'alice', now() - interval '5 days',   'invoice question'),
    (4, 'acme',   'alice', now() - interval '2 days',   'thanks');
SELECT max(id) AS log_start FROM retention.deletion_log \gset

--
-- An export request: received (due in 30 days), verified, delivered. Alice's data at acme,
-- the held row included: a hold preserves data, it does not hide it.
--
SELECT retention.place_hold('Dispute', tenant => 'acme', subject => 'alice', notify => false)
       AS dispute \gset
SELECT retention.request_export('alice', tenant => 'acme', external_id => 'dsar-0042')
       AS request \gset
-- A DSAR platform submitting again gets the same request.
SELECT retention.request_export('alice', tenant => 'acme', external_id => 'dsar-0042') = :request
       AS same_request;
SELECT subject, tenant, external_id, status, due_at - received_at AS due_in, overdue
  FROM retention.export_requests WHERE id = :request;
-- Not verified yet: 55000.
SELECT * FROM retention.export_data(:request);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.verify_export(:request);
SELECT table_name, row_key, data ->> 'body' AS body
  FROM retention.export_data(:request) ORDER BY row_key;
SELECT status, completed_at IS NOT NULL AS delivered FROM retention.export_requests
 WHERE id = :request;
SELECT request_id = :request AS for_request, tenant, delivered_by, rows
  FROM retention.export_deliveries;

-- A customer's data before its termination's deletion: every table with a tenant column.
SELECT table_name, row_key FROM retention.export_tenant('globex');
SELECT tenant, rows FROM retention.export_deliveries WHERE tenant IS NOT NULL;

-- Bad input: an unknown request (42704), verifying twice (55000), an external_id naming
-- another subject (23505), an empty subject (22023), NULLs (22004).
SELECT retention.verify_export(999999);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.verify_export(:request);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_export('bob', tenant => 'acme', external_id => 'dsar-0042');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_export('');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.export_tenant(NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- Explaining a row: why it is still here and when it goes. Ticket 1 is 400 days old but
-- held; ticket 2 is due in 355 days; ticket 9 never existed.
--
SELECT row_key, present, category, tagged, clock, retain_for, policy,
       due_at = clock_value + retain_for AS due_is_clock_plus_period,
       jsonb_array_length(holds) AS holds, next_action
  FROM retention.explain('tickets', ARRAY[1, 2, 9]) ORDER BY row_key;

--
-- Evidence for auditors. Once the dispute is released (at once here: no grace), the purge
-- removes ticket 1 (400 days old). evidence() counts it in this month, per category, and
-- totals the month (category NULL, with every earlier file's work) with the requests and
-- holds of the month.
--
SET pg_retention.hold_release_grace = 0;
SELECT retention.release_hold(:dispute, 'Settled');
SELECT rows_freed FROM retention.holds WHERE id = :dispute;
SELECT * FROM retention.run();
-- Ticket 1 is gone: the log explains it.
SELECT present, next_action, log -> 0 ->> 'action' AS logged_action,
       log -> 0 ->> 'reason' AS logged_reason
  FROM retention.explain('tickets', ARRAY[1]);
SELECT category, soft_deleted, hard_deleted, anonymized, erased, restored,
       exports_received, exports_on_time, exports_open, holds_placed, holds_released,
       log_intact
  FROM retention.evidence(date_trunc('month', now()), date_trunc('month', now()) + interval '1 month')
 WHERE category IS NULL OR category = 'tickets'
 ORDER BY category NULLS FIRST;
-- The same as one document, with a digest of its content.
SELECT e -> 'log' ->> 'intact' AS log_intact,
       jsonb_array_length(e -> 'months') AS months,
       e -> 'months' -> 0 -> 'categories' -> 'tickets' ->> 'hard_deleted' AS tickets_hard_deleted,
       length(e ->> 'digest') AS digest_length
  FROM retention.evidence_json(date_trunc('month', now()), date_trunc('month', now()) + interval '1 month') e;
-- A period that ends before it starts: 22023.
SELECT * FROM retention.evidence(now(), now() - interval '1 day');
\echo :LAST_ERROR_SQLSTATE

-- Clean up.
DROP TABLE tickets;
