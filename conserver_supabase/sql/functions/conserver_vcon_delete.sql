-- conserver_vcon_delete(uuid) -> boolean
--
-- Deletes one vCon (document and rows, by cascade); returns whether it existed. The
-- 0.1.0 API, kept for its callers: the storage calls conserver_vcon_remove, which also
-- returns the delete's version.

CREATE OR REPLACE FUNCTION conserver_vcon_delete(p_uuid uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    DELETE FROM vcons WHERE uuid = p_uuid;
    RETURN FOUND;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_delete(uuid)');
