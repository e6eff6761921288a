--
-- pg_retention regression suite, part 4: legal holds, and the records that cannot be
-- rewritten.
--
-- A hold covers every row that matches all of its scopes (tenant, subject, table,
-- category). A row covered by an active hold is never soft-deleted, hard-deleted, anonymized
-- or erased, by any path. Holds are records: never deleted; release and review are stamped.
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

-- Where the deletion log stands before this file (earlier files wrote to it).
SELECT coalesce(max(id), 0) AS log_start FROM retention.deletion_log \gset

-- Every row is past its year.
INSERT INTO conversations (id, tenant, subject, created_at) VALUES
    (1, 'acme',   'alice', now() - interval '400 days'),
    (2, 'acme',   'bob',   now() - interval '400 days'),
    (3, 'globex', 'carol', now() - interval '400 days'),
    (4, 'globex', 'dave',  now() - interval '400 days'),
    (5, 'hooli',  'erin',  now() - interval '400 days');

-- Acme is in litigation: hold all of acme's data. place_hold returns the hold's id.
SELECT retention.place_hold('Litigation: Acme v. Example Corp', tenant => 'acme')
       AS acme_hold \gset
-- Carol's data is subject to a regulator's inquiry that the customer must not be told
-- about: notify => false.
SELECT retention.place_hold('Regulator inquiry 2024-17', subject => 'carol', notify => false)
       AS carol_hold \gset

SELECT id = :acme_hold AS is_acme_hold, reason, tenant, subject, tbl, category, notify,
       released_at IS NULL AS active, placed_by
  FROM retention.holds ORDER BY id;

-- The preview shows what the holds keep back (held_by), and what goes.
SELECT table_name, category, tenant, action, rows,
       CASE held_by WHEN :acme_hold THEN 'acme hold' WHEN :carol_hold THEN 'carol hold' END
           AS held_by
  FROM retention.preview() ORDER BY tenant, held_by;

-- A dry run counts only what is not held.
SELECT * FROM retention.run(dry_run => true);

-- The run leaves held rows alone.
SELECT * FROM retention.run();
SELECT id, tenant, subject FROM conversations ORDER BY id;

-- Placing a hold with notify (the default) wrote a notification (and sent it with
-- pg_notify('retention_hold', ...)); the hold placed with notify => false wrote none.
SELECT channel, hold_id = :acme_hold AS for_acme_hold, payload ->> 'action' AS action,
       payload ->> 'tenant' AS tenant, payload ->> 'reason' AS reason
  FROM retention.notifications ORDER BY id;

-- Counsel reviews the hold: the review is stamped.
SELECT retention.review_hold(:acme_hold, 'Still needed: trial set for next year');
SELECT reviewed_at IS NOT NULL AS reviewed, reviewed_by, review_note
  FROM retention.holds WHERE id = :acme_hold;
-- Active holds not reviewed in 90 days are listed for review: none yet.
SELECT count(*) AS holds_due_for_review FROM retention.holds_due_for_review;

--
-- Releasing a hold: stamped with who, when and a note; notified (when the hold was placed
-- with notify); it records how many rows it frees, and they are due again. (By default they
-- stay out of the extension's purges for a grace period after the release, shown below; this
-- superuser setting makes releases take effect at once.)
--
SET pg_retention.hold_release_grace = 0;
SELECT retention.release_hold(:acme_hold, 'Case settled');
SELECT rows_freed FROM retention.holds WHERE id = :acme_hold;
SELECT released_at IS NOT NULL AS released, released_by, release_note
  FROM retention.holds WHERE id = :acme_hold;
SELECT payload ->> 'action' AS action, payload ->> 'tenant' AS tenant
  FROM retention.notifications WHERE hold_id = :acme_hold ORDER BY id;

SELECT * FROM retention.run();
SELECT id, tenant, subject FROM conversations ORDER BY id;

-- Carol's hold stays until released too; releasing it sends nothing (notify => false).
SELECT retention.release_hold(:carol_hold, 'Inquiry closed');
SELECT rows_freed FROM retention.holds WHERE id = :carol_hold;
SELECT * FROM retention.run();
SELECT count(*) AS conversations_left FROM conversations;
SELECT count(*) AS notifications_for_carol_hold
  FROM retention.notifications WHERE hold_id = :carol_hold;

-- Every row purged, none twice.
SELECT action, row_key, tenant, category, reason
  FROM retention.deletion_log WHERE id > :log_start
 ORDER BY row_key;

