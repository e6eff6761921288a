-- pg_retention demo: the seed company's retention table, made executable.
\pset footer off
\echo '== The policy (seeds/data-retention-policy.txt)'
CREATE EXTENSION pg_retention;
SELECT retention.define_category('conversations', '1 year', description => 'Conversation history: 1 year from creation');
SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true, description => 'Audit logs: 7 years from creation');
SELECT retention.define_category('support_records', '3 years', clock => 'last_activity', description => 'Support records: 3 years from last activity');
SELECT retention.define_category('project_data', '0', clock => 'event', event => 'termination',
                                 soft_delete_windows => '{"expired": "90 days", "customer_request": "30 days"}',
                                 description => 'Projects: recoverable 90 days after termination, 30 days after a deletion');
SELECT retention.define_category('raw_audio', '0', description => 'Raw audio: zero retention');
-- Audit logs are a minimum duty: locked, nobody shortens them, not even an administrator.
SELECT retention.lock_category('audit_logs');
SELECT name, retain_for, clock, soft_delete_windows AS windows, erasure_exempt, locked FROM retention.categories ORDER BY name;

\echo '== Application tables put under retention'
CREATE TABLE conversations (id bigint PRIMARY KEY, tenant text, author text, created_at timestamptz NOT NULL, category text, body text);
CREATE INDEX ON conversations (created_at);
CREATE TABLE projects (id bigint PRIMARY KEY, tenant text NOT NULL, name text, deleted_at timestamptz);
SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                        tenant_column => 'tenant', subject_column => 'author', category_column => 'category');
SELECT retention.manage('projects', 'project_data', tenant_column => 'tenant', soft_delete_column => 'deleted_at');
-- Identifiers inside the text never reach storage (the voice platform's control).
SELECT retention.redact('conversations', '{body}', '{card,email,phone,ssn}');
INSERT INTO conversations SELECT i, (ARRAY['acme','globex','initech'])[1 + i % 3], 'user' || i % 7,
       now() - i * interval '1 day', NULL, 'private words' FROM generate_series(1, 1000) i;
INSERT INTO projects VALUES (1, 'acme', 'apollo'), (2, 'globex', 'gemini'), (3, 'initech', 'mercury');

\echo '== A customer agreement: globex keeps conversations 2 years; a legal hold on initech; acme terminated 10 days ago'
SELECT retention.set_tenant_policy('globex', 'conversations', '2 years');
SELECT retention.place_hold('Litigation 2026-117', tenant => 'initech') AS hold_id \gset
SELECT retention.record_event('acme', 'termination', now() - interval '10 days');
SELECT retention.tag('conversations', 'raw_audio', ARRAY[1, 2]);

INSERT INTO conversations VALUES (1001, 'acme', 'user1', now(), NULL, 'my card is 4111 1111 1111 1111, mail me at ann@example.com');
SELECT id, body FROM conversations WHERE id = 1001;
SELECT table_name, column_name, detector, redactions FROM retention.redaction_counts ORDER BY 2, 3;

\echo '== What is due, and what the hold keeps back'
SELECT * FROM retention.preview() ORDER BY table_name, tenant;

\echo '== One purge cycle (the background worker does the same every naptime)'
SELECT * FROM retention.run();
SELECT tenant, count(*) AS kept, min(created_at)::date AS oldest FROM conversations GROUP BY tenant ORDER BY tenant;
SELECT id, tenant, deleted_at IS NOT NULL AS soft_deleted FROM projects ORDER BY id;

\echo '== The deletion log: who, what, why, under which policy; never the content'
SELECT id, action, table_name, row_key, tenant, category, reason, retain_for FROM retention.deletion_log ORDER BY id LIMIT 5;
SELECT action, reason, count(*) FROM retention.deletion_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT retention.verify_log() AS first_broken_entry;

\echo '== The customer restores their project within the window'
SELECT retention.restore('projects', ARRAY[1]);
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE id = 1;

\echo '== Disposition review: signed contracts wait for the records office before they go'
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'records_office') THEN CREATE ROLE records_office; END IF;
END $$;
SELECT retention.define_category('contracts', '6 years', review => 'records_office',
                                 description => 'Signed contracts: 6 years, then disposed of after review');
CREATE TABLE contracts (id bigint PRIMARY KEY, tenant text NOT NULL, signed_at timestamptz NOT NULL);
CREATE INDEX ON contracts (signed_at);
SELECT retention.manage('contracts', 'contracts', created_column => 'signed_at', tenant_column => 'tenant');
INSERT INTO contracts VALUES (1, 'acme', now() - interval '7 years'), (2, 'acme', now() - interval '7 years'),
                             (3, 'globex', now() - interval '7 years');
SELECT table_name, hard_deleted FROM retention.run() WHERE table_name = 'public.contracts';  -- nothing yet: queued
SELECT batch_id, table_name, tenant, rows, status, reviewer FROM retention.disposition_queue ORDER BY batch_id;
SELECT retention.approve_disposition(batch_id, 'checked against the records register')
  FROM retention.disposition_queue WHERE tenant = 'acme';
SELECT retention.reject_disposition(batch_id, 'claim pending', '1 year')
  FROM retention.disposition_queue WHERE tenant = 'globex';
SELECT table_name, hard_deleted FROM retention.run() WHERE table_name = 'public.contracts';
SELECT id, tenant FROM contracts ORDER BY id;
SELECT action, row_key, reason, approval_id FROM retention.deletion_log WHERE approval_id IS NOT NULL ORDER BY id;

\echo '== Monitoring'
SELECT table_name, last_run_status, last_run_rows, rows_logged_24h, active_holds FROM retention.status;
