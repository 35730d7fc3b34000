-- conserver_vcon_load_many(jsonb) -> jsonb
--
-- Many vCons (a JSON array of uuid strings): {"<uuid>": document, ...} with the vCons
-- that exist; missing ones are simply absent.

CREATE OR REPLACE FUNCTION conserver_vcon_load_many(p_uuids jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(wanted.uuid::text, found.document), '{}'::jsonb)
      FROM (SELECT DISTINCT e::uuid AS uuid FROM jsonb_array_elements_text(p_uuids) AS e) AS wanted
      CROSS JOIN LATERAL (SELECT conserver_vcon_load(wanted.uuid) AS document) AS found
     WHERE found.document IS NOT NULL
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_load_many(jsonb)');
