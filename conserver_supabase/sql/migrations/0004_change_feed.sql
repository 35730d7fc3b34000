-- conserver-supabase migration 0004: the change log, and documents that follow the rows
-- (issue 16, first increment; docs/database.md, "Other writers").
--
-- Every committed change of a vCon is recorded, whoever makes it:
--   * conserver_vcon_documents.version is the vCon's head version: our saves raise it
--     (conserver_vcon_write) and so does any other writer's change of its rows (the
--     statement triggers below, conserver_vcon_rows_changed). document_version is the
--     version at which `document` was written by us: version > document_version means
--     the rows changed since our last save, and the reads return the vCon as the rows now
--     say (conserver_vcon_fetch, conserver_vcon_merge). A vCon only other writers wrote
--     gets a "head" row (document NULL) on its first change after this migration.
--   * conserver_vcon_changes gets one row per change of a document row (a save, a
--     foreign change, a delete): conserver_vcon_record_change, the log's single writer.
--
-- Existing document rows: document_version = version (the document is current). vCons
-- other writers created before this migration get no head row until they change again.
--
-- Idempotent: safe to run again.

ALTER TABLE conserver_vcon_documents
    ALTER COLUMN document DROP NOT NULL,
    ALTER COLUMN content_hash DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS document_version bigint;
UPDATE conserver_vcon_documents SET document_version = version
 WHERE document_version IS NULL AND document IS NOT NULL;

COMMENT ON COLUMN conserver_vcon_documents.document IS
    'conserver-supabase: the exact vCon JSON of our last save; NULL for a vCon only other writers wrote';
COMMENT ON COLUMN conserver_vcon_documents.document_version IS
    'conserver-supabase: the version at which document was saved; version > document_version: the rows changed since';

CREATE TABLE IF NOT EXISTS conserver_vcon_changes (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    vcon_uuid uuid NOT NULL,
    version   bigint NOT NULL,
    op        text NOT NULL CHECK (op IN ('save', 'rows', 'delete')),
    at        timestamptz NOT NULL DEFAULT now(),
    source    text
);
ALTER TABLE conserver_vcon_changes ENABLE ROW LEVEL SECURITY;
CREATE INDEX IF NOT EXISTS conserver_vcon_changes_xid ON conserver_vcon_changes (xid, seq);

COMMENT ON TABLE conserver_vcon_changes IS
    'conserver-supabase: one row per committed change of a vCon (save, rows changed by another writer, delete), with its head version';

-- Privileges: service_role (and the owner) only; RLS is on and has no policy (the uuids
-- of every tenant are here). The triggers write it as their owner (SECURITY DEFINER).
CALL pg_temp.conserver_restrict_to_service_role('TABLE conserver_vcon_changes');

-- The log's single writer: every insert, version change and delete of a document row.
DROP TRIGGER IF EXISTS conserver_vcon_record_change ON conserver_vcon_documents;
CREATE TRIGGER conserver_vcon_record_change
    AFTER INSERT OR UPDATE OF version OR DELETE ON conserver_vcon_documents
    FOR EACH ROW EXECUTE FUNCTION conserver_vcon_record_change();

-- Other writers' changes of the rows: three statement triggers per table (a trigger with
-- transition tables takes one event only), skipped inside conserver_vcon_write (it sets
-- conserver_supabase.writing for its own duration). The argument names the uuid column.
DO $feed$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['vcons', 'uuid'], ['parties', 'vcon_id'], ['dialog', 'vcon_id'],
        ['analysis', 'vcon_id'], ['attachments', 'vcon_id']
    ] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS conserver_vcon_feed_insert ON %I', spec[1]);
        EXECUTE format('DROP TRIGGER IF EXISTS conserver_vcon_feed_update ON %I', spec[1]);
        EXECUTE format('DROP TRIGGER IF EXISTS conserver_vcon_feed_delete ON %I', spec[1]);
        EXECUTE format(
            'CREATE TRIGGER conserver_vcon_feed_insert AFTER INSERT ON %I '
            'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
            'WHEN (coalesce(current_setting(''conserver_supabase.writing'', true), '''') <> ''on'') '
            'EXECUTE FUNCTION conserver_vcon_rows_changed(%L)', spec[1], spec[2]);
        EXECUTE format(
            'CREATE TRIGGER conserver_vcon_feed_update AFTER UPDATE ON %I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
            'WHEN (coalesce(current_setting(''conserver_supabase.writing'', true), '''') <> ''on'') '
            'EXECUTE FUNCTION conserver_vcon_rows_changed(%L)', spec[1], spec[2]);
        EXECUTE format(
            'CREATE TRIGGER conserver_vcon_feed_delete AFTER DELETE ON %I '
            'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
            'WHEN (coalesce(current_setting(''conserver_supabase.writing'', true), '''') <> ''on'') '
            'EXECUTE FUNCTION conserver_vcon_rows_changed(%L)', spec[1], spec[2]);
    END LOOP;
END
$feed$;
