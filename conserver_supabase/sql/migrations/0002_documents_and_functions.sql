-- conserver-supabase migration 0002: the document table.
--
-- conserver_vcon_documents keeps the exact vCon JSON (so fields the normalized tables
-- cannot hold survive a round trip), a version that grows on every save and a
-- content hash. The functions in ../functions/ write a vCon's document and its vcon-mcp
-- rows in ONE transaction, so a failure leaves nothing half-written.
--
-- As released in 0.1.0 this migration also created the first SQL functions and their
-- privileges (hence its name). Those now live in ../functions/, one file per function
-- holding its current definition, applied again by the runner whenever the file
-- changes. A database migrated by 0.1.0 records this migration with the released
-- file's checksum; the runner knows that checksum (migrations.py, _REWRITTEN) and takes it
-- for this migration.
--
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS conserver_vcon_documents (
    uuid         uuid PRIMARY KEY REFERENCES vcons (uuid) ON DELETE CASCADE,
    document     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE conserver_vcon_documents ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE conserver_vcon_documents IS
    'conserver-supabase: the exact vCon JSON per uuid; rows in vcons/parties/dialog/analysis/attachments are derived from it';

-- Privileges: service_role (and the owner) only; RLS is on and has no policy.
CALL pg_temp.conserver_restrict_to_service_role('TABLE conserver_vcon_documents');
