-- conserver_vcon_remove(uuid) -> bigint
--
-- Deletes one vCon (document and rows, by cascade) and returns the delete's version: the
-- vCon's last version + 1, kept in conserver_vcon_tombstones. When the vCon did not
-- exist: minus the version of its last delete (so a retried delete still tells the cache
-- which version is gone), or 0 when it never had one; nothing is written then. It takes
-- the per-uuid advisory lock conserver_vcon_save takes, so the order of versions is the
-- order of commits. Tombstones older than 30 days are pruned here (a cache entry lives
-- cache_ttl, far less).

CREATE OR REPLACE FUNCTION conserver_vcon_remove(p_uuid uuid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_version bigint;
BEGIN
    -- The lock conserver_vcon_save takes first: saves and deletes of one uuid run one
    -- after the other, and the version read next (a new snapshot) is the last committed.
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || p_uuid::text, 0));
    PERFORM FROM vcons WHERE uuid = p_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -coalesce(
            (SELECT t.version FROM conserver_vcon_tombstones t WHERE t.uuid = p_uuid), 0);
    END IF;
    SELECT greatest(
               coalesce((SELECT doc.version FROM conserver_vcon_documents doc
                          WHERE doc.uuid = p_uuid), 0),
               coalesce((SELECT t.version FROM conserver_vcon_tombstones t
                          WHERE t.uuid = p_uuid), 0)) + 1
      INTO v_version;
    DELETE FROM vcons WHERE uuid = p_uuid;
    INSERT INTO conserver_vcon_tombstones AS t (uuid, version)
    VALUES (p_uuid, v_version)
    ON CONFLICT (uuid) DO UPDATE
        SET version = greatest(t.version, EXCLUDED.version), deleted_at = now();
    DELETE FROM conserver_vcon_tombstones WHERE deleted_at < now() - interval '30 days';
    RETURN v_version;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_remove(uuid)');
