-- conserver-supabase migration 0001: the vCon tables vcon-mcp reads.
--
-- Creates vcons, parties, dialog, analysis and attachments with vcon-mcp's (1.3.0)
-- column names, types, unique keys and ON DELETE CASCADE foreign keys, only where
-- they do not exist yet. On a database where vcon-mcp's own migrations already ran
-- nothing is created; the check at the end then verifies that the columns this
-- package writes are there with the types it writes.
--
-- vcon-mcp's migrations use plain CREATE TABLE: run them BEFORE this one if you
-- want vcon-mcp's full schema (search functions, triggers, views) in the same
-- database.
--
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS vcons (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    uuid              uuid NOT NULL UNIQUE,
    vcon_version      varchar(10) NOT NULL DEFAULT '0.3.0',
    subject           text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    basename          text,
    filename          text,
    done              boolean DEFAULT false,
    corrupt           boolean DEFAULT false,
    processed_by      text,
    privacy_processed jsonb DEFAULT '{}'::jsonb,
    redaction_rules   jsonb DEFAULT '{}'::jsonb,
    redacted          jsonb DEFAULT '{}'::jsonb,
    appended          jsonb DEFAULT '{}'::jsonb,
    group_data        jsonb DEFAULT '[]'::jsonb,
    extensions        text[],
    must_support      text[],
    critical          text[],
    amended           jsonb DEFAULT '{}'::jsonb,
    tenant_id         text,
    subject_tsvector  tsvector,
    CONSTRAINT valid_uuid CHECK (uuid IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS parties (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id         uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    party_index     integer NOT NULL,
    tel             text,
    sip             text,
    stir            text,
    mailto          text,
    name            text,
    did             text,
    validation      text,
    jcard           jsonb,
    gmlpos          text,
    civicaddress    jsonb,
    timezone        text,
    uuid            text,
    data_subject_id text,
    metadata        jsonb DEFAULT '{}'::jsonb,
    tenant_id       text,
    party_tsvector  tsvector,
    UNIQUE (vcon_id, party_index)
);

CREATE TABLE IF NOT EXISTS dialog (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id           uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    dialog_index      integer NOT NULL,
    type              text NOT NULL
                      CHECK (type = ANY (ARRAY['recording', 'text', 'transfer', 'incomplete'])),
    start_time        timestamptz,
    duration_seconds  real,
    parties           integer[],
    originator        integer,
    mediatype         text,
    filename          text,
    body              text,
    encoding          text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url', 'json', 'none'])),
    url               text,
    content_hash      text,
    disposition       text,
    session_id_legacy text,
    application       text,
    message_id        text,
    size_bytes        bigint,
    metadata          jsonb DEFAULT '{}'::jsonb,
    transferee        integer,
    transferor        integer,
    transfer_target   integer[],
    original          integer[],
    consultation      integer[],
    target_dialog     integer[],
    session_id        jsonb,
    tenant_id         text,
    body_tsvector     tsvector,
    UNIQUE (vcon_id, dialog_index)
);

CREATE TABLE IF NOT EXISTS analysis (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id        uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    analysis_index integer NOT NULL,
    type           text NOT NULL,
    dialog_indices integer[],
    mediatype      text,
    filename       text,
    vendor         text NOT NULL,
    product        text,
    schema         text,
    body           text,
    encoding       text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url', 'json', 'none'])),
    url            text,
    content_hash   text,
    created_at     timestamptz DEFAULT now(),
    confidence     real,
    metadata       jsonb DEFAULT '{}'::jsonb,
    tenant_id      text,
    body_tsvector  tsvector,
    UNIQUE (vcon_id, analysis_index)
);

CREATE TABLE IF NOT EXISTS attachments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id          uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    attachment_index integer NOT NULL,
    type             text,
    start_time       timestamptz,
    party            integer,
    dialog           integer,
    mimetype         text,
    filename         text,
    body             text,
    encoding         text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url', 'json', 'none'])),
    url              text,
    content_hash     text,
    size_bytes       bigint,
    metadata         jsonb DEFAULT '{}'::jsonb,
    purpose          text,
    tenant_id        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vcon_id, attachment_index)
);

-- Row-level security as vcon-mcp has it: with RLS on and no policy, only the
-- service role (BYPASSRLS) and the owner can read or write. vcon-mcp's tenant
-- policies, where present, are left alone.
ALTER TABLE vcons ENABLE ROW LEVEL SECURITY;
ALTER TABLE parties ENABLE ROW LEVEL SECURITY;
ALTER TABLE dialog ENABLE ROW LEVEL SECURITY;
ALTER TABLE analysis ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachments ENABLE ROW LEVEL SECURITY;

