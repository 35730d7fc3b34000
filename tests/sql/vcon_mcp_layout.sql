-- Test fixture: the effective vcon-mcp 1.3.0 layout of the tables conserver-supabase
-- writes, written from shared/reference/vcon-mcp-schema.md (not vcon-mcp's code):
-- columns and types, keys, cascading FKs to vcons(uuid), the triggers a write fires
-- (tsvector, tenant copy, embedding queue, deprecated-field mirror), RLS with tenant
-- policies, and the tags materialized view.

CREATE TABLE vcons (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    uuid uuid NOT NULL,
    vcon_version varchar(10) NOT NULL DEFAULT '0.3.0',
    subject text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    basename text, filename text, done boolean DEFAULT false, corrupt boolean DEFAULT false,
    processed_by text, privacy_processed jsonb DEFAULT '{}', redaction_rules jsonb DEFAULT '{}',
    redacted jsonb DEFAULT '{}', appended jsonb DEFAULT '{}', group_data jsonb DEFAULT '[]',
    extensions text[], must_support text[], critical text[], amended jsonb DEFAULT '{}',
    tenant_id text, subject_tsvector tsvector,
    CONSTRAINT valid_uuid CHECK (uuid IS NOT NULL),
    CONSTRAINT vcons_uuid_key UNIQUE (uuid)
);

CREATE TABLE parties (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    party_index integer NOT NULL,
    tel text, sip text, stir text, mailto text, name text, did text, validation text,
    jcard jsonb, gmlpos text, civicaddress jsonb, timezone text, uuid text,
    data_subject_id text, metadata jsonb DEFAULT '{}', tenant_id text, party_tsvector tsvector,
    UNIQUE (vcon_id, party_index)
);

CREATE TABLE dialog (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    dialog_index integer NOT NULL,
    type text NOT NULL CHECK (type = ANY (ARRAY['recording','text','transfer','incomplete'])),
    start_time timestamptz, duration_seconds real, parties integer[], originator integer,
    mediatype text, filename text, body text,
    encoding text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url','json','none'])),
    url text, content_hash text, disposition text, session_id_legacy text, application text,
    message_id text, size_bytes bigint, metadata jsonb DEFAULT '{}', transferee integer,
    transferor integer, transfer_target integer[], original integer[], consultation integer[],
    target_dialog integer[], session_id jsonb, tenant_id text, body_tsvector tsvector,
    UNIQUE (vcon_id, dialog_index)
);

CREATE TABLE analysis (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    analysis_index integer NOT NULL,
    type text NOT NULL, dialog_indices integer[], mediatype text, filename text,
    vendor text NOT NULL, product text, schema text, body text,
    encoding text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url','json','none'])),
    url text, content_hash text, created_at timestamptz DEFAULT now(), confidence real,
    metadata jsonb DEFAULT '{}', tenant_id text, body_tsvector tsvector,
    UNIQUE (vcon_id, analysis_index)
);

CREATE TABLE attachments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vcon_id uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    attachment_index integer NOT NULL,
    type text, start_time timestamptz, party integer, dialog integer, mimetype text,
    filename text, body text,
    encoding text CHECK (encoding IS NULL OR encoding = ANY (ARRAY['base64url','json','none'])),
    url text, content_hash text, size_bytes bigint, metadata jsonb DEFAULT '{}', purpose text,
    tenant_id text, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vcon_id, attachment_index)
);
CREATE INDEX idx_attachments_tags_partial ON attachments (vcon_id, body) WHERE type = 'tags';

CREATE TABLE embedding_queue (
    id bigserial PRIMARY KEY,
    vcon_id uuid NOT NULL REFERENCES vcons (uuid) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    tenant_id text
);

-- tsvector maintenance
CREATE FUNCTION update_vcons_subject_tsvector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.subject_tsvector := setweight(to_tsvector('english', coalesce(NEW.subject, '')), 'A'); RETURN NEW; END $$;
CREATE TRIGGER trigger_vcons_subject_tsvector BEFORE INSERT OR UPDATE OF subject ON vcons
    FOR EACH ROW EXECUTE FUNCTION update_vcons_subject_tsvector();
CREATE FUNCTION update_parties_party_tsvector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.party_tsvector := setweight(to_tsvector('simple', concat_ws(' ', NEW.name, NEW.mailto, NEW.tel)), 'B'); RETURN NEW; END $$;
CREATE TRIGGER trigger_parties_party_tsvector BEFORE INSERT OR UPDATE OF name, mailto, tel ON parties
    FOR EACH ROW EXECUTE FUNCTION update_parties_party_tsvector();
