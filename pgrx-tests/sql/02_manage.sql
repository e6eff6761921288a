--
-- pg_retention regression suite, part 2: putting tables under retention.
--
-- retention.manage(tbl, category, ...) gives a table a default category and names the
-- columns each clock and scope reads. Every column is checked when manage() is called.
--
\set SHOW_CONTEXT never

CREATE TABLE conversations (
    id         bigint PRIMARY KEY,
    tenant     text NOT NULL,
    subject    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    category   text,
    body       text,
    rating     integer
);

-- The creation time is the clock of category "conversations". There is no index on it yet,
-- so manage() warns, and gives the statement that creates one.
SELECT retention.manage('conversations', 'conversations',
                        created_column  => 'created_at',
                        tenant_column   => 'tenant',
                        subject_column  => 'subject',
                        category_column => 'category');

SELECT tbl, category, created_column, activity_column, tenant_column, subject_column,
       category_column, soft_delete_column, anonymize, key_columns
  FROM retention.managed_tables;

-- A table is managed once: managing it again is an error, 42710 (duplicate_object).
SELECT retention.manage('conversations', 'audit_logs', created_column => 'created_at');
\echo :LAST_ERROR_SQLSTATE

-- To change its default category, unmanage it first. With the index in place, no warning.
SELECT retention.unmanage('conversations');
CREATE INDEX conversations_created_at ON conversations (created_at);
SELECT retention.manage('conversations', 'conversations',
                        created_column  => 'created_at',
                        tenant_column   => 'tenant',
                        subject_column  => 'subject',
                        category_column => 'category');
SELECT tbl, category FROM retention.managed_tables;

--
-- Every mistake is caught at call time, with its own SQLSTATE, and nothing is recorded.
--
SELECT retention.unmanage('conversations');

-- A column that does not exist: 42703 (undefined_column).
SELECT retention.manage('conversations', 'conversations', created_column => 'inserted_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                        tenant_column => 'customer');
\echo :LAST_ERROR_SQLSTATE

-- A clock column that is not a timestamp or date: 42804 (datatype_mismatch).
SELECT retention.manage('conversations', 'conversations', created_column => 'body');
\echo :LAST_ERROR_SQLSTATE

-- A category column must hold text.
SELECT retention.manage('conversations', 'conversations', created_column => 'created_at',
                        category_column => 'rating');
\echo :LAST_ERROR_SQLSTATE

-- An unknown category: 42704 (undefined_object).
SELECT retention.manage('conversations', 'chats', created_column => 'created_at');
\echo :LAST_ERROR_SQLSTATE

-- The category's clock needs its column: category "conversations" counts from creation.
-- 55000 (object_not_in_prerequisite_state), with a hint.
SELECT retention.manage('conversations', 'conversations', tenant_column => 'tenant');
\echo :LAST_ERROR_SQLSTATE

-- A table without a primary key cannot be managed (the deletion log identifies rows by
-- their key): 42P16 (invalid_table_definition).
CREATE TABLE call_audio (tenant text, recorded_at timestamptz, audio bytea);
SELECT retention.manage('call_audio', 'raw_audio', created_column => 'recorded_at');
\echo :LAST_ERROR_SQLSTATE

-- Only tables can be managed: 42809 (wrong_object_type).
CREATE VIEW recent_conversations AS SELECT * FROM conversations;
SELECT retention.manage('recent_conversations', 'conversations', created_column => 'created_at');
\echo :LAST_ERROR_SQLSTATE
DROP VIEW recent_conversations;

-- NULL table: 22004.
SELECT retention.manage(NULL, 'conversations');
\echo :LAST_ERROR_SQLSTATE

-- Category "projects" counts from the tenant's termination and soft-deletes first: a table
-- needs both a tenant column and a soft-delete column for it.
CREATE TABLE projects (
    id         bigint PRIMARY KEY,
    tenant     text NOT NULL,
    name       text,
    deleted_at timestamptz
);
SELECT retention.manage('projects', 'projects');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.manage('projects', 'projects', tenant_column => 'tenant');
\echo :LAST_ERROR_SQLSTATE

-- The soft-delete column must be a timestamp.
SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                        soft_delete_column => 'name');
\echo :LAST_ERROR_SQLSTATE

-- Unmanaging a table that is not managed: 42704.
SELECT retention.unmanage('projects');
\echo :LAST_ERROR_SQLSTATE

-- None of the failed calls left anything behind.
SELECT count(*) AS managed_tables FROM retention.managed_tables;

--
-- Done right: the project table with its tenant and soft-delete columns. The event clock
-- reads no column of the table, so there is no index advice.
--
SELECT retention.manage('projects', 'projects', tenant_column => 'tenant',
                        soft_delete_column => 'deleted_at');

-- A composite primary key is recorded in key order.
CREATE TABLE tickets (
    tenant        text,
    ticket_no     integer,
    last_activity timestamp,
    PRIMARY KEY (tenant, ticket_no)
);
CREATE INDEX ON tickets (last_activity);
SELECT retention.manage('tickets', 'support', activity_column => 'last_activity',
                        tenant_column => 'tenant');

SELECT tbl, category, activity_column, tenant_column, soft_delete_column, key_columns
  FROM retention.managed_tables ORDER BY tbl::text;

-- Dropping a managed table takes it out of retention.
DROP TABLE tickets;
SELECT tbl FROM retention.managed_tables ORDER BY tbl::text;

-- Clean up for the next files.
SELECT retention.unmanage('projects');
DROP TABLE projects, conversations, call_audio;
SELECT count(*) AS managed_tables FROM retention.managed_tables;
