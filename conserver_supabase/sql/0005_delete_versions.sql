-- conserver-supabase migration 0005: versions that keep growing across a delete.
--
-- The Redis cache orders what it is told by version: a save or a read older than what
-- the cache knows never replaces it. Before 0005 a delete had no version, so the cache
-- had to guess for how long to refuse everything (a 60 s tombstone), and a vCon created
-- again soon after a delete went uncached. From 0005:
--
-- * conserver_vcon_remove(uuid) deletes like conserver_vcon_delete and returns the
--   delete's version: the vCon's last version + 1 (0 when there was nothing to delete).
--   It is kept in conserver_vcon_tombstones (uuid, version, deleted_at);
-- * a vCon saved again after a delete continues from there (trigger on
--   conserver_vcon_documents), so every save committed after the delete has a higher
--   version than the delete, and every save committed before it a lower one.
--
-- conserver_vcon_remove takes the per-uuid advisory lock conserver_vcon_save takes, so
-- the order of versions is the order of commits. Tombstones older than 30 days are pruned by the
-- deletes themselves (a cache entry lives cache_ttl, far less).
--
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS conserver_vcon_tombstones (
    uuid       uuid PRIMARY KEY,
    version    bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE conserver_vcon_tombstones ENABLE ROW LEVEL SECURITY;
CREATE INDEX IF NOT EXISTS conserver_vcon_tombstones_deleted_at
    ON conserver_vcon_tombstones (deleted_at);

COMMENT ON TABLE conserver_vcon_tombstones IS
    'conserver-supabase: the version of each vCon deleted in the last 30 days, so a vCon saved again continues from it';

-- A new document row (a vCon saved for the first time, or again after a delete)
-- starts after the vCon's tombstone, if it has one.
CREATE OR REPLACE FUNCTION conserver_vcon_version_after_delete()
RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    NEW.version := coalesce(
        (SELECT t.version FROM conserver_vcon_tombstones t WHERE t.uuid = NEW.uuid), 0) + 1;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS conserver_vcon_version_after_delete ON conserver_vcon_documents;
CREATE TRIGGER conserver_vcon_version_after_delete
    BEFORE INSERT ON conserver_vcon_documents
    FOR EACH ROW EXECUTE FUNCTION conserver_vcon_version_after_delete();

-- Whatever deletes a document row (conserver_vcon_remove, the older
-- conserver_vcon_delete, vcon-mcp deleting the vcons row, a manual DELETE) leaves the
-- tombstone, so a vCon saved again never starts below a version the cache has seen.
-- SECURITY DEFINER, the one exception: vcon-mcp deletes as `authenticated`, which has no
-- privilege on the tombstone table, and up to PostgreSQL 16 the cascade runs this
-- trigger as that role (measured on 15: "permission denied"), which would make
-- vcon-mcp's deletes fail. It only records OLD.uuid's version; a trigger function
-- cannot be called directly.
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

DROP TRIGGER IF EXISTS conserver_vcon_tombstone_on_delete ON conserver_vcon_documents;
CREATE TRIGGER conserver_vcon_tombstone_on_delete
    AFTER DELETE ON conserver_vcon_documents
    FOR EACH ROW EXECUTE FUNCTION conserver_vcon_tombstone_on_delete();

-- Delete one vCon (document and rows, by cascade). Returns the delete's version; when
-- the vCon did not exist, minus the version of its last delete (so a retried delete
-- still tells the cache which version is gone), or 0 when it never had one. A vCon
-- that did not exist is not written.
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

-- Privileges as for the other functions: service_role (and the owner) only.
DO $grants$
DECLARE
    has_anon boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon');
    has_authenticated boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated');
    has_service boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role');
BEGIN
    REVOKE ALL ON FUNCTION conserver_vcon_remove(uuid) FROM PUBLIC;
    REVOKE ALL ON FUNCTION conserver_vcon_version_after_delete() FROM PUBLIC;
    REVOKE ALL ON FUNCTION conserver_vcon_tombstone_on_delete() FROM PUBLIC;
    REVOKE ALL ON TABLE conserver_vcon_tombstones FROM PUBLIC;
    IF has_anon THEN
        REVOKE ALL ON FUNCTION conserver_vcon_remove(uuid) FROM anon;
        REVOKE ALL ON FUNCTION conserver_vcon_version_after_delete() FROM anon;
        REVOKE ALL ON FUNCTION conserver_vcon_tombstone_on_delete() FROM anon;
        REVOKE ALL ON TABLE conserver_vcon_tombstones FROM anon;
    END IF;
    IF has_authenticated THEN
        REVOKE ALL ON FUNCTION conserver_vcon_remove(uuid) FROM authenticated;
        REVOKE ALL ON FUNCTION conserver_vcon_version_after_delete() FROM authenticated;
        REVOKE ALL ON FUNCTION conserver_vcon_tombstone_on_delete() FROM authenticated;
        REVOKE ALL ON TABLE conserver_vcon_tombstones FROM authenticated;
    END IF;
    IF has_service THEN
        GRANT EXECUTE ON FUNCTION conserver_vcon_remove(uuid) TO service_role;
        GRANT EXECUTE ON FUNCTION conserver_vcon_version_after_delete() TO service_role;
        GRANT EXECUTE ON FUNCTION conserver_vcon_tombstone_on_delete() TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE conserver_vcon_tombstones TO service_role;
    END IF;
END
$grants$;
