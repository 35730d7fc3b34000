-- conserver-supabase migration 0003: search, delete versions and requeue (no functions:
-- those are in ../functions/, applied by the runner before the migrations).
--
-- Search (docs/search.md): the tsvector columns kept up to date where vcon-mcp's own
-- triggers are absent (tables 0001 created), with a backfill of the rows written
-- before; the indexes that serve conserver_vcon_search's filters; trigram indexes
-- for the substring filters when pg_trgm is available. The indexes are built inside the
-- migration transaction: on a large database writers to the vCon tables wait until it
-- commits, so apply it in a quiet window.
--
-- Delete versions: the Redis cache orders what it is told by version, so a delete has
-- one too. conserver_vcon_tombstones (uuid, version, deleted_at) keeps the version of
-- each vCon deleted in the last 30 days; a trigger records it for every delete of a
-- document row, and another makes a vCon saved again continue from it.
--
-- Requeue: an index on the time of each vCon's last save (conserver_vcon_saved_between).
--
-- This migration holds what main's unreleased migrations 0003_exists_and_versions to
-- 0008_tenants created besides functions. A database migrated by such a build records
-- those six; the runner knows their checksums (migrations.py, _SUPERSEDED), removes their
-- records and applies this migration, which finds everything in place.
--
-- Idempotent: safe to run again.

-- Retired: the one-argument row mapping of main's 0007 (internal; 0008 replaced it with
-- conserver_vcon_write(jsonb, jsonb)).
DROP FUNCTION IF EXISTS conserver_vcon_write(jsonb);
-- Retired: main's two copies of one trigger function (dialog, analysis); their triggers
-- are made again below on conserver_tsv_body, which takes the weight as its argument.
DROP TRIGGER IF EXISTS conserver_tsv_dialog ON dialog;
DROP TRIGGER IF EXISTS conserver_tsv_analysis ON analysis;
DROP FUNCTION IF EXISTS conserver_tsv_dialog();
DROP FUNCTION IF EXISTS conserver_tsv_analysis();

-- ---------------------------------------------------------------------------
-- Search: tsvector triggers where vcon-mcp's are absent (the functions conserver_tsv_*).
-- ---------------------------------------------------------------------------
DO $tsv$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['vcons', 'trigger_vcons_subject_tsvector', 'conserver_tsv_vcons', 'subject',
         'subject_tsvector'],
        ['parties', 'trigger_parties_party_tsvector', 'conserver_tsv_parties', 'name, mailto, tel',
         'party_tsvector'],
        ['dialog', 'trigger_dialog_body_tsvector', 'conserver_tsv_dialog', 'body, encoding',
         'body_tsvector'],
        ['analysis', 'trigger_analysis_body_tsvector', 'conserver_tsv_analysis', 'body, encoding',
         'body_tsvector']
    ] LOOP
        -- dialog and analysis share conserver_tsv_body, their weight (D, B) its argument
        IF EXISTS (
            SELECT FROM pg_trigger t
             WHERE t.tgrelid = format('%I', spec[1])::regclass
               AND t.tgname IN (spec[2], spec[3])
        ) THEN
            CONTINUE;  -- vcon-mcp (or an earlier run) maintains this column already
        END IF;
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %I FOR EACH ROW EXECUTE FUNCTION %s',
            spec[3], spec[4], spec[1],
            CASE spec[1] WHEN 'dialog' THEN 'conserver_tsv_body(''D'')'
                         WHEN 'analysis' THEN 'conserver_tsv_body(''B'')'
                         ELSE format('%I()', spec[3]) END);
        -- fill the rows written before the trigger existed (the trigger computes it)
        EXECUTE format('UPDATE %I SET %s = %s WHERE %I IS NULL',
            spec[1], split_part(spec[4], ',', 1), split_part(spec[4], ',', 1), spec[5]);
    END LOOP;
END
$tsv$;

