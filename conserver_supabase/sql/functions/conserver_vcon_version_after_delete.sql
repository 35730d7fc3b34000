-- conserver_vcon_version_after_delete() -> trigger
--
-- Trigger (BEFORE INSERT on conserver_vcon_documents): a new document row (a vCon saved
-- for the first time, or again after a delete) starts after the vCon's tombstone, if it
-- has one, so every save committed after a delete has a higher version than the delete.
-- A row inserted with a document is a save at that version (document_version); a head
-- row (document NULL, conserver_vcon_rows_changed) has none.

CREATE OR REPLACE FUNCTION conserver_vcon_version_after_delete()
RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    NEW.version := coalesce(
        (SELECT t.version FROM conserver_vcon_tombstones t WHERE t.uuid = NEW.uuid), 0) + 1;
    NEW.document_version := CASE WHEN NEW.document IS NOT NULL THEN NEW.version END;
    RETURN NEW;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_version_after_delete()');
