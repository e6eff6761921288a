--
-- pg_retention regression suite, part 7: zero retention for identifiers inside text.
--
-- retention.redact() puts a row trigger on a table that rewrites the identifiers its detectors
-- find in chosen text, varchar or jsonb columns *before* the row is stored: they never reach
-- the table, its WAL or its backups. Each replacement is counted (never what was replaced).
--
\set SHOW_CONTEXT never

CREATE TABLE transcripts (
    id    integer PRIMARY KEY,
    body  text,
    meta  jsonb
);
SELECT retention.redact('transcripts', '{body,meta}',
                        detectors => '{card,email,phone,iban,ssn}');
SELECT tbl, column_name, detectors, replacement FROM retention.redactions ORDER BY column_name;

--
-- The corpus: for each detector, text it must redact and text it must keep.
--
CREATE TEMP TABLE corpus (id serial, detector text, sample text, expected text);
INSERT INTO corpus (detector, sample, expected) VALUES
    -- Payment cards: 13–19 digits, Luhn-valid, a known issuer range, whole.
    ('card', 'Visa 4111 1111 1111 1111 ok',           'Visa [redacted:card] ok'),
    ('card', 'MC 5555-5555-5555-4444.',               'MC [redacted:card].'),
    ('card', 'Amex 378282246310005',                  'Amex [redacted:card]'),
    ('card', 'fails Luhn 4111 1111 1111 1112',        'fails Luhn 4111 1111 1111 1112'),
    ('card', 'no issuer 1234567812345670',            'no issuer 1234567812345670'),
    ('card', 'tracking 94001118992231234567',         'tracking 94001118992231234567'),
    -- E-mail addresses: a dotted domain with a letter TLD.
    ('email', 'write to jane.doe+cs@mail.example.com', 'write to [redacted:email]'),
    ('email', 'handle @jane, host user@localhost',     'handle @jane, host user@localhost'),
    -- Phones: international, North American, national with a trunk 0, in groups.
    ('phone', 'call +44 20 7946 0958',                'call [redacted:phone]'),
    ('phone', 'call (415) 555-2671 today',            'call [redacted:phone] today'),
    ('phone', 'mobile 06 12 34 56 78',                'mobile [redacted:phone]'),
    ('phone', 'on 2024-01-15 at 12:30',               'on 2024-01-15 at 12:30'),
    ('phone', 'order ORD-2024-000123, 15.01.2024',    'order ORD-2024-000123, 15.01.2024'),
    ('phone', 'invoice 4155552671',                   'invoice 4155552671'),
    -- IBANs: a country's length, mod-97.
    ('iban', 'IBAN DE89 3704 0044 0532 0130 00',      'IBAN [redacted:iban]'),
    ('iban', 'IBAN GB82WEST12345698765432',           'IBAN [redacted:iban]'),
    ('iban', 'bad check DE89 3704 0044 0532 0130 01', 'bad check DE89 3704 0044 0532 0130 01'),
    -- US SSNs: AAA-GG-SSSS in issued ranges.
    ('ssn', 'SSN 123-45-6789',                        'SSN [redacted:ssn]'),
    ('ssn', 'never issued 666-12-3456, 000-12-3456',  'never issued 666-12-3456, 000-12-3456'),
    ('ssn', 'nine digits 123456789',                  'nine digits 123456789');

INSERT INTO transcripts (id, body) SELECT id, sample FROM corpus;
SELECT c.detector, c.sample, t.body, t.body = c.expected AS as_expected
  FROM corpus c JOIN transcripts t USING (id) ORDER BY c.id;

--
-- NULLs stay NULL; in jsonb, every string is examined, at any depth (keys and numbers are not).
--
INSERT INTO transcripts VALUES
    (100, NULL, NULL),
    (101, 'clean', '{"caller": {"phone": "+1 415 555 2671", "tags": ["vip", "a@b.io"]},
                     "a@b.io": 4111111111111111}');
SELECT id, body, meta FROM transcripts WHERE id >= 100 ORDER BY id;

--
-- An UPDATE cannot bring an identifier back.
--
UPDATE transcripts SET body = body || ', new card 4111111111111111' WHERE id = 101;
SELECT body FROM transcripts WHERE id = 101;

--
-- COPY FROM goes through the same trigger.
--
COPY transcripts (id, body) FROM stdin;
200	copied: reach me at ops@example.org or +33 6 12 34 56 78
\.
SELECT body FROM transcripts WHERE id = 200;

--
-- A custom detector is a PostgreSQL regular expression, checked when it is defined.
--
SELECT retention.redact('transcripts', '{body}', '{email,custom}', '<%s>',
                        pattern => 'ORD-[0-9]{4}-[0-9]+');
INSERT INTO transcripts (id, body) VALUES (300, 'order ORD-2024-000123 for ops@example.org');
SELECT body FROM transcripts WHERE id = 300;
SELECT retention.redact('transcripts', '{body}', '{custom}', pattern => '(unclosed');
SELECT retention.redact('transcripts', '{body}', '{custom}', pattern => '[0-9]*');

--
-- The counts: per day, table, column and detector. An auditor sees the control working
-- without seeing what it removed.
--
SELECT table_name, column_name, detector, sum(redactions) AS redactions
  FROM retention.redaction_counts GROUP BY 1, 2, 3 ORDER BY 2, 3;

--
-- Bad input has specific SQLSTATEs.
--
\set VERBOSITY sqlstate
SELECT retention.redact('transcripts', '{body}', '{passport}');
SELECT retention.redact('transcripts', '{id}');
SELECT retention.redact('transcripts', '{nosuch}');
SELECT retention.unredact('corpus');
\set VERBOSITY default

--
-- The redacted columns and the triggers stay while the table is redacted.
--
ALTER TABLE transcripts DROP COLUMN body;
DROP TRIGGER zz_retention_redact ON transcripts;

SELECT retention.unredact('transcripts');
SELECT count(*) AS redaction_triggers FROM pg_trigger WHERE tgrelid = 'transcripts'::regclass;
DROP TABLE transcripts;
SELECT count(*) AS counts_kept FROM retention.redaction_counts;