--
-- Holds scoped to a table or to a category.
--
INSERT INTO conversations (id, tenant, subject, created_at, category) VALUES
    (11, 'acme',   'alice', now() - interval '400 days', NULL),
    (12, 'globex', 'bob',   now() - interval '400 days', 'raw_audio');
SELECT retention.place_hold('Preservation order: all audio', category => 'raw_audio')
       AS audio_hold \gset
SELECT retention.place_hold('Backup audit', tbl => 'conversations', notify => false)
       AS table_hold \gset
SELECT category, tenant, rows,
       CASE held_by WHEN :audio_hold THEN 'audio hold' WHEN :table_hold THEN 'table hold' END
           AS held_by
  FROM retention.preview() ORDER BY category, tenant;
SELECT * FROM retention.run();
SELECT retention.release_hold(:audio_hold, 'Order lifted');
SELECT rows_freed FROM retention.holds WHERE id = :audio_hold;
-- Row 12 is still kept by the table hold.
SELECT * FROM retention.run();

--
-- Safe release. A release does not unleash an immediate purge of everything the hold kept:
-- the rows it frees stay out of the extension's purges, customer deletions and erasures for
-- pg_retention.hold_release_grace after it (default 7 days), stamped on the hold. A hold
-- placed again within the grace keeps them all. The application's own statements are no
-- longer refused: the hold is lifted.
--
RESET pg_retention.hold_release_grace;
SHOW pg_retention.hold_release_grace;
SELECT retention.release_hold(:table_hold, 'Audit done');
SELECT grace_until - released_at AS grace, rows_freed FROM retention.holds WHERE id = :table_hold;
SELECT * FROM retention.run();
SELECT id, category FROM conversations ORDER BY id;
-- preview() shows them under the released hold until its horizon reaches the end of the
-- grace, when they are due.
SELECT category, rows, held_by = :table_hold AS by_table_hold
  FROM retention.preview() ORDER BY category;
SELECT category, rows, held_by FROM retention.preview('8 days') ORDER BY category;

--
-- Bad input.
--

-- A hold with no scope at all is an error: a hold on everything must say so.
SELECT retention.place_hold('Everything, just in case');
\echo :LAST_ERROR_SQLSTATE
-- A hold needs a reason.
SELECT retention.place_hold('', tenant => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.place_hold(NULL, tenant => 'acme');
\echo :LAST_ERROR_SQLSTATE
-- An unknown category scope.
SELECT retention.place_hold('Typo', category => 'raw_audi0');
\echo :LAST_ERROR_SQLSTATE
-- Releasing an unknown hold: 42704; releasing one twice: 55000.
SELECT retention.release_hold(999999, 'No such hold');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release_hold(:acme_hold, 'Again');
\echo :LAST_ERROR_SQLSTATE
-- A released hold is no longer reviewed.
SELECT retention.review_hold(:acme_hold, 'Late review');
\echo :LAST_ERROR_SQLSTATE
-- None of these placed a hold.
SELECT count(*) AS holds FROM retention.holds;

--
-- The deletion log is append-only, for every role (the superuser included, and also with
-- session_replication_role = replica): 42501 (insufficient_privilege).
--
UPDATE retention.deletion_log SET reason = 'tidied up';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.deletion_log;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE retention.deletion_log;
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
DELETE FROM retention.deletion_log;
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;

--
-- Holds are records: they are never deleted, and only their release and review are stamped.
--
UPDATE retention.holds SET reason = 'Something else' WHERE id = :acme_hold;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.holds SET release_note = 'Rewritten' WHERE id = :acme_hold;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.holds WHERE id = :acme_hold;
\echo :LAST_ERROR_SQLSTATE
-- TRUNCATE is refused too: first by the foreign key from retention.notifications (0A000),
-- and with CASCADE by the guard (42501).
TRUNCATE retention.holds;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE retention.holds CASCADE;
\echo :LAST_ERROR_SQLSTATE

-- The records are unchanged, and the log's hash chain is intact.
SELECT reason, tenant, subject, category, notify, released_at IS NOT NULL AS released,
       release_note
  FROM retention.holds ORDER BY id;
SELECT retention.verify_log() IS NULL AS log_intact;

-- Clean up for the next files (holds stay: they are records; all are released).
DROP TABLE conversations;
SELECT count(*) AS active_holds FROM retention.holds WHERE released_at IS NULL;
