-- conserver-supabase migration 0007: set-based saves.
--
-- Before 0007, conserver_vcon_save ran about a dozen statements per vCon (the upsert
-- and the stale-row delete of each table one after the other) and
-- conserver_vcon_save_many called it once per vCon. make bench measured the cost of
-- that per-statement work: save_many at 0.48 of the database floor (one set-based
-- INSERT ... SELECT per batch). From 0007 the row mapping lives in one function,
-- conserver_vcon_write, which writes a whole batch in ONE statement (data-modifying
-- CTEs: every table's upsert and stale-row delete, and the document); the two public
-- functions check, lock and call it:
--
-- * conserver_vcon_save(doc): check, the per-uuid advisory lock, write [doc];
-- * conserver_vcon_save_many(docs): check every vCon first (a bad one fails the batch
--   before anything is written), take the advisory locks of all uuids in one fixed
--   order (two batches sharing uuids cannot deadlock), write the batch. A batch that
--   names a uuid twice is saved one vCon after the other, as before (the same row
--   cannot be upserted twice in one statement).
--
-- What is stored is unchanged: the same columns from the same expressions. A vCon
-- saved without created_at keeps the created_at it has (the lock is held, so the row
-- read is the row updated).
--
-- conserver_vcon_check answers the common case (every element of every array is an
-- object) with one jsonpath test per array instead of a query per array.
--
-- Idempotent: safe to run again.

-- Structural guards for callers that bypass the Python validator (as in 0002).
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
        CONTINUE WHEN NOT jsonb_path_exists(v_array, '$[*] ? (@.type() != "object")');
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

-- The row mapping, for a batch of checked vCons with distinct uuids whose advisory
-- locks the caller holds. Returns {"<uuid>": version, ...}. Not for direct use: it
-- trusts its caller for the checks and the locks.
--
-- The planner cannot know how many vCons a batch holds (it assumes 100 elements per
-- jsonb_array_elements), so left to itself it hash-joins the stale-row deletes
-- against a Seq Scan of each child table, whose cost grows with the table. Every
-- step here is a per-vCon index probe, so hash and merge joins are off, and one
-- generic plan is kept (replanning the statement on every call made a single save
-- slower than the per-statement function it replaces).
CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
SET enable_hashjoin TO off
SET enable_mergejoin TO off
SET plan_cache_mode TO force_generic_plan
AS $fn$
DECLARE
    v_result jsonb;
BEGIN
    WITH docs AS (
        SELECT (e ->> 'uuid')::uuid AS u, e AS d,
               coalesce(nullif(e -> 'parties', 'null'), '[]') AS parties,
               coalesce(nullif(e -> 'dialog', 'null'), '[]') AS dialog,
               coalesce(nullif(e -> 'analysis', 'null'), '[]') AS analysis,
               coalesce(nullif(e -> 'attachments', 'null'), '[]') AS attach
          FROM jsonb_array_elements(p_documents) AS e
    ),
    v AS (
        INSERT INTO vcons AS v (id, uuid, vcon_version, subject, created_at, updated_at,
                                extensions, critical, redacted, amended)
        SELECT u, u,
               coalesce(d ->> 'vcon', '0.4.0'),
               d ->> 'subject',
               coalesce((d ->> 'created_at')::timestamptz,
                        (SELECT old.created_at FROM vcons old WHERE old.uuid = docs.u), now()),
               coalesce((d ->> 'updated_at')::timestamptz, now()),
               conserver_text_array(d -> 'extensions'),
               conserver_text_array(coalesce(nullif(d -> 'critical', 'null'), d -> 'must_support')),
               coalesce(nullif(d -> 'redacted', 'null'), '{}'),
               coalesce(nullif(d -> 'amended', 'null'), nullif(d -> 'appended', 'null'), '{}')
          FROM docs
        ON CONFLICT (uuid) DO UPDATE SET
            id           = EXCLUDED.id,
            vcon_version = EXCLUDED.vcon_version,
            subject      = EXCLUDED.subject,
            created_at   = EXCLUDED.created_at,
            updated_at   = EXCLUDED.updated_at,
            extensions   = EXCLUDED.extensions,
            critical     = EXCLUDED.critical,
            redacted     = EXCLUDED.redacted,
            amended      = EXCLUDED.amended
    ),
    p AS (
        INSERT INTO parties AS p (vcon_id, party_index, tel, sip, stir, mailto, name, did,
                                  validation, jcard, gmlpos, civicaddress, timezone, uuid)
        SELECT u, (o - 1)::integer, e ->> 'tel', e ->> 'sip', e ->> 'stir', e ->> 'mailto',
               e ->> 'name', e ->> 'did', e ->> 'validation', nullif(e -> 'jcard', 'null'),
               e ->> 'gmlpos', nullif(e -> 'civicaddress', 'null'), e ->> 'timezone', e ->> 'uuid'
          FROM docs, jsonb_array_elements(docs.parties) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, party_index) DO UPDATE SET
            tel = EXCLUDED.tel, sip = EXCLUDED.sip, stir = EXCLUDED.stir,
            mailto = EXCLUDED.mailto, name = EXCLUDED.name, did = EXCLUDED.did,
            validation = EXCLUDED.validation, jcard = EXCLUDED.jcard, gmlpos = EXCLUDED.gmlpos,
            civicaddress = EXCLUDED.civicaddress, timezone = EXCLUDED.timezone, uuid = EXCLUDED.uuid
    ),
    pd AS (
        DELETE FROM parties x USING docs
         WHERE x.vcon_id = docs.u AND x.party_index >= jsonb_array_length(docs.parties)
    ),
    dl AS (
        INSERT INTO dialog AS d (vcon_id, dialog_index, type, start_time, duration_seconds, parties,
                                 originator, mediatype, filename, body, encoding, url, content_hash,
                                 disposition, application, message_id, session_id, transferee,
                                 transferor, transfer_target, original, consultation, target_dialog)
        SELECT u, (o - 1)::integer, e ->> 'type', (e ->> 'start')::timestamptz,
               (e ->> 'duration')::real, conserver_int_array(e -> 'parties'),
               (e ->> 'originator')::integer, e ->> 'mediatype', e ->> 'filename',
               conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash'), e ->> 'disposition', e ->> 'application',
               e ->> 'message_id', nullif(e -> 'session_id', 'null'), (e ->> 'transferee')::integer,
               (e ->> 'transferor')::integer, conserver_int_array(e -> 'transfer_target'),
               conserver_int_array(e -> 'original'), conserver_int_array(e -> 'consultation'),
               conserver_int_array(e -> 'target_dialog')
          FROM docs, jsonb_array_elements(docs.dialog) WITH ORDINALITY AS t (e, o)
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
            consultation = EXCLUDED.consultation, target_dialog = EXCLUDED.target_dialog
    ),
    dld AS (
        DELETE FROM dialog x USING docs
         WHERE x.vcon_id = docs.u AND x.dialog_index >= jsonb_array_length(docs.dialog)
    ),
    a AS (
        INSERT INTO analysis AS a (vcon_id, analysis_index, type, dialog_indices, mediatype,
                                   filename, vendor, product, schema, body, encoding, url,
                                   content_hash)
        SELECT u, (o - 1)::integer, e ->> 'type', conserver_int_array(e -> 'dialog'),
               e ->> 'mediatype', e ->> 'filename', e ->> 'vendor', e ->> 'product',
               e ->> 'schema', conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash')
          FROM docs, jsonb_array_elements(docs.analysis) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, analysis_index) DO UPDATE SET
            type = EXCLUDED.type, dialog_indices = EXCLUDED.dialog_indices,
            mediatype = EXCLUDED.mediatype, filename = EXCLUDED.filename, vendor = EXCLUDED.vendor,
            product = EXCLUDED.product, schema = EXCLUDED.schema, body = EXCLUDED.body,
            encoding = EXCLUDED.encoding, url = EXCLUDED.url, content_hash = EXCLUDED.content_hash
    ),
    ad AS (
        DELETE FROM analysis x USING docs
         WHERE x.vcon_id = docs.u AND x.analysis_index >= jsonb_array_length(docs.analysis)
    ),
    t AS (
        INSERT INTO attachments AS a (vcon_id, attachment_index, type, purpose, start_time, party,
                                      dialog, mimetype, filename, body, encoding, url,
                                      content_hash)
        SELECT u, (o - 1)::integer, e ->> 'type', e ->> 'purpose', (e ->> 'start')::timestamptz,
               (e ->> 'party')::integer, (e ->> 'dialog')::integer, e ->> 'mediatype',
               e ->> 'filename', conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash')
          FROM docs, jsonb_array_elements(docs.attach) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, attachment_index) DO UPDATE SET
            type = EXCLUDED.type, purpose = EXCLUDED.purpose, start_time = EXCLUDED.start_time,
            party = EXCLUDED.party, dialog = EXCLUDED.dialog, mimetype = EXCLUDED.mimetype,
            filename = EXCLUDED.filename, body = EXCLUDED.body, encoding = EXCLUDED.encoding,
            url = EXCLUDED.url, content_hash = EXCLUDED.content_hash
    ),
    td AS (
        DELETE FROM attachments x USING docs
         WHERE x.vcon_id = docs.u AND x.attachment_index >= jsonb_array_length(docs.attach)
    ),
    saved AS (
        INSERT INTO conserver_vcon_documents AS doc (uuid, document, version, content_hash)
        SELECT u, d, 1, encode(sha256(convert_to(d::text, 'UTF8')), 'hex') FROM docs
        ON CONFLICT (uuid) DO UPDATE SET
            document     = EXCLUDED.document,
            version      = doc.version + 1,
            content_hash = EXCLUDED.content_hash,
            updated_at   = now()
        RETURNING doc.uuid, doc.version
    )
    SELECT coalesce(jsonb_object_agg(saved.uuid::text, saved.version), '{}') INTO v_result FROM saved;
    RETURN v_result;
