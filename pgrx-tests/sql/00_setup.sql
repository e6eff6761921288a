--
-- pg_retention regression suite, part 0: installing the extension.
--
-- The suite runs in one fresh database, files in order (00_setup, 01_categories, ...). The
-- categories defined in 01_categories are the policy every later file uses; every other file
-- removes the tables it creates, so each starts from a known state.
--
-- pg_retention must be in shared_preload_libraries (it starts a background worker). The test
-- cluster runs with pg_retention.enabled = off: nothing is purged unless a test calls
-- retention.run().
--
CREATE EXTENSION IF NOT EXISTS pg_retention;

-- Everything lives in schema "retention".
SELECT extname, extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'pg_retention';

-- The settings, with this cluster's values.
SHOW pg_retention.enabled;
SHOW pg_retention.batch_size;
SHOW pg_retention.throttle;
SHOW pg_retention.max_rows_per_second;

-- A fresh install knows one category: the deletion log's own retention (7 years). It is
-- built in: it can be changed but not dropped.
SELECT name, retain_for, clock, action, soft_delete_window, event, erasure_exempt, builtin
  FROM retention.categories ORDER BY name;

-- No table is managed yet, no hold is placed, the deletion log is empty and its hash chain
-- (trivially) intact.
SELECT (SELECT count(*) FROM retention.managed_tables) AS managed_tables,
       (SELECT count(*) FROM retention.holds) AS holds,
       (SELECT count(*) FROM retention.deletion_log) AS log_entries,
       retention.verify_log() AS first_broken_entry;

-- Nothing that changes retention state is executable by PUBLIC.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'retention'::regnamespace
   AND p.proname IN ('define_category', 'manage', 'place_hold', 'release_hold', 'run',
                     'request_delete', 'restore')
 ORDER BY p.proname;
