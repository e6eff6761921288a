--
-- pg_retention regression suite, part 1: retention categories.
--
-- A category says how long data is kept (retain_for), from which clock (created,
-- last_activity, event, parent), and what happens when the time is up (action delete or
-- anonymize; with a soft_delete_window, rows are soft-deleted first and hard-deleted once the
-- window has passed).
--
-- Errors show their message (and detail and hint); "\echo :LAST_ERROR_SQLSTATE" then prints
-- the SQLSTATE an application would match on.
\set SHOW_CONTEXT never

--
-- The seed policy. These categories are used by the rest of the suite.
--

-- Conversation history: 1 year from creation, then deleted.
SELECT retention.define_category('conversations', interval '1 year',
       description => 'Conversation history: deleted 1 year after creation');

-- Audit logs: 7 years from creation, and exempt from erasure requests (legal obligation).
SELECT retention.define_category('audit_logs', interval '7 years', erasure_exempt => true,
       description => 'Audit logs: kept 7 years, exempt from erasure');

-- Support records: 3 years from the last activity on the ticket.
SELECT retention.define_category('support', interval '3 years', clock => 'last_activity',
       description => 'Support tickets: 3 years after the last activity');

-- Project data: 90 days after the customer's termination, soft-deleted first and recoverable
-- for 30 days, then hard-deleted.
SELECT retention.define_category('projects', interval '90 days',
       clock => 'event', event => 'termination',
       soft_delete_window => interval '30 days',
       description => 'Project data: 90 days after termination, 30-day recovery window');

-- Raw audio: zero retention, purged at the next run.
SELECT retention.define_category('raw_audio', '0',
       description => 'Raw call audio: never kept');

SELECT name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, builtin,
       description
  FROM retention.categories ORDER BY name;

--
-- Updating a category: define_category with an existing name changes it. A NULL description
-- keeps the one already there.
--
SELECT retention.define_category('conversations', interval '18 months');
SELECT name, retain_for, description, updated_by
  FROM retention.categories WHERE name = 'conversations';

-- Back to the published 1 year.
SELECT retention.define_category('conversations', interval '1 year');
SELECT name, retain_for FROM retention.categories WHERE name = 'conversations';

-- The deletion log's own retention can be changed (it stays built in), but its clock cannot.
SELECT retention.define_category('deletion_log', interval '10 years');
SELECT name, retain_for, builtin FROM retention.categories WHERE name = 'deletion_log';
SELECT retention.define_category('deletion_log', interval '7 years');
SELECT retention.define_category('deletion_log', interval '7 years', clock => 'last_activity');
\echo :LAST_ERROR_SQLSTATE

--
-- Bad input gets a clear error with a proper SQLSTATE, and changes nothing.
--

-- A negative period: 22023 (invalid_parameter_value).
SELECT retention.define_category('bad', interval '-1 day');
\echo :LAST_ERROR_SQLSTATE

-- A negative soft-delete window.
SELECT retention.define_category('bad', interval '1 day', soft_delete_window => interval '-1 day');
\echo :LAST_ERROR_SQLSTATE

-- A period too long to be anything but a typo.
SELECT retention.define_category('bad', interval '5000 years');
\echo :LAST_ERROR_SQLSTATE

-- An unknown clock.
SELECT retention.define_category('bad', interval '1 year', clock => 'modified');
\echo :LAST_ERROR_SQLSTATE

-- An unknown action.
SELECT retention.define_category('bad', interval '1 year', action => 'archive');
\echo :LAST_ERROR_SQLSTATE

-- The event clock needs the name of the event that starts it...
SELECT retention.define_category('bad', interval '90 days', clock => 'event');
\echo :LAST_ERROR_SQLSTATE

-- ...and an event name means nothing with another clock.
SELECT retention.define_category('bad', interval '90 days', event => 'termination');
\echo :LAST_ERROR_SQLSTATE

-- Anonymized rows are not soft-deleted: a window only goes with action delete.
SELECT retention.define_category('bad', interval '2 years', action => 'anonymize',
       soft_delete_window => interval '30 days');
\echo :LAST_ERROR_SQLSTATE

-- NULL name or period: 22004 (null_value_not_allowed).
SELECT retention.define_category(NULL, interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.define_category('bad', NULL);
\echo :LAST_ERROR_SQLSTATE

-- An empty name.
SELECT retention.define_category('', interval '1 year');
\echo :LAST_ERROR_SQLSTATE

-- None of these created or changed a category.
SELECT name, retain_for, clock FROM retention.categories ORDER BY name;

--
-- Dropping categories.
--

-- An unused category can be dropped.
SELECT retention.define_category('scratch', interval '1 day');
SELECT retention.drop_category('scratch');
SELECT count(*) AS scratch_left FROM retention.categories WHERE name = 'scratch';

-- An unknown one: 42704 (undefined_object), with a hint.
SELECT retention.drop_category('scratch');
\echo :LAST_ERROR_SQLSTATE

-- NULL.
SELECT retention.drop_category(NULL);
\echo :LAST_ERROR_SQLSTATE

-- The built-in deletion_log category is never dropped: 2BP01
-- (dependent_objects_still_exist); the detail says why.
SELECT retention.drop_category('deletion_log');
\echo :LAST_ERROR_SQLSTATE

-- A category in use is refused, and the detail says who uses it: a table's default
-- category...
SELECT retention.define_category('scratch', interval '1 day');
CREATE TABLE scratch_notes (id int PRIMARY KEY, created_at timestamptz NOT NULL,
                            category text);
CREATE INDEX ON scratch_notes (created_at);
SELECT retention.manage('scratch_notes', 'scratch', created_column => 'created_at',
                        category_column => 'category');
SELECT retention.drop_category('scratch');
\echo :LAST_ERROR_SQLSTATE

-- ...a tenant policy...
SELECT retention.set_tenant_policy('acme', 'support', interval '5 years');
SELECT retention.drop_category('support');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.clear_tenant_policy('acme', 'support');

-- ...or rows tagged with it (here a row of a table whose default is another category).
SELECT retention.unmanage('scratch_notes');
SELECT retention.manage('scratch_notes', 'conversations', created_column => 'created_at',
                        category_column => 'category');
INSERT INTO scratch_notes VALUES (1, now(), 'scratch');
SELECT retention.drop_category('scratch');
\echo :LAST_ERROR_SQLSTATE

-- Once nothing uses it, it goes.
DROP TABLE scratch_notes;
SELECT retention.drop_category('scratch');

--
-- Tenant policies and events reject bad input too.
--

-- A tenant override needs a known category and a sane period.
SELECT retention.set_tenant_policy('acme', 'no_such_category', interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_tenant_policy('acme', 'conversations', interval '-1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_tenant_policy('', 'conversations', interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.clear_tenant_policy('acme', 'conversations');
\echo :LAST_ERROR_SQLSTATE

-- An event no category uses (invariant 4: unknown tenant event): 42704.
SELECT retention.record_event('acme', 'bankruptcy');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.cancel_event('acme', 'termination');
\echo :LAST_ERROR_SQLSTATE

-- Nothing was recorded.
SELECT (SELECT count(*) FROM retention.tenant_policies) AS tenant_policies,
       (SELECT count(*) FROM retention.tenant_events) AS tenant_events,
       (SELECT count(*) FROM retention.managed_tables) AS managed_tables;

-- The policy the rest of the suite uses.
SELECT name, retain_for, clock, action, soft_delete_window, event, erasure_exempt
  FROM retention.categories ORDER BY name;
