--
-- pg_retention regression suite, part 3: purging expired rows.
--
-- retention.preview() lists what is due; retention.run(dry_run => true) counts what a run
-- would do; retention.run() does it, in this session, and logs one entry per row in
-- retention.deletion_log. The background worker does the same on a cadence (it is disabled
-- in this suite).
--
-- Ages are relative to now(): a row created "400 days ago" is past the 1-year retention of
-- category conversations, one created 10 days ago is not.
--
\set SHOW_CONTEXT never

CREATE TABLE conversations (
    id         integer PRIMARY KEY,
    tenant     text NOT NULL,
    subject    text,
    created_at timestamptz NOT NULL,
    category   text
);
CREATE INDEX ON conversations (created_at);
SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                        tenant_column => 'tenant', subject_column => 'subject',
                        category_column => 'category');

INSERT INTO conversations (id, tenant, subject, created_at) VALUES
    (1, 'acme',    'alice', now() - interval '400 days'),
    (2, 'acme',    'alice', now() - interval '10 days'),
    (3, 'globex',  'bob',   now() - interval '400 days'),
    (4, 'globex',  'bob',   now() - interval '10 days'),
    (5, 'initech', 'carol', now() - interval '200 days'),
    (6, 'initech', 'carol', now() - interval '10 days'),
    (7, 'acme',    'voice', now() - interval '40 days'),
    (8, 'acme',    'voice', now() - interval '10 days');

-- Support tickets count from their last activity (3 years).
CREATE TABLE tickets (
    id            integer PRIMARY KEY,
    tenant        text,
    last_activity timestamptz NOT NULL
);
CREATE INDEX ON tickets (last_activity);
SELECT retention.manage('tickets', 'support', activity_column => 'last_activity',
                        tenant_column => 'tenant');
INSERT INTO tickets VALUES
    (1, 'acme', now() - interval '4 years'),
    (2, 'acme', now() - interval '2 years'),
    (3, 'globex', now() - interval '1 day');

--
-- What is due now: rows 1 and 3 of conversations (400 days old), ticket 1 (4 years idle).
--
SELECT * FROM retention.preview() ORDER BY table_name, category, tenant;

-- And what will be due within 200 days (a row 200 days old reaches 1 year in 165 days).
SELECT * FROM retention.preview(interval '200 days') ORDER BY table_name, category, tenant;

-- A negative horizon is refused.
SELECT * FROM retention.preview(interval '-1 day');
\echo :LAST_ERROR_SQLSTATE

-- A dry run counts, and changes nothing.
SELECT * FROM retention.run(dry_run => true) ORDER BY table_name;
SELECT (SELECT count(*) FROM conversations) AS conversations,
       (SELECT count(*) FROM tickets) AS tickets,
       (SELECT count(*) FROM retention.deletion_log) AS log_entries;

--
-- The run. Per table: rows soft-deleted, hard-deleted, anonymized, and the error if the
-- table failed.
--
SELECT * FROM retention.run() ORDER BY table_name;

SELECT id, tenant, created_at > now() - interval '1 year' AS younger_than_a_year
  FROM conversations ORDER BY id;
SELECT id FROM tickets ORDER BY id;

-- One log entry per row acted on: what, which table, which row (its primary key only: the
-- log never stores content), whose, under which category and period, and why.
SELECT action, table_name, row_key, tenant, category, reason, retain_for,
       run_id IS NOT NULL AS by_a_run, actor
  FROM retention.deletion_log ORDER BY table_name, row_key;

-- The run is recorded in retention.runs (dry runs are not).
SELECT trigger, status, rows_acted, error,
       jsonb_path_query_array(details, '$[*].table') AS tables
  FROM retention.runs ORDER BY id;

-- A second run finds nothing to do.
SELECT * FROM retention.run() ORDER BY table_name;

-- run(tbl) purges one table only.
SELECT * FROM retention.run('tickets');
-- Only managed tables.
CREATE TABLE unmanaged (id int PRIMARY KEY);
SELECT * FROM retention.run('unmanaged');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE unmanaged;

--
-- Tenant overrides: "unless a customer agreement specifies otherwise". The override is in
-- force for that tenant's rows, before the category default (invariant 3).
--

-- initech agreed to 90 days: its 200-day-old row is now due, its 10-day-old row is not.
SELECT retention.set_tenant_policy('initech', 'conversations', interval '90 days');
-- globex agreed to 2 years: a 500-day-old conversation of globex is kept, although the
-- default (1 year) would delete it.
SELECT retention.set_tenant_policy('globex', 'conversations', interval '2 years');
INSERT INTO conversations (id, tenant, subject, created_at) VALUES
    (10, 'globex', 'bob', now() - interval '500 days');