CREATE FUNCTION update_dialog_body_tsvector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.body_tsvector := to_tsvector('english', coalesce(NEW.body, '')); RETURN NEW; END $$;
CREATE TRIGGER trigger_dialog_body_tsvector BEFORE INSERT OR UPDATE OF body ON dialog
    FOR EACH ROW EXECUTE FUNCTION update_dialog_body_tsvector();
CREATE FUNCTION update_analysis_body_tsvector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.body_tsvector := setweight(to_tsvector('english', coalesce(NEW.body, '')), 'B'); RETURN NEW; END $$;
CREATE TRIGGER trigger_analysis_body_tsvector BEFORE INSERT OR UPDATE OF body ON analysis
    FOR EACH ROW EXECUTE FUNCTION update_analysis_body_tsvector();

-- children copy tenant_id from the parent, looked up by vcons.id (as vcon-mcp does)
CREATE FUNCTION set_child_tenant_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN SELECT v.tenant_id INTO NEW.tenant_id FROM vcons v WHERE v.id = NEW.vcon_id; RETURN NEW; END $$;
CREATE TRIGGER trg_set_parties_tenant_id BEFORE INSERT ON parties FOR EACH ROW EXECUTE FUNCTION set_child_tenant_id();
CREATE TRIGGER trg_set_dialog_tenant_id BEFORE INSERT ON dialog FOR EACH ROW EXECUTE FUNCTION set_child_tenant_id();
CREATE TRIGGER trg_set_analysis_tenant_id BEFORE INSERT ON analysis FOR EACH ROW EXECUTE FUNCTION set_child_tenant_id();
CREATE TRIGGER trg_set_attachments_tenant_id BEFORE INSERT ON attachments FOR EACH ROW EXECUTE FUNCTION set_child_tenant_id();

-- one embedding_queue row per vcons INSERT
CREATE FUNCTION enqueue_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO embedding_queue (vcon_id) VALUES (NEW.uuid); RETURN NEW; END $$;
CREATE TRIGGER trg_enqueue_embedding AFTER INSERT ON vcons FOR EACH ROW EXECUTE FUNCTION enqueue_embedding();

-- critical -> must_support, amended -> appended
CREATE FUNCTION sync_vcon_deprecated_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.critical IS NOT NULL THEN NEW.must_support := NEW.critical; END IF;
    IF NEW.amended IS NOT NULL AND NEW.amended <> '{}' THEN NEW.appended := NEW.amended; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sync_deprecated_fields_trigger BEFORE INSERT OR UPDATE ON vcons
    FOR EACH ROW EXECUTE FUNCTION sync_vcon_deprecated_fields();

CREATE FUNCTION attachments_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER trigger_attachments_updated_at BEFORE UPDATE ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachments_touch_updated_at();

-- RLS with tenant isolation for authenticated only
CREATE FUNCTION get_current_tenant_id() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id',
                    nullif(current_setting('app.current_tenant_id', true), ''))
$$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['vcons', 'parties', 'dialog', 'analysis', 'attachments', 'embedding_queue'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO authenticated '
                       'USING (tenant_id IS NULL OR tenant_id = get_current_tenant_id()) '
                       'WITH CHECK (tenant_id IS NULL OR tenant_id = get_current_tenant_id())',
                       t || '_tenant_isolation', t);
        EXECUTE format('GRANT ALL ON %I TO anon, authenticated, service_role', t);
    END LOOP;
END $$;

-- the tags materialized view (definition from the reference, section 3)
CREATE MATERIALIZED VIEW vcon_tags_mv AS
SELECT a.tenant_id, ta.vcon_id, jsonb_object_agg(ta.key, ta.value) AS tags,
       a.updated_at AS tag_updated_at, a.created_at AS tag_created_at
  FROM (SELECT a_1.tenant_id, a_1.vcon_id, a_1.updated_at, a_1.created_at,
               split_part(elem.value, ':', 1) AS key, split_part(elem.value, ':', 2) AS value
          FROM attachments a_1
         CROSS JOIN LATERAL jsonb_array_elements_text(a_1.body::jsonb) elem(value)
         WHERE a_1.type = 'tags' AND a_1.body IS NOT NULL AND a_1.body <> ''
           AND a_1.body ~ '^\s*\[.*\]\s*$') ta
  JOIN attachments a ON a.vcon_id = ta.vcon_id AND a.type = 'tags'
 WHERE ta.key IS NOT NULL AND ta.key <> ''
 GROUP BY a.tenant_id, ta.vcon_id, a.updated_at, a.created_at;
CREATE UNIQUE INDEX idx_vcon_tags_mv_vcon_id ON vcon_tags_mv (vcon_id);
