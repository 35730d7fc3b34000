-- conserver_vcon_exists(uuid): whether a vCon exists, without reading it.
-- Used by SupabaseStorage.exists on a cache miss: one cheap round trip.

CREATE OR REPLACE FUNCTION conserver_vcon_exists(p_uuid uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT EXISTS (SELECT FROM vcons WHERE uuid = p_uuid)
$fn$;

DO $grants$
BEGIN
    REVOKE ALL ON FUNCTION conserver_vcon_exists(uuid) FROM PUBLIC;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION conserver_vcon_exists(uuid) FROM anon;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION conserver_vcon_exists(uuid) TO service_role;
    END IF;
END
$grants$;
