-- conserver_vcon_tombstone_on_delete() -> trigger
--
-- Trigger (AFTER DELETE on conserver_vcon_documents): whatever deletes a document row
-- (conserver_vcon_remove, the older conserver_vcon_delete, vcon-mcp deleting the vcons
-- row, a manual DELETE) leaves the tombstone, so a vCon saved again never starts below a
-- version the cache has seen.
--
-- SECURITY DEFINER, the one exception: vcon-mcp deletes as `authenticated`, which has no
-- privilege on the tombstone table, and up to PostgreSQL 16 the cascade runs this
-- trigger as that role (measured on 15: "permission denied"), which would make
-- vcon-mcp's deletes fail. It only records OLD.uuid's version; a trigger function cannot
-- be called directly.

CREATE OR REPLACE FUNCTION conserver_vcon_tombstone_on_delete()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    INSERT INTO conserver_vcon_tombstones AS t (uuid, version)
    VALUES (OLD.uuid, OLD.version + 1)
    ON CONFLICT (uuid) DO UPDATE
        SET version = greatest(t.version, EXCLUDED.version), deleted_at = now();
    RETURN OLD;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_tombstone_on_delete()');
