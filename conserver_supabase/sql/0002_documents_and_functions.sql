-- conserver-supabase migration 0002: the document table and the SQL functions.
--
-- conserver_vcon_documents keeps the exact vCon JSON (so fields the normalized tables
-- cannot hold survive a round trip), a version that grows on every save and a
-- content hash. The functions write a vCon's document and its vcon-mcp rows in ONE
-- transaction, so a failure leaves nothing half-written.
--
-- Every function is SECURITY INVOKER, pins search_path to the schema this migration
-- runs in, and is executable by service_role only (and the owner).
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

-- ---------------------------------------------------------------------------
-- Small helpers (immutable, used by the functions below)
-- ---------------------------------------------------------------------------

-- A JSON value as the text vcon-mcp stores: strings verbatim, anything else as JSON text.
CREATE OR REPLACE FUNCTION conserver_jsonb_text(v jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN v #>> '{}'
        WHEN 'null' THEN NULL
        ELSE v::text
    END
$fn$;

-- A JSON index or array of indexes as integer[] (a scalar n becomes {n}).
CREATE OR REPLACE FUNCTION conserver_int_array(v jsonb)
RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'array' THEN ARRAY(SELECT e::integer FROM jsonb_array_elements_text(v) AS e)
        WHEN 'number' THEN ARRAY[(v #>> '{}')::integer]
        ELSE NULL
    END
$fn$;

-- A JSON array of strings as text[].
CREATE OR REPLACE FUNCTION conserver_text_array(v jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(v))
        ELSE NULL
    END
$fn$;

-- An object without its null-valued top-level keys (nested values are left alone).
CREATE OR REPLACE FUNCTION conserver_strip_nulls(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
      FROM jsonb_each(v)
     WHERE jsonb_typeof(value) <> 'null'
$fn$;

-- vcon-mcp's deserializeBody: with encoding none/absent, text that parses as JSON is
-- read back as that JSON value; anything else stays a string.
CREATE OR REPLACE FUNCTION conserver_read_body(body text, encoding text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF body IS NULL THEN
        RETURN NULL;
    END IF;
    IF encoding IS NULL OR encoding = 'none' THEN
        BEGIN
            RETURN body::jsonb;
        EXCEPTION WHEN others THEN
            NULL;  -- not JSON: fall through to the string
        END;
    END IF;
    RETURN to_jsonb(body);
END
$fn$;

-- Structural guards for callers that bypass the Python validator. Returns the uuid.
-- The message names the field; SQLSTATE 22023 (invalid_parameter_value), with the
-- field in DETAIL, is what the Python side turns into InvalidVconError.
CREATE OR REPLACE FUNCTION conserver_vcon_check(p_document jsonb)
RETURNS uuid
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_text  text := p_document ->> 'uuid';
    v_name  text;
    v_array jsonb;
    v_bad   bigint;
BEGIN
    IF jsonb_typeof(p_document) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid vCon: (document): must be a JSON object'
            USING ERRCODE = '22023', DETAIL = '(document)';
    END IF;
    IF v_text IS NULL OR v_text !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'invalid vCon: uuid: must be a UUID string'
            USING ERRCODE = '22023', DETAIL = 'uuid';
    END IF;
    FOREACH v_name IN ARRAY ARRAY['parties', 'dialog', 'analysis', 'attachments'] LOOP
        v_array := p_document -> v_name;
        CONTINUE WHEN v_array IS NULL OR jsonb_typeof(v_array) = 'null';
        IF jsonb_typeof(v_array) <> 'array' THEN
            RAISE EXCEPTION 'invalid vCon %: %: must be an array', v_text, v_name
                USING ERRCODE = '22023', DETAIL = v_name;
        END IF;
        SELECT min(o) - 1 INTO v_bad
          FROM jsonb_array_elements(v_array) WITH ORDINALITY AS t (e, o)
         WHERE jsonb_typeof(e) <> 'object';
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'invalid vCon %: %[%]: must be a JSON object', v_text, v_name, v_bad
                USING ERRCODE = '22023', DETAIL = format('%s[%s]', v_name, v_bad);
        END IF;
    END LOOP;
    RETURN v_text::uuid;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Save one vCon: document + vcon-mcp rows in one transaction. Returns the version.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid      uuid := conserver_vcon_check(p_document);
    v_parties   jsonb := coalesce(nullif(p_document -> 'parties', 'null'), '[]');
    v_dialog    jsonb := coalesce(nullif(p_document -> 'dialog', 'null'), '[]');
    v_analysis  jsonb := coalesce(nullif(p_document -> 'analysis', 'null'), '[]');
    v_attach    jsonb := coalesce(nullif(p_document -> 'attachments', 'null'), '[]');
    v_version   bigint;
BEGIN
    -- Concurrent first saves of one new uuid would race on both unique indexes of
    -- vcons (id and uuid) and ON CONFLICT can arbitrate only one: serialize saves of
    -- the same uuid on a transaction-scoped advisory lock first.
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || v_uuid::text, 0));
    -- Conflict on uuid (not id) so that a legacy row with id <> uuid is repaired.
    INSERT INTO vcons AS v (id, uuid, vcon_version, subject, created_at, updated_at,
                            extensions, critical, redacted, amended)
    VALUES (
        v_uuid, v_uuid,
        coalesce(p_document ->> 'vcon', '0.4.0'),
        p_document ->> 'subject',
        coalesce((p_document ->> 'created_at')::timestamptz, now()),
        coalesce((p_document ->> 'updated_at')::timestamptz, now()),
        conserver_text_array(p_document -> 'extensions'),
        conserver_text_array(coalesce(nullif(p_document -> 'critical', 'null'),
                                      p_document -> 'must_support')),
        coalesce(nullif(p_document -> 'redacted', 'null'), '{}'),
        coalesce(nullif(p_document -> 'amended', 'null'),
                 nullif(p_document -> 'appended', 'null'), '{}')
    )
    ON CONFLICT (uuid) DO UPDATE SET
        id           = EXCLUDED.id,
        vcon_version = EXCLUDED.vcon_version,
        subject      = EXCLUDED.subject,
        created_at   = CASE WHEN p_document ->> 'created_at' IS NULL THEN v.created_at
                            ELSE EXCLUDED.created_at END,
        updated_at   = EXCLUDED.updated_at,
        extensions   = EXCLUDED.extensions,
        critical     = EXCLUDED.critical,
        redacted     = EXCLUDED.redacted,
        amended      = EXCLUDED.amended;

    INSERT INTO parties AS p (vcon_id, party_index, tel, sip, stir, mailto, name, did,
                              validation, jcard, gmlpos, civicaddress, timezone, uuid)
    SELECT v_uuid, (o - 1)::integer, e ->> 'tel', e ->> 'sip', e ->> 'stir', e ->> 'mailto',
           e ->> 'name', e ->> 'did', e ->> 'validation', nullif(e -> 'jcard', 'null'),
           e ->> 'gmlpos', nullif(e -> 'civicaddress', 'null'), e ->> 'timezone', e ->> 'uuid'
      FROM jsonb_array_elements(v_parties) WITH ORDINALITY AS t (e, o)
    ON CONFLICT (vcon_id, party_index) DO UPDATE SET
        tel = EXCLUDED.tel, sip = EXCLUDED.sip, stir = EXCLUDED.stir,
        mailto = EXCLUDED.mailto, name = EXCLUDED.name, did = EXCLUDED.did,
        validation = EXCLUDED.validation, jcard = EXCLUDED.jcard, gmlpos = EXCLUDED.gmlpos,
        civicaddress = EXCLUDED.civicaddress, timezone = EXCLUDED.timezone, uuid = EXCLUDED.uuid;
    DELETE FROM parties WHERE vcon_id = v_uuid AND party_index >= jsonb_array_length(v_parties);

    INSERT INTO dialog AS d (vcon_id, dialog_index, type, start_time, duration_seconds, parties,
                             originator, mediatype, filename, body, encoding, url, content_hash,
                             disposition, application, message_id, session_id, transferee,
                             transferor, transfer_target, original, consultation, target_dialog)
    SELECT v_uuid, (o - 1)::integer, e ->> 'type', (e ->> 'start')::timestamptz,
           (e ->> 'duration')::real, conserver_int_array(e -> 'parties'),
           (e ->> 'originator')::integer, e ->> 'mediatype', e ->> 'filename',
           conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
           conserver_jsonb_text(e -> 'content_hash'), e ->> 'disposition', e ->> 'application',
           e ->> 'message_id', nullif(e -> 'session_id', 'null'), (e ->> 'transferee')::integer,
           (e ->> 'transferor')::integer, conserver_int_array(e -> 'transfer_target'),
           conserver_int_array(e -> 'original'), conserver_int_array(e -> 'consultation'),
           conserver_int_array(e -> 'target_dialog')
      FROM jsonb_array_elements(v_dialog) WITH ORDINALITY AS t (e, o)
    ON CONFLICT (vcon_id, dialog_index) DO UPDATE SET
        type = EXCLUDED.type, start_time = EXCLUDED.start_time,
        duration_seconds = EXCLUDED.duration_seconds, parties = EXCLUDED.parties,
        originator = EXCLUDED.originator, mediatype = EXCLUDED.mediatype,
        filename = EXCLUDED.filename, body = EXCLUDED.body, encoding = EXCLUDED.encoding,
        url = EXCLUDED.url, content_hash = EXCLUDED.content_hash,
        disposition = EXCLUDED.disposition, application = EXCLUDED.application,
        message_id = EXCLUDED.message_id, session_id = EXCLUDED.session_id,
        transferee = EXCLUDED.transferee, transferor = EXCLUDED.transferor,
        transfer_target = EXCLUDED.transfer_target, original = EXCLUDED.original,
        consultation = EXCLUDED.consultation, target_dialog = EXCLUDED.target_dialog;
    DELETE FROM dialog WHERE vcon_id = v_uuid AND dialog_index >= jsonb_array_length(v_dialog);

    INSERT INTO analysis AS a (vcon_id, analysis_index, type, dialog_indices, mediatype, filename,
                               vendor, product, schema, body, encoding, url, content_hash)
    SELECT v_uuid, (o - 1)::integer, e ->> 'type', conserver_int_array(e -> 'dialog'),
           e ->> 'mediatype', e ->> 'filename', e ->> 'vendor', e ->> 'product', e ->> 'schema',
           conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
           conserver_jsonb_text(e -> 'content_hash')
      FROM jsonb_array_elements(v_analysis) WITH ORDINALITY AS t (e, o)
    ON CONFLICT (vcon_id, analysis_index) DO UPDATE SET
        type = EXCLUDED.type, dialog_indices = EXCLUDED.dialog_indices,
        mediatype = EXCLUDED.mediatype, filename = EXCLUDED.filename, vendor = EXCLUDED.vendor,
        product = EXCLUDED.product, schema = EXCLUDED.schema, body = EXCLUDED.body,
        encoding = EXCLUDED.encoding, url = EXCLUDED.url, content_hash = EXCLUDED.content_hash;
    DELETE FROM analysis WHERE vcon_id = v_uuid AND analysis_index >= jsonb_array_length(v_analysis);

    INSERT INTO attachments AS a (vcon_id, attachment_index, type, purpose, start_time, party,
                                  dialog, mimetype, filename, body, encoding, url, content_hash)
    SELECT v_uuid, (o - 1)::integer, e ->> 'type', e ->> 'purpose', (e ->> 'start')::timestamptz,
           (e ->> 'party')::integer, (e ->> 'dialog')::integer, e ->> 'mediatype',
           e ->> 'filename', conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
           conserver_jsonb_text(e -> 'content_hash')
      FROM jsonb_array_elements(v_attach) WITH ORDINALITY AS t (e, o)
    ON CONFLICT (vcon_id, attachment_index) DO UPDATE SET
        type = EXCLUDED.type, purpose = EXCLUDED.purpose, start_time = EXCLUDED.start_time,
        party = EXCLUDED.party, dialog = EXCLUDED.dialog, mimetype = EXCLUDED.mimetype,
        filename = EXCLUDED.filename, body = EXCLUDED.body, encoding = EXCLUDED.encoding,
        url = EXCLUDED.url, content_hash = EXCLUDED.content_hash;
    DELETE FROM attachments WHERE vcon_id = v_uuid AND attachment_index >= jsonb_array_length(v_attach);

    INSERT INTO conserver_vcon_documents AS doc (uuid, document, version, content_hash)
    VALUES (v_uuid, p_document, 1, encode(sha256(convert_to(p_document::text, 'UTF8')), 'hex'))
    ON CONFLICT (uuid) DO UPDATE SET
        document     = EXCLUDED.document,
        version      = doc.version + 1,
        content_hash = EXCLUDED.content_hash,
        updated_at   = now()
    RETURNING doc.version INTO v_version;

    RETURN v_version;
END
$fn$;

-- Save many vCons (a JSON array) in one transaction: all or nothing.
-- Returns {"<uuid>": version, ...}; a uuid given twice is saved twice, in order.
CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_document jsonb;
    v_result   jsonb := '{}';
BEGIN
    IF jsonb_typeof(p_documents) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid vCon batch: must be a JSON array of vCons'
            USING ERRCODE = '22023', DETAIL = '(batch)';
    END IF;
    FOR v_document IN SELECT e FROM jsonb_array_elements(p_documents) AS e LOOP
        v_result := v_result || jsonb_build_object(
            lower(v_document ->> 'uuid'), conserver_vcon_save(v_document));
    END LOOP;
    RETURN v_result;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Read back
-- ---------------------------------------------------------------------------

-- Reassemble a vCon from vcon-mcp's rows, the way vcon-mcp's getVCon does (for vCons
-- another writer created). Null columns are left out. NULL when there is no vCon.
CREATE OR REPLACE FUNCTION conserver_vcon_assemble(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_strip_nulls(jsonb_build_object(
        'vcon', coalesce(v.vcon_version, '0.4.0'),
        'uuid', v.uuid,
        'created_at', v.created_at,
        'updated_at', v.updated_at,
        'subject', v.subject,
        'extensions', v.extensions,
        'critical', v.critical,
        'redacted', nullif(v.redacted, '{}'),
        'amended', nullif(v.amended, '{}'),
        'parties', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'tel', p.tel, 'sip', p.sip, 'stir', p.stir, 'mailto', p.mailto,
                       'name', p.name, 'did', p.did, 'uuid', p.uuid, 'validation', p.validation,
                       'jcard', p.jcard, 'gmlpos', p.gmlpos, 'civicaddress', p.civicaddress,
                       'timezone', p.timezone)) ORDER BY p.party_index)
              FROM parties p WHERE p.vcon_id = v.uuid), '[]'),
        'dialog', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', d.type, 'start', d.start_time, 'duration', d.duration_seconds,
                       'parties', d.parties, 'originator', d.originator,
                       'mediatype', d.mediatype, 'filename', d.filename, 'body', d.body,
                       'encoding', d.encoding, 'url', d.url, 'content_hash', d.content_hash,
                       'disposition', d.disposition, 'session_id', d.session_id,
                       'application', d.application, 'message_id', d.message_id,
                       'transferee', d.transferee, 'transferor', d.transferor,
                       'transfer_target', d.transfer_target, 'original', d.original,
                       'consultation', d.consultation, 'target_dialog', d.target_dialog))
                   ORDER BY d.dialog_index)
              FROM dialog d WHERE d.vcon_id = v.uuid), '[]'),
        'analysis', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', a.type,
                       'dialog', CASE WHEN cardinality(a.dialog_indices) = 1
                                      THEN to_jsonb(a.dialog_indices[1])
                                      ELSE to_jsonb(a.dialog_indices) END,
                       'mediatype', a.mediatype, 'filename', a.filename, 'vendor', a.vendor,
                       'product', a.product, 'schema', a.schema,
                       'body', conserver_read_body(a.body, a.encoding),
                       'encoding', a.encoding, 'url', a.url, 'content_hash', a.content_hash))
                   ORDER BY a.analysis_index)
              FROM analysis a WHERE a.vcon_id = v.uuid), '[]'),
        'attachments', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', t.type, 'purpose', t.purpose, 'start', t.start_time,
                       'party', t.party, 'dialog', t.dialog, 'mediatype', t.mimetype,
                       'filename', t.filename,
                       'body', conserver_read_body(t.body, t.encoding),
                       'encoding', t.encoding, 'url', t.url, 'content_hash', t.content_hash))
                   ORDER BY t.attachment_index)
              FROM attachments t WHERE t.vcon_id = v.uuid), '[]')
    ))
      FROM vcons v
     WHERE v.uuid = p_uuid