-- Supabase's default privileges grant its API roles every new table; grant the
-- service role explicitly too, for databases where those defaults were changed.
DO $grants$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON vcons, parties, dialog, analysis, attachments
            TO service_role;
    END IF;
END
$grants$;

-- The columns this package writes, with the types it writes. A table created by an
-- older vcon-mcp (before 1.3.0) may lack some or have older types: stop here with
-- a message that says which, instead of failing on the first save.
DO $check$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(format('%s.%s (%s)', want.tbl, want.col, want.typ), ', ')
      INTO missing
      FROM (VALUES
        ('vcons', 'id', 'uuid'), ('vcons', 'uuid', 'uuid'),
        ('vcons', 'vcon_version', 'character varying'), ('vcons', 'subject', 'text'),
        ('vcons', 'created_at', 'timestamp with time zone'),
        ('vcons', 'updated_at', 'timestamp with time zone'),
        ('vcons', 'extensions', 'ARRAY'), ('vcons', 'critical', 'ARRAY'),
        ('vcons', 'redacted', 'jsonb'), ('vcons', 'amended', 'jsonb'),
        ('vcons', 'tenant_id', 'text'),
        ('parties', 'vcon_id', 'uuid'), ('parties', 'party_index', 'integer'),
        ('parties', 'tel', 'text'), ('parties', 'sip', 'text'), ('parties', 'stir', 'text'),
        ('parties', 'mailto', 'text'), ('parties', 'name', 'text'), ('parties', 'did', 'text'),
        ('parties', 'validation', 'text'), ('parties', 'jcard', 'jsonb'),
        ('parties', 'gmlpos', 'text'), ('parties', 'civicaddress', 'jsonb'),
        ('parties', 'timezone', 'text'), ('parties', 'uuid', 'text'),
        ('dialog', 'vcon_id', 'uuid'), ('dialog', 'dialog_index', 'integer'),
        ('dialog', 'type', 'text'), ('dialog', 'start_time', 'timestamp with time zone'),
        ('dialog', 'duration_seconds', 'real'), ('dialog', 'parties', 'ARRAY'),
        ('dialog', 'originator', 'integer'), ('dialog', 'mediatype', 'text'),
        ('dialog', 'filename', 'text'), ('dialog', 'body', 'text'), ('dialog', 'encoding', 'text'),
        ('dialog', 'url', 'text'), ('dialog', 'content_hash', 'text'),
        ('dialog', 'disposition', 'text'), ('dialog', 'application', 'text'),
        ('dialog', 'message_id', 'text'), ('dialog', 'session_id', 'jsonb'),
        ('dialog', 'transferee', 'integer'), ('dialog', 'transferor', 'integer'),
        ('dialog', 'transfer_target', 'ARRAY'), ('dialog', 'original', 'ARRAY'),
        ('dialog', 'consultation', 'ARRAY'), ('dialog', 'target_dialog', 'ARRAY'),
        ('analysis', 'vcon_id', 'uuid'), ('analysis', 'analysis_index', 'integer'),
        ('analysis', 'type', 'text'), ('analysis', 'dialog_indices', 'ARRAY'),
        ('analysis', 'mediatype', 'text'), ('analysis', 'filename', 'text'),
        ('analysis', 'vendor', 'text'), ('analysis', 'product', 'text'),
        ('analysis', 'schema', 'text'), ('analysis', 'body', 'text'),
        ('analysis', 'encoding', 'text'), ('analysis', 'url', 'text'),
        ('analysis', 'content_hash', 'text'),
        ('attachments', 'vcon_id', 'uuid'), ('attachments', 'attachment_index', 'integer'),
        ('attachments', 'type', 'text'), ('attachments', 'purpose', 'text'),
        ('attachments', 'start_time', 'timestamp with time zone'),
        ('attachments', 'party', 'integer'), ('attachments', 'dialog', 'integer'),
        ('attachments', 'mimetype', 'text'), ('attachments', 'filename', 'text'),
        ('attachments', 'body', 'text'), ('attachments', 'encoding', 'text'),
        ('attachments', 'url', 'text'), ('attachments', 'content_hash', 'text')
      ) AS want (tbl, col, typ)
      LEFT JOIN information_schema.columns c
        ON c.table_schema = current_schema()
       AND c.table_name = want.tbl
       AND c.column_name = want.col
     WHERE c.data_type IS DISTINCT FROM want.typ;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'conserver-supabase: the existing vCon tables in schema % lack columns or have other types: %', current_schema(), missing
            USING HINT = 'These tables look like an older vcon-mcp schema: apply vcon-mcp''s migrations up to release 1.3.0 first, then run this migration again.';
    END IF;
END
$check$;
