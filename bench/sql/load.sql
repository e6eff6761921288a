-- Creates :tbl and loads :rows rows into it (psql -v tbl=… -v rows=… -v anchor=… -v layout=…).
--
-- Deterministic: two loads with the same :rows and :anchor are identical.
--   created_at  spread over the 730 days before :anchor, oldest id first (the heap is in
--               clock order, as in an append-mostly table); about half of the rows are older
--               than a year. Each day's rows lie in the 12 hours from 18 h to 6 h before the
--               anchor's time of day: the 12 hours around it stay empty, so a policy cutoff
--               (now() - N days/months/years) crosses no row during the 6 hours after the load,
--               and every contender purges exactly the same rows.
--               With layout=uncorrelated the day is id % 730 instead: the clock is not
--               correlated with the heap (rows of every age on every page).
--   tenant      'tiny' for 0.5% of rows, else t00..t18 (about 5.2% each)
--   subject     u0..u399 (0.25% each)
--   category    NULL (the table's default, conversations) for 95%; audit_logs 3%; attachments 2%
--   body        160 bytes of text
CREATE TABLE :tbl (
    id         bigint NOT NULL,
    tenant     text NOT NULL,
    subject    text NOT NULL,
    created_at timestamptz NOT NULL,
    category   text,
    body       text
) WITH (autovacuum_enabled = off);

INSERT INTO :tbl (id, tenant, subject, created_at, category, body)
SELECT i,
       CASE WHEN h < 5 THEN 'tiny' ELSE 't' || lpad((h % 19)::text, 2, '0') END,
       'u' || (abs(hashint8(-i)) % 400),
       :'anchor'::timestamptz - interval '6 hours'
         - floor(x) * interval '1 day' - (x - floor(x)) * interval '12 hours',
       CASE WHEN i % 100 < 3 THEN 'audit_logs' WHEN i % 100 IN (50, 51) THEN 'attachments' END,
       repeat(md5(i::text), 5)
  FROM generate_series(1, :rows) AS i,
       LATERAL (SELECT abs(hashint8(i)) % 1000 AS h,
                       CASE WHEN :'layout' = 'uncorrelated'
                            THEN (i % 730) + (abs(hashint8(i * 7)) % 1000)::float8 / 1000
                            ELSE (:rows - i)::float8 * 730 / :rows END AS x) AS v;
