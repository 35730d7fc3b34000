-- conserver_vcon_load(uuid) -> jsonb
--
-- One vCon: the stored document, else the vCon reassembled from rows, else NULL.
-- conserver_vcon_fetch without the version.

CREATE OR REPLACE FUNCTION conserver_vcon_load(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT conserver_vcon_fetch(p_uuid) -> 'vcon'
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_load(uuid)');
