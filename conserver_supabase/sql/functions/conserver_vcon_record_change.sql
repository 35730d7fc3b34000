-- conserver_vcon_record_change() -> trigger
--
-- Trigger (AFTER INSERT OR UPDATE OF version OR DELETE on conserver_vcon_documents): the
-- change log's single writer. Every save (conserver_vcon_write), every change of the rows
-- by another writer (conserver_vcon_rows_changed raises the head version) and every
-- delete of a document row, whoever deletes, appends one row to conserver_vcon_changes in
-- the same transaction: op 'save' when the document was written at the new version,
-- 'rows' when only the rows changed, 'delete' with the delete's version (OLD.version + 1,
-- the number conserver_vcon_tombstone_on_delete records).
--
-- SECURITY DEFINER, as the tombstone trigger: vcon-mcp writes and deletes as
-- `authenticated`, which has no privilege on the change log. It only records the row's
-- uuid and version; a trigger function cannot be called directly.

CREATE OR REPLACE FUNCTION conserver_vcon_record_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO conserver_vcon_changes (vcon_uuid, version, op, source)
        VALUES (OLD.uuid, OLD.version + 1, 'delete', session_user);
        RETURN OLD;
    END IF;
    INSERT INTO conserver_vcon_changes (vcon_uuid, version, op, source)
    VALUES (NEW.uuid, NEW.version,
            CASE WHEN NEW.document_version = NEW.version THEN 'save' ELSE 'rows' END,
            session_user);
    RETURN NEW;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_record_change()');
