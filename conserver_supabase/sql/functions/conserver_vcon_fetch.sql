-- conserver_vcon_fetch(uuid) -> jsonb
--
-- Like conserver_vcon_load, with the stored version next to the vCon: {"version": n,
-- "vcon": {...}}; NULL when there is no vCon. The Redis cache uses the version so that a
-- read from before a save never replaces what that save cached.
--
-- The vCon is our stored document when no other writer changed its rows since our last
-- save (version = document_version: one index probe, as before the change feed);
-- otherwise the rows merged into it (conserver_vcon_merge, docs/database.md), or the rows
-- alone for a vCon only other writers wrote (a head row, document NULL), at the head
-- version. A vCon other writers created before migration 0004 and never changed since
-- has no document row: its rows, at version 0.

CREATE OR REPLACE FUNCTION conserver_vcon_fetch(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(
        (SELECT CASE
                    WHEN doc.version = doc.document_version AND doc.document IS NOT NULL
                        THEN jsonb_build_object('version', doc.version, 'vcon', doc.document)
                    ELSE (SELECT jsonb_build_object(
                                     'version', doc.version,
                                     'vcon', CASE WHEN doc.document IS NULL THEN assembled.vcon
                                                  ELSE conserver_vcon_merge(doc.document, assembled.vcon,
                                                                            doc.updated_at) END)
                            FROM (SELECT conserver_vcon_assemble(p_uuid) AS vcon) AS assembled
                           WHERE assembled.vcon IS NOT NULL)
                END
           FROM conserver_vcon_documents doc
          WHERE doc.uuid = p_uuid),
        (SELECT jsonb_build_object('version', 0, 'vcon', assembled.vcon)
           FROM (SELECT conserver_vcon_assemble(p_uuid) AS vcon) AS assembled
          WHERE assembled.vcon IS NOT NULL))
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_fetch(uuid)');
