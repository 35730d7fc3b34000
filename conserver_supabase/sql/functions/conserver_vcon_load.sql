-- conserver_vcon_load(uuid) -> jsonb
--
-- One vCon: the stored document, else the vCon reassembled from rows, else NULL.

CREATE OR REPLACE FUNCTION conserver_vcon_load(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(
        (SELECT doc.document FROM conserver_vcon_documents doc WHERE doc.uuid = p_uuid),
        conserver_vcon_assemble(p_uuid))
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_load(uuid)');
