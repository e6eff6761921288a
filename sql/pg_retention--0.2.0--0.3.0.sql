-- pg_retention 0.2.0 → 0.3.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

-- Statements against an application table run as the table's owner (see the README's trust
-- model), who has no rights on retention's tables. An anonymizing batch asks this function
-- whether a row already carries its anonymized values. It answers that question only: it
-- reveals no row, and a caller must already know a key and its anonymized values to ask.
CREATE FUNCTION retention.is_anonymized(tbl regclass, row_key jsonb, fingerprint text)
RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM retention.anonymized_rows a
                    WHERE a.tbl = $1 AND a.row_key = $2
                      AND (a.fingerprint IS NULL OR a.fingerprint = $3))
$$;
COMMENT ON FUNCTION retention.is_anonymized(regclass, jsonb, text) IS
    'Whether row row_key of tbl is marked anonymized with these values (fingerprint); marks from 0.1.0 carry none and always match. Called by anonymizing batches, which run as the table''s owner.';
REVOKE ALL ON FUNCTION retention.is_anonymized(regclass, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.is_anonymized(regclass, jsonb, text) TO PUBLIC;
GRANT USAGE ON SCHEMA retention TO PUBLIC;
