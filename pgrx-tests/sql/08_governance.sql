--
-- pg_retention regression suite, part 8: governance the catalog alone cannot express.
--
-- One category, two soft-delete windows: a project the customer deletes stays recoverable 30
-- days, a terminated tenant's project 90 days. And disposition review: rows of a reviewed
-- category wait, at the end of their retention, for a member of the reviewing role.
--
\set SHOW_CONTEXT never

SELECT retention.define_category('workspaces', '0', clock => 'event', event => 'closure',
         soft_delete_windows => '{"customer_request": "30 days", "expired": "90 days"}');
SELECT name, soft_delete_window, soft_delete_windows
  FROM retention.categories WHERE name = 'workspaces';
CREATE TABLE workspaces (id integer PRIMARY KEY, tenant text NOT NULL, deleted_at timestamptz);
SELECT retention.manage('workspaces', 'workspaces', tenant_column => 'tenant',
                        soft_delete_column => 'deleted_at');
INSERT INTO workspaces VALUES (1, 'acme', NULL), (2, 'globex', NULL);

-- Acme deletes workspace 1; globex closes its account: workspace 2 is soft-deleted as expired.
SELECT retention.request_delete('workspaces', ARRAY[1]);
SELECT retention.record_event('globex', 'closure');
SELECT table_name, soft_deleted, hard_deleted FROM retention.run()
 WHERE table_name = 'public.workspaces';
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM workspaces ORDER BY id;

-- 40 days on: the customer's deletion is final; the closed account's workspace can come back.
UPDATE workspaces SET deleted_at = deleted_at - interval '40 days';
SELECT table_name, soft_deleted, hard_deleted FROM retention.run()
 WHERE table_name = 'public.workspaces';
SELECT id FROM workspaces ORDER BY id;
SELECT action, row_key, reason FROM retention.deletion_log
 WHERE table_name = 'public.workspaces' ORDER BY id;

-- A path's window is checked like any other argument.
SELECT retention.define_category('workspaces', '0', clock => 'event', event => 'closure',
         soft_delete_windows => '{"archived": "1 day"}');

SELECT retention.unmanage('workspaces');
DROP TABLE workspaces;
SELECT retention.cancel_event('globex', 'closure');
SELECT retention.drop_category('workspaces');

--
-- Disposition review. Rows of a reviewed category are not acted on when due: each cycle puts
-- them in batches (table, category, tenant, due day) for the reviewing role.
--
CREATE ROLE regress_records_office;
SELECT retention.define_category('ledgers', '5 years', review => 'regress_records_office');
CREATE TABLE ledgers (id integer PRIMARY KEY, tenant text NOT NULL, booked_at timestamptz NOT NULL);
CREATE INDEX ON ledgers (booked_at);
SELECT retention.manage('ledgers', 'ledgers', created_column => 'booked_at', tenant_column => 'tenant');
INSERT INTO ledgers VALUES (1, 'acme', now() - interval '6 years'), (2, 'acme', now() - interval '6 years'),
                           (3, 'globex', now() - interval '6 years'), (4, 'globex', now());
SELECT table_name, hard_deleted FROM retention.run() WHERE table_name = 'public.ledgers';
SELECT table_name, tenant, rows, status, reviewer FROM retention.disposition_queue ORDER BY tenant;

-- Acme's batch is approved, globex's rejected for a year.
SELECT retention.approve_disposition(batch_id, 'register checked')
  FROM retention.disposition_queue WHERE tenant = 'acme';
SELECT retention.reject_disposition(batch_id, 'claim pending', '1 year')
  FROM retention.disposition_queue WHERE tenant = 'globex';
-- A decided batch is not decided again.
SELECT retention.approve_disposition(batch_id) FROM retention.disposition_queue WHERE tenant = 'globex';

-- The next cycle disposes of the approved rows only; their log entries name the approval.
SELECT table_name, hard_deleted FROM retention.run() WHERE table_name = 'public.ledgers';
SELECT id, tenant FROM ledgers ORDER BY id;
SELECT l.row_key, l.reason, l.approval_id = b.id AS carries_approval
  FROM retention.deletion_log l JOIN retention.disposition_batches b ON b.tenant = 'acme'
 WHERE l.table_name = 'public.ledgers' ORDER BY l.id;
SELECT tenant, status, decided_by = current_user AS decided_by_me, note, closed_at IS NOT NULL AS closed
  FROM retention.disposition_batches ORDER BY tenant;
SELECT retention.verify_log() AS first_broken_entry;

SELECT retention.unmanage('ledgers');
DROP TABLE ledgers;
SELECT retention.drop_category('ledgers');
DROP ROLE regress_records_office;