SELECT tenant, category, retain_for, soft_delete_window
  FROM retention.tenant_policies ORDER BY tenant, category;

SELECT * FROM retention.preview() ORDER BY table_name, category, tenant;
SELECT * FROM retention.run('conversations');
SELECT id, tenant FROM conversations ORDER BY id;

-- The log records the period that was in force: initech's 90 days.
SELECT action, row_key, tenant, category, reason, retain_for
  FROM retention.deletion_log WHERE table_name = 'public.conversations'
 ORDER BY row_key;

-- Setting a policy again changes it; clearing it brings back the category default.
SELECT retention.set_tenant_policy('globex', 'conversations', interval '3 years');
SELECT tenant, retain_for FROM retention.tenant_policies WHERE tenant = 'globex';
SELECT retention.clear_tenant_policy('globex', 'conversations');
SELECT retention.clear_tenant_policy('initech', 'conversations');
SELECT * FROM retention.preview() ORDER BY table_name, category, tenant;

-- Row 10 is now past the default: it goes at the next run. (Run it now, to continue from a
-- clean slate.)
SELECT * FROM retention.run('conversations');

--
-- Tagging rows: a row's category is the table's default unless it is tagged. tag() tags by
-- primary key, tag_where() by condition; both return the number of rows tagged.
--

-- Row 7 is raw call audio: zero retention.
SELECT retention.tag('conversations', 'raw_audio', ARRAY[7]);
-- So are all rows of subject 'voice' (rows 7 and 8).
SELECT retention.tag_where('conversations', 'raw_audio', $$subject = 'voice'$$);
-- Row 9 is an audit record: kept 7 years although it is 400 days old.
INSERT INTO conversations (id, tenant, subject, created_at) VALUES
    (9, 'acme', 'audit', now() - interval '400 days');
SELECT retention.tag('conversations', 'audit_logs', ARRAY[9]);
SELECT id, category FROM conversations ORDER BY id;

-- Rows 7 and 8 are due now; row 9 is not.
SELECT * FROM retention.preview() ORDER BY table_name, category, tenant;
SELECT * FROM retention.run('conversations');
SELECT id, category FROM conversations ORDER BY id;

SELECT action, row_key, tenant, category, reason, retain_for
  FROM retention.deletion_log WHERE table_name = 'public.conversations'
 ORDER BY row_key;

-- The application may also write the category column directly: row 2 becomes raw audio,
-- due at once.
UPDATE conversations SET category = 'raw_audio' WHERE id = 2;
SELECT * FROM retention.preview() ORDER BY table_name, category, tenant;
UPDATE conversations SET category = NULL WHERE id = 2;

-- Tagging errors: unknown category (42704), no keys or keys of the wrong shape (22023), a
-- condition that tries to smuggle in more statements (22023), a table without a category
-- column (55000).
SELECT retention.tag('conversations', 'chats', ARRAY[2]);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.tag('conversations', 'raw_audio', '{}'::int[]);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.tag('conversations', 'raw_audio', ARRAY[[2, 4]]);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.tag_where('conversations', 'raw_audio', $$true); DELETE FROM conversations; SELECT (1$$);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.tag_where('conversations', 'raw_audio', '');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.tag('tickets', 'raw_audio', ARRAY[2]);
\echo :LAST_ERROR_SQLSTATE
-- None of them tagged anything.
SELECT id, category FROM conversations ORDER BY id;

--
-- Batches: each batch acts on at most pg_retention.batch_size rows; a run goes on until
-- nothing is due.
--
INSERT INTO conversations (id, tenant, subject, created_at)
SELECT 100 + g, 'umbrella', 'dave', now() - interval '2 years' FROM generate_series(1, 5) g;
SET pg_retention.batch_size = 2;
SELECT * FROM retention.run('conversations');
RESET pg_retention.batch_size;
SELECT count(*) AS umbrella_left FROM conversations WHERE tenant = 'umbrella';

-- Every entry so far links to the one before it: the hash chain is intact.
SELECT retention.verify_log() IS NULL AS log_intact;
SELECT count(*) AS log_entries FROM retention.deletion_log;

-- The status view: per managed table, the last run and what it did; the last row, with no
-- table_name, is the whole database.
SELECT table_name, default_category, last_run_status, last_run_rows, last_error,
       rows_logged_24h, active_holds, queued_deletions
  FROM retention.status ORDER BY table_name;

-- Clean up for the next files (the log entries stay: the log is append-only).
DROP TABLE conversations, tickets;
SELECT (SELECT count(*) FROM retention.managed_tables) AS managed_tables,
       (SELECT count(*) FROM retention.tenant_policies) AS tenant_policies;
