-- conserver_int_array(jsonb) -> integer[]
--
-- A JSON index or array of indexes as integer[] (a scalar n becomes {n}).

CREATE OR REPLACE FUNCTION conserver_int_array(v jsonb)
RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'array' THEN ARRAY(SELECT e::integer FROM jsonb_array_elements_text(v) AS e)
        WHEN 'number' THEN ARRAY[(v #>> '{}')::integer]
        ELSE NULL
    END
$fn$;

-- Privileges: EXECUTE revoked from PUBLIC and anon, granted to service_role. As released
-- in 0.1.0, authenticated is left alone (it keeps what Supabase's default privileges give
-- it); only the conserver_vcon_* functions are closed to it.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_int_array(jsonb)', ARRAY['anon']);
