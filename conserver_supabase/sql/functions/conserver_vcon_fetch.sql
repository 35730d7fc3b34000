-- conserver_vcon_fetch(uuid) -> jsonb
--
-- Like conserver_vcon_load, with the stored version next to the vCon: {"version": n,
-- "vcon": {...}}, version 0 for a vCon another writer created (it has no document row);
-- NULL when there is no vCon. The Redis cache uses the version so that a read from
-- before a save never replaces what that save cached.

CREATE OR REPLACE FUNCTION conserver_vcon_fetch(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(
        (SELECT jsonb_build_object('version', doc.version, 'vcon', doc.document)
           FROM conserver_vcon_documents doc
          WHERE doc.uuid = p_uuid),
        (SELECT jsonb_build_object('version', 0, 'vcon', assembled.vcon)
           FROM (SELECT conserver_vcon_assemble(p_uuid) AS vcon) AS assembled
          WHERE assembled.vcon IS NOT NULL))
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_fetch(uuid)');
