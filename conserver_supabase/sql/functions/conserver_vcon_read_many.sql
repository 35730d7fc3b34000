-- conserver_vcon_read_many(jsonb) -> jsonb
--
-- conserver_vcon_read for many vCons (a JSON array of uuid strings): {"<uuid>": entry,
-- ...} for the vCons that exist.

CREATE OR REPLACE FUNCTION conserver_vcon_read_many(p_uuids jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(wanted.uuid::text, found.entry), '{}'::jsonb)
      FROM (SELECT DISTINCT e::uuid AS uuid FROM jsonb_array_elements_text(p_uuids) AS e) AS wanted
      CROSS JOIN LATERAL (SELECT conserver_vcon_read(wanted.uuid) AS entry) AS found
     WHERE found.entry IS NOT NULL
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_read_many(jsonb)');
