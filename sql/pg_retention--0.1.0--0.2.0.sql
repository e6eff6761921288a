-- pg_retention 0.1.0 → 0.2.0 (ALTER EXTENSION pg_retention UPDATE).
\echo Use "ALTER EXTENSION pg_retention UPDATE" to load this file. \quit

-- Roles without rights on retention can drop their own objects again: the sql_drop event
-- trigger's function runs with its owner's rights (it removes only rows of dropped tables).
CREATE OR REPLACE FUNCTION retention.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM retention.managed_tables m
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND d.objid = m.tbl::oid;
END
$$;
