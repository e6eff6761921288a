-- pg_retention 0.6.0 -> 0.7.0.
-- Every object is as a fresh 0.7.0 install creates it (tests/upgrade.rs compares them).
-- define_category and manage keep their definitions: their entry points are hand-written in
-- 0.7.0 (src/pg/call.rs) under the same symbols.

-- runs.dry_run was never written (a dry run records no run): dropped.
ALTER TABLE retention.runs DROP COLUMN dry_run;