END
$fn$;

-- Save one vCon: document + vcon-mcp rows in one transaction. Returns the version.
CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid uuid := conserver_vcon_check(p_document);
BEGIN
    -- Concurrent first saves of one new uuid would race on both unique indexes of
    -- vcons (id and uuid) and ON CONFLICT can arbitrate only one: serialize saves of
    -- the same uuid on a transaction-scoped advisory lock first.
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || v_uuid::text, 0));
    RETURN (conserver_vcon_write(jsonb_build_array(p_document)) ->> v_uuid::text)::bigint;
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
    v_uuids    uuid[] := '{}';
    v_result   jsonb := '{}';
BEGIN
    IF jsonb_typeof(p_documents) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid vCon batch: must be a JSON array of vCons'
            USING ERRCODE = '22023', DETAIL = '(batch)';
    END IF;
    FOR v_document IN SELECT e FROM jsonb_array_elements(p_documents) AS e LOOP
        v_uuids := v_uuids || conserver_vcon_check(v_document);
    END LOOP;
    IF cardinality(v_uuids) > (SELECT count(DISTINCT x) FROM unnest(v_uuids) AS x) THEN
        FOR v_document IN SELECT e FROM jsonb_array_elements(p_documents) AS e LOOP
            v_result := v_result || jsonb_build_object(
                lower(v_document ->> 'uuid'), conserver_vcon_save(v_document));
        END LOOP;
        RETURN v_result;
    END IF;
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT hashtextextended('conserver_vcon:' || x::text, 0) AS k
               FROM unnest(v_uuids) AS x ORDER BY 1) AS keys;
    RETURN conserver_vcon_write(p_documents);
END
$fn$;

-- Privileges as for the other functions: service_role (and the owner) only.
DO $grants$
BEGIN
    REVOKE ALL ON FUNCTION conserver_vcon_write(jsonb) FROM PUBLIC;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION conserver_vcon_write(jsonb) FROM anon;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION conserver_vcon_write(jsonb) FROM authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION conserver_vcon_write(jsonb) TO service_role;
    END IF;
END
$grants$;
