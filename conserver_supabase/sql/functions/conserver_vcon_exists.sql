-- conserver_vcon_exists(uuid) -> boolean
--
-- Whether a vCon exists, without reading it.

CREATE OR REPLACE FUNCTION conserver_vcon_exists(p_uuid uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT EXISTS (SELECT FROM vcons WHERE uuid = p_uuid)
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_exists(uuid)');
