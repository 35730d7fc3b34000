-- conserver_vcon_read(uuid) -> jsonb
--
-- One vCon with its version, as our reads take it: {"version": n, "text": "<the exact
-- JSON text it was saved as>"} when the stored document is current and has its text
-- (migration 0006: key order, number spelling and escapes as given), otherwise what
-- conserver_vcon_fetch returns ({"version": n, "vcon": {...}}: a document saved
-- without its text, a vCon merged with another writer's changes, or one only other
-- writers wrote); NULL when there is no vCon. The text travels as a JSON string, so no
-- JSON layer on the way (PostgREST, a driver) can reorder or respell it.

CREATE OR REPLACE FUNCTION conserver_vcon_read(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(
        (SELECT jsonb_build_object('version', doc.version, 'text', doc.document_text)
           FROM conserver_vcon_documents doc
          WHERE doc.uuid = p_uuid
            AND doc.version = doc.document_version
            AND doc.document_text IS NOT NULL),
        conserver_vcon_fetch(p_uuid))
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_read(uuid)');
