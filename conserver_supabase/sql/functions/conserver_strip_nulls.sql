-- conserver_strip_nulls(jsonb) -> jsonb
--
-- An object without its null-valued top-level keys (nested values are left alone).

CREATE OR REPLACE FUNCTION conserver_strip_nulls(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
      FROM jsonb_each(v)
     WHERE jsonb_typeof(value) <> 'null'
$fn$;

-- Privileges: EXECUTE revoked from PUBLIC and anon, granted to service_role. As released
-- in 0.1.0, authenticated is left alone (it keeps what Supabase's default privileges give
-- it); only the conserver_vcon_* functions are closed to it.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_strip_nulls(jsonb)', ARRAY['anon']);
