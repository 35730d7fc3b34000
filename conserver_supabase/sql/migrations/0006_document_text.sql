-- conserver-supabase migration 0006: each document's exact JSON text (issue 17).
--
-- conserver_vcon_documents.document is jsonb, which is what the merge, the conflict rule
-- and ad-hoc queries use, but jsonb keeps neither the key order nor the spelling of
-- numbers (1e16 comes back 10000000000000000, -0.0 as 0) nor the escapes of the text it
-- parsed. document_text keeps the text our save was given, and conserver_vcon_read
-- returns it as it is: a vCon read back is the vCon saved. NULL where there is no such
-- text (rows saved before this migration, a save through the object form of the 0.1
-- API, a vCon merged with another writer's changes, a head row): the jsonb document
-- answers then, as before.
--
-- Adding a nullable column without a default rewrites nothing: the migration takes
-- its lock only for a moment, whatever the table's size.
--
-- Idempotent: safe to run again.

ALTER TABLE conserver_vcon_documents ADD COLUMN IF NOT EXISTS document_text text;

COMMENT ON COLUMN conserver_vcon_documents.document_text IS
    'conserver-supabase: the exact JSON text of document as saved (NULL: document answers)';
