-- conserver_vcon_load_many(jsonb) -> jsonb
--
-- Many vCons (a JSON array of uuid strings): {"<uuid>": document, ...} with the vCons
-- that exist; missing ones are simply absent. conserver_vcon_fetch_many without the
-- versions.

CREATE OR REPLACE FUNCTION conserver_vcon_load_many(p_uuids jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(found.key, found.value -> 'vcon'), '{}'::jsonb)
      FROM jsonb_each(conserver_vcon_fetch_many(p_uuids)) AS found
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_load_many(jsonb)');
