--
-- pg_retention regression suite, part 5: project data, soft deletes and customer-initiated
-- deletion.
--
-- Category "projects" (from 01_categories): 90 days after the tenant's termination the
-- projects are soft-deleted; they can be restored for 30 days; then they are hard-deleted.
-- Customers can delete at any time through the same path (retention.request_delete); rows
-- under a legal hold are queued instead, and deleted when the hold is released.
--
\set SHOW_CONTEXT never

SELECT coalesce(max(id), 0) AS log_start FROM retention.deletion_log \gset

CREATE TABLE projects (
    id         integer PRIMARY KEY,
    tenant     text NOT NULL,
    name       text NOT NULL,
    deleted_at timestamptz
);
SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                        soft_delete_column => 'deleted_at');

INSERT INTO projects (id, tenant, name) VALUES
    (1, 'acme',    'Website'),
    (2, 'acme',    'Mobile app'),
    (3, 'acme',    'Data warehouse'),
    (4, 'globex',  'Billing'),
    (5, 'globex',  'Reporting'),
    (6, 'initech', 'TPS reports');

-- No tenant has terminated: nothing is due, however far ahead we look.
SELECT * FROM retention.preview(interval '10 years');

--
-- The event clock: record_event starts it. Acme left 100 days ago (past the 90 days), globex
-- 10 days ago.
--
SELECT retention.record_event('acme', 'termination', now() - interval '100 days');
SELECT retention.record_event('globex', 'termination', now() - interval '10 days');
SELECT tenant, event, occurred_at < now() - interval '90 days' AS over_90_days_ago
  FROM retention.tenant_events ORDER BY tenant;

-- Acme's projects are due for a soft delete; globex's are not yet.
SELECT * FROM retention.preview() ORDER BY tenant, action;

SELECT * FROM retention.run();
SELECT id, tenant, deleted_at IS NOT NULL AS soft_deleted FROM projects ORDER BY id;

-- The soft-deleted rows are hard-deleted once their 30-day window has passed.
SELECT * FROM retention.preview(interval '30 days') ORDER BY tenant, action;

--
-- Restoring within the window undoes the soft delete, and is logged.
--
SELECT retention.restore('projects', ARRAY[1]);
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE tenant = 'acme'
 ORDER BY id;

-- After the window it is too late: 55000 (object_not_in_prerequisite_state). Simulate a
-- soft delete 40 days ago.
UPDATE projects SET deleted_at = now() - interval '40 days' WHERE id = 2;
SELECT retention.restore('projects', ARRAY[2]);
\echo :LAST_ERROR_SQLSTATE
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE id = 2;

-- The next run hard-deletes row 2 (window passed) and soft-deletes row 1 again: acme is
-- still terminated.
SELECT * FROM retention.run();
SELECT id, tenant, deleted_at IS NOT NULL AS soft_deleted FROM projects ORDER BY id;

-- Acme comes back: cancel_event stops the clock, and its projects can be restored.
SELECT retention.cancel_event('acme', 'termination');
SELECT retention.restore('projects', ARRAY[1, 3]);
SELECT * FROM retention.run();
SELECT id, tenant, deleted_at IS NOT NULL AS soft_deleted FROM projects ORDER BY id;

-- Row 2 was hard-deleted: restoring it fails (55000) and names its deletion-log entry.
SELECT retention.restore('projects', ARRAY[2]) IS NULL AS restored;
\echo :LAST_ERROR_SQLSTATE

-- Cancelling an event that is not recorded: 42704.
SELECT retention.cancel_event('acme', 'termination');
\echo :LAST_ERROR_SQLSTATE

--
-- Customer-initiated deletion: globex deletes its "Billing" project. The category has a
-- window, so it is a soft delete, recoverable like any other.
--
SELECT retention.request_delete('projects', ARRAY[4]);
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE tenant = 'globex'
 ORDER BY id;

-- Deleting a row that is already soft-deleted, or that does not exist, acts on nothing.
SELECT retention.request_delete('projects', ARRAY[4, 999]);

--
-- A row under a legal hold is not deleted: the request is queued, and carried out when the
-- hold is released.
--
SELECT retention.place_hold('Contract dispute', tenant => 'initech', notify => false)
       AS initech_hold \gset
SELECT retention.request_delete('projects', ARRAY[6]);
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE id = 6;
SELECT table_name, row_key, reason FROM retention.queued_deletions;
SELECT table_name, queued_deletions, active_holds FROM retention.status ORDER BY table_name;

-- Asking again does not queue it twice.
SELECT retention.request_delete('projects', ARRAY[6]);
SELECT count(*) AS queued FROM retention.queued_deletions;

-- (Releases free rows at once in this file: 04_holds shows the default grace of 7 days.)
SET pg_retention.hold_release_grace = 0;
SELECT retention.release_hold(:initech_hold, 'Dispute resolved');
SELECT rows_freed FROM retention.holds WHERE id = :initech_hold;
-- The release is recorded at once; the queued deletion runs with the next purge cycle (the
-- worker's, within pg_retention.naptime, or a retention.run()).
SELECT count(*) AS queued FROM retention.queued_deletions;
SELECT table_name, soft_deleted, hard_deleted FROM retention.run() WHERE table_name = 'retention.deletion_queue';
SELECT id, deleted_at IS NOT NULL AS soft_deleted FROM projects WHERE id = 6;
SELECT count(*) AS queued FROM retention.queued_deletions;

--
-- Tables without a soft-delete window delete directly: a customer deletes a conversation.
--
CREATE TABLE conversations (
    id         integer PRIMARY KEY,
    tenant     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON conversations (created_at);
SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                        tenant_column => 'tenant');
INSERT INTO conversations (id, tenant) VALUES (1, 'globex'), (2, 'globex'), (3, 'hooli');
SELECT retention.request_delete('conversations', ARRAY[1, 3]);
SELECT id FROM conversations ORDER BY id;

-- A hard delete cannot be restored; there is no soft-delete column.
SELECT retention.restore('conversations', ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE

-- Bad input: an unmanaged table (42704), no keys or keys of the wrong shape (22023), an
-- empty reason (22023).
CREATE TABLE scratch (id int PRIMARY KEY);
SELECT retention.request_delete('scratch', ARRAY[1]);
\echo :LAST_ERROR_SQLSTATE
DROP TABLE scratch;
SELECT retention.request_delete('conversations', '{}'::int[]);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_delete('conversations', ARRAY[[1, 2]]);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_delete('conversations', ARRAY[2], reason => ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM conversations ORDER BY id;

--
-- Everything this file did, as the deletion log recorded it.
--
SELECT action, table_name, row_key, tenant, category, reason, retain_for,
       run_id IS NOT NULL AS by_a_run
  FROM retention.deletion_log WHERE id > :log_start ORDER BY id;
SELECT retention.verify_log() IS NULL AS log_intact;

-- Clean up.
SELECT retention.cancel_event('globex', 'termination');
DROP TABLE projects, conversations;
SELECT (SELECT count(*) FROM retention.managed_tables) AS managed_tables,
       (SELECT count(*) FROM retention.tenant_events) AS tenant_events,
       (SELECT count(*) FROM retention.holds WHERE released_at IS NULL) AS active_holds;