-- ---------------------------------------------------------------------------
-- Search: indexes. vcon-mcp's names where it has the same index, so nothing is built
-- twice.
-- ---------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS conserver_idx_vcons_created_uuid ON vcons (created_at DESC, uuid DESC);
CREATE INDEX IF NOT EXISTS idx_vcons_updated_at ON vcons (updated_at);
CREATE INDEX IF NOT EXISTS idx_vcons_subject_tsvector_gin ON vcons USING gin (subject_tsvector)
    WHERE subject_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_parties_party_tsvector_gin ON parties USING gin (party_tsvector)
    WHERE party_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_dialog_body_tsvector_gin ON dialog USING gin (body_tsvector)
    WHERE body_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_analysis_body_tsvector_gin ON analysis USING gin (body_tsvector)
    WHERE body_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS conserver_idx_parties_tel_digits
    ON parties (conserver_tel_digits(tel), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_parties_mailto_key
    ON parties (conserver_mailto_key(mailto), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_parties_uuid ON parties (lower(uuid), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_dialog_type ON dialog (type, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_analysis_type_vendor ON analysis (type, vendor, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_analysis_vendor ON analysis (vendor, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_attachments_tags
    ON attachments USING gin (conserver_tags(body)) WHERE type = 'tags';

-- Trigram indexes for the substring filters (subject, party name), when pg_trgm is
-- available (Supabase installs it in schema "extensions"; the operator class is found
-- wherever it lives). Without it those filters still work, by scanning.
DO $trgm$
DECLARE
    ext_schema text;
BEGIN
    SELECT extnamespace::regnamespace::text INTO ext_schema
      FROM pg_extension WHERE extname = 'pg_trgm';
    IF ext_schema IS NULL THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
            RAISE NOTICE 'pg_trgm is not available: subject/name search will scan';
            RETURN;
        END;
        SELECT extnamespace::regnamespace::text INTO ext_schema
          FROM pg_extension WHERE extname = 'pg_trgm';
    END IF;
    EXECUTE format('CREATE INDEX IF NOT EXISTS conserver_idx_vcons_subject_trgm '
                   'ON vcons USING gin (subject %s.gin_trgm_ops)', ext_schema);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_parties_name_trgm '
                   'ON parties USING gin (name %s.gin_trgm_ops)', ext_schema);
END
$trgm$;

-- ---------------------------------------------------------------------------
-- Delete versions: the tombstones and the two triggers on conserver_vcon_documents.
-- ---------------------------------------------------------------------------
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

-- A new document row starts after its vCon's tombstone (conserver_vcon_version_after_delete);
-- every delete of a document row leaves one (conserver_vcon_tombstone_on_delete).
DROP TRIGGER IF EXISTS conserver_vcon_version_after_delete ON conserver_vcon_documents;
CREATE TRIGGER conserver_vcon_version_after_delete
    BEFORE INSERT ON conserver_vcon_documents
    FOR EACH ROW EXECUTE FUNCTION conserver_vcon_version_after_delete();

DROP TRIGGER IF EXISTS conserver_vcon_tombstone_on_delete ON conserver_vcon_documents;
CREATE TRIGGER conserver_vcon_tombstone_on_delete
    AFTER DELETE ON conserver_vcon_documents
    FOR EACH ROW EXECUTE FUNCTION conserver_vcon_tombstone_on_delete();

-- Privileges: service_role (and the owner) only; RLS is on and has no policy. The
-- delete trigger writes here as its owner (it is SECURITY DEFINER), so vcon-mcp's
-- deletes as authenticated still record tombstones.
CALL pg_temp.conserver_restrict_to_service_role('TABLE conserver_vcon_tombstones');

-- ---------------------------------------------------------------------------
-- Requeue: the vCons saved in a time window, oldest first.
-- ---------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS conserver_vcon_documents_saved_at
    ON conserver_vcon_documents (updated_at, uuid);

-- ---------------------------------------------------------------------------
-- Supabase's default privileges give anon and authenticated EXECUTE on every new
-- function. Each function file takes it back from its own functions; this sweep also
-- reaches any other conserver_vcon_* function in the schema (one an earlier build left).
-- The IMMUTABLE helpers and the tsvector triggers are not conserver_vcon_* and keep
-- PostgreSQL's default EXECUTE for everyone: they back expression indexes and triggers,
-- so every role that writes rows evaluates them.
-- ---------------------------------------------------------------------------
DO $grants$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND p.proname LIKE 'conserver\_vcon\_%'
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon', fn);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM authenticated', fn);
        END IF;
    END LOOP;
END
$grants$;