$fn$;

-- Load one vCon: the stored document, else the vCon reassembled from rows, else NULL.
CREATE OR REPLACE FUNCTION conserver_vcon_load(p_uuid uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(
        (SELECT doc.document FROM conserver_vcon_documents doc WHERE doc.uuid = p_uuid),
        conserver_vcon_assemble(p_uuid))
$fn$;

-- Load many vCons (a JSON array of uuid strings). Returns {"<uuid>": document, ...}
-- with the vCons that exist; missing ones are simply absent.
CREATE OR REPLACE FUNCTION conserver_vcon_load_many(p_uuids jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(jsonb_object_agg(wanted.uuid::text, found.document), '{}'::jsonb)
      FROM (SELECT DISTINCT e::uuid AS uuid FROM jsonb_array_elements_text(p_uuids) AS e) AS wanted
      CROSS JOIN LATERAL (SELECT conserver_vcon_load(wanted.uuid) AS document) AS found
     WHERE found.document IS NOT NULL
$fn$;

-- Delete one vCon (document and rows, by cascade). Returns whether it existed.
CREATE OR REPLACE FUNCTION conserver_vcon_delete(p_uuid uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    DELETE FROM vcons WHERE uuid = p_uuid;
    RETURN FOUND;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Privileges: service_role (and the owner) only. On a plain PostgreSQL without
-- Supabase's roles only the PUBLIC revoke applies.
-- ---------------------------------------------------------------------------
DO $grants$
DECLARE
    fn text;
    has_anon boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon');
    has_authenticated boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated');
    has_service boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role');
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'conserver_jsonb_text(jsonb)', 'conserver_int_array(jsonb)',
        'conserver_text_array(jsonb)', 'conserver_strip_nulls(jsonb)',
        'conserver_read_body(text, text)', 'conserver_vcon_check(jsonb)',
        'conserver_vcon_save(jsonb)', 'conserver_vcon_save_many(jsonb)',
        'conserver_vcon_assemble(uuid)', 'conserver_vcon_load(uuid)',
        'conserver_vcon_load_many(jsonb)', 'conserver_vcon_delete(uuid)'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        IF has_anon THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon', fn);
        END IF;
        IF has_service THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;

    REVOKE ALL ON TABLE conserver_vcon_documents FROM PUBLIC;
    IF has_anon THEN
        REVOKE ALL ON TABLE conserver_vcon_documents FROM anon;
    END IF;
    IF has_authenticated THEN
        REVOKE ALL ON TABLE conserver_vcon_documents FROM authenticated;
    END IF;
    IF has_service THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE conserver_vcon_documents TO service_role;
    END IF;
END
$grants$;
