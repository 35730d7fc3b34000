-- conserver_vcon_exists(uuid): whether a vCon exists, without reading it.
-- conserver_vcon_fetch(uuid) / conserver_vcon_fetch_many(jsonb): like _load/_load_many,
-- with the stored version next to each vCon ({"version": n, "vcon": {...}}; version 0
-- for a vCon another writer created, which has no document row). The Redis cache uses
-- the version so that a read from before a save never replaces what that save cached.

CREATE OR REPLACE FUNCTION conserver_vcon_exists(p_uuid uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT EXISTS (SELECT FROM vcons WHERE uuid = p_uuid)
$fn$;

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

CREATE OR REPLACE FUNCTION conserver_vcon_fetch_many(p_uuids jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(wanted.uuid::text, found.entry), '{}'::jsonb)
      FROM (SELECT DISTINCT e::uuid AS uuid FROM jsonb_array_elements_text(p_uuids) AS e) AS wanted
      CROSS JOIN LATERAL (SELECT conserver_vcon_fetch(wanted.uuid) AS entry) AS found
     WHERE found.entry IS NOT NULL
$fn$;

-- Same privileges as the functions of 0002.
DO $grants$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'conserver_vcon_exists(uuid)', 'conserver_vcon_fetch(uuid)',
        'conserver_vcon_fetch_many(jsonb)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon', fn);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;
END
$grants$;
