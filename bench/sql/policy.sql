-- Puts :tbl under the benchmark's policy and creates the baseline's objects
-- (psql -v tbl=…). Run after load.sql and index.sql.
SELECT retention.manage(:'tbl', 'conversations', created_column => 'created_at',
         tenant_column => 'tenant', subject_column => 'subject', category_column => 'category');

-- Three holds covering about 1% of the rows: a whole small tenant and two data subjects.
SELECT retention.place_hold('litigation: tiny', tenant => 'tiny', notify => false);
SELECT retention.place_hold('subpoena: u1', subject => 'u1', notify => false);
SELECT retention.place_hold('disputed request: u2', subject => 'u2', tbl => :'tbl', notify => false);

-- The baseline: what a DBA would schedule instead of the extension. The same columns as
-- retention.deletion_log (ids from an identity, no hash chain), the same indexes.
CREATE TABLE plain_deletion_log (LIKE retention.deletion_log INCLUDING DEFAULTS INCLUDING INDEXES);
ALTER TABLE plain_deletion_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY,
    ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL;

-- The policy written out by hand, one line per (category, tenant) with its period; the holds
-- are written into the procedure.
CREATE TABLE plain_policy (ord int PRIMARY KEY, category text NOT NULL, rows_sql text NOT NULL,
                           retain_for interval NOT NULL);
INSERT INTO plain_policy VALUES
  (1, 'conversations', '(category IS NULL OR category = ''conversations'') AND tenant NOT IN (''t01'', ''t02'', ''t03'')', '1 year'),
  (2, 'conversations', '(category IS NULL OR category = ''conversations'') AND tenant = ''t01''', '90 days'),
  (3, 'conversations', '(category IS NULL OR category = ''conversations'') AND tenant = ''t02''', '2 years'),
  (4, 'conversations', '(category IS NULL OR category = ''conversations'') AND tenant = ''t03''', '6 months'),
  (5, 'audit_logs', 'category = ''audit_logs''', '7 years'),
  (6, 'attachments', 'category = ''attachments''', '30 days');

-- Batched DELETE … WHERE ctid = ANY(…) RETURNING, logged by the same statement; one
-- transaction per batch; a policy line is done when a batch comes back short.
CREATE PROCEDURE plain_purge(tbl regclass, batch_size int DEFAULT 1000)
LANGUAGE plpgsql AS $proc$
DECLARE
    p record;
    n bigint;
    tname text := (SELECT format('%I.%I', ns.nspname, c.relname) FROM pg_class c
                     JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE c.oid = tbl);
BEGIN
    FOR p IN SELECT * FROM plain_policy ORDER BY ord LOOP
        LOOP
            EXECUTE format($sql$
                WITH due AS (
                    SELECT ctid FROM %1$s
                     WHERE created_at < now() - $1 AND %2$s
                       AND NOT (tenant = 'tiny' OR subject IN ('u1', 'u2'))
                     LIMIT $2 FOR UPDATE SKIP LOCKED),
                gone AS (
                    DELETE FROM %1$s WHERE ctid = ANY(ARRAY(SELECT ctid FROM due))
                    RETURNING id, tenant)
                INSERT INTO plain_deletion_log (logged_at, action, table_name, row_key, tenant,
                                                category, reason, retain_for, actor)
                SELECT now(), 'hard_delete', %3$L, jsonb_build_object('id', id), tenant, $3,
                       'expired', $1, current_user
                  FROM gone$sql$, tbl, p.rows_sql, tname)
            USING p.retain_for, batch_size, p.category;
            GET DIAGNOSTICS n = ROW_COUNT;
            COMMIT;
            EXIT WHEN n < batch_size;
        END LOOP;
    END LOOP;
END
$proc$;

-- For reference only (not a target): the same job written the way the engine now works, with
-- ORDER BY on the clock and each batch resuming at the newest clock value of the previous one
-- (keyset), so that no batch walks again over rows an earlier batch passed.
CREATE PROCEDURE plain_purge_keyset(tbl regclass, batch_size int DEFAULT 1000)
LANGUAGE plpgsql AS $proc$
DECLARE
    p record;
    n bigint;
    newest timestamptz;
    after timestamptz;
    tname text := (SELECT format('%I.%I', ns.nspname, c.relname) FROM pg_class c
                     JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE c.oid = tbl);
BEGIN
    FOR p IN SELECT * FROM plain_policy ORDER BY ord LOOP
        after := '-infinity';
        LOOP
            EXECUTE format($sql$
                WITH due AS (
                    SELECT ctid FROM %1$s
                     WHERE created_at < now() - $1 AND created_at >= $4 AND %2$s
                       AND NOT (tenant = 'tiny' OR subject IN ('u1', 'u2'))
                     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
                gone AS (
                    DELETE FROM %1$s WHERE ctid = ANY(ARRAY(SELECT ctid FROM due))
                    RETURNING id, tenant, created_at),
                logged AS (
                    INSERT INTO plain_deletion_log (logged_at, action, table_name, row_key,
                                                    tenant, category, reason, retain_for, actor)
                    SELECT now(), 'hard_delete', %3$L, jsonb_build_object('id', id), tenant, $3,
                           'expired', $1, current_user
                      FROM gone)
                SELECT count(*), max(created_at) FROM gone$sql$, tbl, p.rows_sql, tname)
            INTO n, newest
            USING p.retain_for, batch_size, p.category, after;
            COMMIT;
            EXIT WHEN n < batch_size;
            after := newest;
        END LOOP;
    END LOOP;
END
$proc$;
