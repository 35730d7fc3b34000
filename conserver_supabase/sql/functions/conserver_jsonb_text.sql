-- conserver_jsonb_text(jsonb) -> text
--
-- A JSON value as the text vcon-mcp stores: strings verbatim, anything else as JSON text
-- (NULL for JSON null).

CREATE OR REPLACE FUNCTION conserver_jsonb_text(v jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN v #>> '{}'
        WHEN 'null' THEN NULL
        ELSE v::text
    END
$fn$;

-- Privileges: EXECUTE revoked from PUBLIC and anon, granted to service_role. As released
-- in 0.1.0, authenticated is left alone (it keeps what Supabase's default privileges give
-- it); only the conserver_vcon_* functions are closed to it.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_jsonb_text(jsonb)', ARRAY['anon']);
