-- conserver-supabase migration 0008: tenants, as vcon-mcp's row-level security sees them.
--
-- vcon-mcp isolates tenants with RLS on tenant_id (policies `<table>_tenant_isolation`
-- FOR ALL TO authenticated: tenant_id IS NULL OR tenant_id = get_current_tenant_id()).
-- Up to 0007 this package never wrote tenant_id. From 0008 a storage configured with a
-- tenant (the `tenant_id` option, or `tenant_from_attachment` as vcon-mcp's RLS_ENABLED
-- does) stamps it on the vcons row AND on every child row it writes.
--
-- How the tenant reaches SQL: Python decides it (the options and the vCon's tenant
-- attachment are policy, kept in one place: conserver_supabase/tenants.py) and passes
-- it NEXT TO the document, never inside it: the document table keeps the exact vCon.
-- New overloads take it as a second argument, one object per vCon:
--
--     {"tenant_id": "acme" | null, "exclusive": true | false}
--
-- * conserver_vcon_save(p_document jsonb, p_tenant jsonb)
-- * conserver_vcon_save_many(p_documents jsonb, p_tenants jsonb)  -- an array, one per vCon
--
-- A NULL p_tenant(s) means "no tenant handling": tenant_id is left as it is (NULL on
-- new rows; vcon-mcp's triggers, where installed, copy the parent's into new child
-- rows). The old one-argument functions are that call, so existing callers (and a
-- storage without tenant options) behave exactly as before. PostgREST tells the
-- overloads apart by their argument names, psycopg by their number.
--
-- Re-saves: the stamp is written on every save, so a vCon whose tenant changed (its
-- tenant attachment changed, or vanished: NULL, as vcon-mcp does) moves with all its
-- rows; the stale-row deletes mean no child row keeps the old tenant. "exclusive"
-- (sent by a storage with a fixed `tenant_id`) refuses that move when the vCon
-- belongs to ANOTHER tenant (a non-NULL tenant_id that differs): the whole call fails
-- with SQLSTATE P0001 and nothing is written. A NULL-tenant vCon may be claimed, as
-- vcon-mcp's policy lets an authenticated user of the tenant update it.
--
-- Ordering: vcon-mcp's BEFORE INSERT triggers overwrite a new child row's tenant_id
-- with vcons.tenant_id (looked up by vcons.id). Inside one statement the sub-statements
-- of a WITH run in an unspecified order, so a child trigger could read the vcons row
-- before the same statement stamped (or created) it. The vcons upsert therefore runs
-- as its own statement first, and the children see the stamped parent whether or not
-- those triggers exist: one more statement per batch, not per vCon.
--
-- conserver_vcon_search also accepts the internal filter "tenant" (added by a storage
-- with a fixed `tenant_id`): only vCons of that tenant or without tenant, the rows
-- vcon-mcp's policy shows an authenticated user of that tenant. A database without
-- 0008 rejects that filter (unknown filter) instead of silently ignoring it.
--
-- Idempotent: safe to run again.

-- The row mapping gains a second argument: the old one-argument form goes (it was
-- internal, called only by the two save functions replaced below).
DROP FUNCTION IF EXISTS conserver_vcon_write(jsonb);

-- The row mapping, for a batch of checked vCons with distinct uuids whose advisory
-- locks the caller holds. Returns {"<uuid>": version, ...}. Not for direct use: it
-- trusts its caller for the checks and the locks. p_tenants: NULL (tenant_id left as
-- it is) or an array, one {"tenant_id", "exclusive"} object per element of p_documents.
--
-- The planner cannot know how many vCons a batch holds (it assumes 100 elements per
-- jsonb_array_elements), so left to itself it hash-joins the stale-row deletes
-- against a Seq Scan of each child table, whose cost grows with the table. Every
-- step here is a per-vCon index probe, so hash and merge joins are off, and one
-- generic plan is kept (replanning the statement on every call made a single save
-- slower than the per-statement function it replaces).
CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb, p_tenants jsonb)
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
    v_stamp  boolean := p_tenants IS NOT NULL;
    v_taken  uuid;
    v_tenant text;
BEGIN
    -- A storage with a fixed tenant does not take another tenant's vCon over.
    IF v_stamp AND jsonb_path_exists(p_tenants, '$[*] ? (@.exclusive == true)') THEN
        SELECT x.u, x.t ->> 'tenant_id' INTO v_taken, v_tenant
          FROM (SELECT (e ->> 'uuid')::uuid AS u, p_tenants -> (o - 1)::integer AS t
                  FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS a (e, o)) AS x
          JOIN vcons old ON old.uuid = x.u
         WHERE coalesce((x.t ->> 'exclusive')::boolean, false)
           AND old.tenant_id IS NOT NULL
           AND old.tenant_id IS DISTINCT FROM x.t ->> 'tenant_id'
         LIMIT 1;
        IF v_taken IS NOT NULL THEN
            RAISE EXCEPTION 'vCon % belongs to another tenant: a save for tenant % does not take it over',
                v_taken, coalesce(quote_literal(v_tenant), 'NULL')
                USING ERRCODE = 'P0001',
                      HINT = 'each tenant''s vCons are saved by that tenant''s storage';
        END IF;
    END IF;

    -- The parent first, in its own statement (see the header: vcon-mcp's child triggers
    -- read it).
    WITH docs AS (
        SELECT (e ->> 'uuid')::uuid AS u, e AS d, p_tenants -> (o - 1)::integer ->> 'tenant_id' AS tenant
          FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS x (e, o)
    )
    INSERT INTO vcons AS v (id, uuid, vcon_version, subject, created_at, updated_at,
                            extensions, critical, redacted, amended, tenant_id)
    SELECT u, u,
           coalesce(d ->> 'vcon', '0.4.0'),
           d ->> 'subject',
           coalesce((d ->> 'created_at')::timestamptz,
                    (SELECT old.created_at FROM vcons old WHERE old.uuid = docs.u), now()),
           coalesce((d ->> 'updated_at')::timestamptz, now()),
           conserver_text_array(d -> 'extensions'),
           conserver_text_array(coalesce(nullif(d -> 'critical', 'null'), d -> 'must_support')),
           coalesce(nullif(d -> 'redacted', 'null'), '{}'),
           coalesce(nullif(d -> 'amended', 'null'), nullif(d -> 'appended', 'null'), '{}'),
           tenant
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
        amended      = EXCLUDED.amended,
        tenant_id    = CASE WHEN v_stamp THEN EXCLUDED.tenant_id ELSE v.tenant_id END;

    WITH docs AS (
        SELECT (e ->> 'uuid')::uuid AS u, e AS d,
               p_tenants -> (o - 1)::integer ->> 'tenant_id' AS tenant,
               coalesce(nullif(e -> 'parties', 'null'), '[]') AS parties,
               coalesce(nullif(e -> 'dialog', 'null'), '[]') AS dialog,
               coalesce(nullif(e -> 'analysis', 'null'), '[]') AS analysis,
               coalesce(nullif(e -> 'attachments', 'null'), '[]') AS attach
          FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS x (e, o)
    ),
    p AS (
        INSERT INTO parties AS p (vcon_id, party_index, tel, sip, stir, mailto, name, did,
                                  validation, jcard, gmlpos, civicaddress, timezone, uuid,
                                  tenant_id)
        SELECT u, (o - 1)::integer, e ->> 'tel', e ->> 'sip', e ->> 'stir', e ->> 'mailto',
               e ->> 'name', e ->> 'did', e ->> 'validation', nullif(e -> 'jcard', 'null'),
               e ->> 'gmlpos', nullif(e -> 'civicaddress', 'null'), e ->> 'timezone', e ->> 'uuid',
               tenant
          FROM docs, jsonb_array_elements(docs.parties) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, party_index) DO UPDATE SET
            tel = EXCLUDED.tel, sip = EXCLUDED.sip, stir = EXCLUDED.stir,
            mailto = EXCLUDED.mailto, name = EXCLUDED.name, did = EXCLUDED.did,
            validation = EXCLUDED.validation, jcard = EXCLUDED.jcard, gmlpos = EXCLUDED.gmlpos,
            civicaddress = EXCLUDED.civicaddress, timezone = EXCLUDED.timezone, uuid = EXCLUDED.uuid,
            tenant_id = CASE WHEN v_stamp THEN EXCLUDED.tenant_id ELSE p.tenant_id END
    ),
    pd AS (
        DELETE FROM parties x USING docs
         WHERE x.vcon_id = docs.u AND x.party_index >= jsonb_array_length(docs.parties)
    ),
    dl AS (
        INSERT INTO dialog AS d (vcon_id, dialog_index, type, start_time, duration_seconds, parties,
                                 originator, mediatype, filename, body, encoding, url, content_hash,
                                 disposition, application, message_id, session_id, transferee,
                                 transferor, transfer_target, original, consultation, target_dialog,
                                 tenant_id)
        SELECT u, (o - 1)::integer, e ->> 'type', (e ->> 'start')::timestamptz,
               (e ->> 'duration')::real, conserver_int_array(e -> 'parties'),
               (e ->> 'originator')::integer, e ->> 'mediatype', e ->> 'filename',
               conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash'), e ->> 'disposition', e ->> 'application',
               e ->> 'message_id', nullif(e -> 'session_id', 'null'), (e ->> 'transferee')::integer,
               (e ->> 'transferor')::integer, conserver_int_array(e -> 'transfer_target'),
               conserver_int_array(e -> 'original'), conserver_int_array(e -> 'consultation'),
               conserver_int_array(e -> 'target_dialog'), tenant
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
            consultation = EXCLUDED.consultation, target_dialog = EXCLUDED.target_dialog,
            tenant_id = CASE WHEN v_stamp THEN EXCLUDED.tenant_id ELSE d.tenant_id END
    ),
    dld AS (
        DELETE FROM dialog x USING docs
         WHERE x.vcon_id = docs.u AND x.dialog_index >= jsonb_array_length(docs.dialog)
    ),
    a AS (
        INSERT INTO analysis AS a (vcon_id, analysis_index, type, dialog_indices, mediatype,
                                   filename, vendor, product, schema, body, encoding, url,
                                   content_hash, tenant_id)
        SELECT u, (o - 1)::integer, e ->> 'type', conserver_int_array(e -> 'dialog'),
               e ->> 'mediatype', e ->> 'filename', e ->> 'vendor', e ->> 'product',
               e ->> 'schema', conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash'), tenant
          FROM docs, jsonb_array_elements(docs.analysis) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, analysis_index) DO UPDATE SET
            type = EXCLUDED.type, dialog_indices = EXCLUDED.dialog_indices,
            mediatype = EXCLUDED.mediatype, filename = EXCLUDED.filename, vendor = EXCLUDED.vendor,
            product = EXCLUDED.product, schema = EXCLUDED.schema, body = EXCLUDED.body,
            encoding = EXCLUDED.encoding, url = EXCLUDED.url, content_hash = EXCLUDED.content_hash,
            tenant_id = CASE WHEN v_stamp THEN EXCLUDED.tenant_id ELSE a.tenant_id END
    ),
    ad AS (
        DELETE FROM analysis x USING docs
         WHERE x.vcon_id = docs.u AND x.analysis_index >= jsonb_array_length(docs.analysis)
    ),
    t AS (
        INSERT INTO attachments AS a (vcon_id, attachment_index, type, purpose, start_time, party,
                                      dialog, mimetype, filename, body, encoding, url,
                                      content_hash, tenant_id)
        SELECT u, (o - 1)::integer, e ->> 'type', e ->> 'purpose', (e ->> 'start')::timestamptz,
               (e ->> 'party')::integer, (e ->> 'dialog')::integer, e ->> 'mediatype',
               e ->> 'filename', conserver_jsonb_text(e -> 'body'), e ->> 'encoding', e ->> 'url',
               conserver_jsonb_text(e -> 'content_hash'), tenant
          FROM docs, jsonb_array_elements(docs.attach) WITH ORDINALITY AS t (e, o)
        ON CONFLICT (vcon_id, attachment_index) DO UPDATE SET
            type = EXCLUDED.type, purpose = EXCLUDED.purpose, start_time = EXCLUDED.start_time,
            party = EXCLUDED.party, dialog = EXCLUDED.dialog, mimetype = EXCLUDED.mimetype,
            filename = EXCLUDED.filename, body = EXCLUDED.body, encoding = EXCLUDED.encoding,
            url = EXCLUDED.url, content_hash = EXCLUDED.content_hash,
            tenant_id = CASE WHEN v_stamp THEN EXCLUDED.tenant_id ELSE a.tenant_id END
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


-- The tenant object of one vCon: NULL, or {"tenant_id": text | null, "exclusive": bool}.
-- (Checked in SQL for callers that bypass Python, as conserver_vcon_check does.)
-- Save one vCon with its tenant: document + vcon-mcp rows in one transaction. Returns
-- the version. p_tenant NULL: tenant_id left as it is (what conserver_vcon_save(jsonb)
-- does).
CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb, p_tenant jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid uuid := conserver_vcon_check(p_document);
BEGIN
    IF p_tenant IS NOT NULL AND jsonb_typeof(p_tenant) <> 'null' AND NOT (
        jsonb_typeof(p_tenant) = 'object'
        AND jsonb_typeof(p_tenant -> 'tenant_id') IN ('string', 'null')
        AND coalesce(jsonb_typeof(p_tenant -> 'exclusive'), 'boolean') = 'boolean'
    ) THEN
        RAISE EXCEPTION 'invalid tenant for vCon %: must be {"tenant_id": text or null, "exclusive": boolean}', v_uuid
            USING ERRCODE = '22023', DETAIL = '(tenant)';
    END IF;
    -- Concurrent first saves of one new uuid would race on both unique indexes of
    -- vcons (id and uuid) and ON CONFLICT can arbitrate only one: serialize saves of
    -- the same uuid on a transaction-scoped advisory lock first.
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || v_uuid::text, 0));
    RETURN (conserver_vcon_write(
        jsonb_build_array(p_document),
        CASE WHEN jsonb_typeof(p_tenant) = 'object' THEN jsonb_build_array(p_tenant) END
    ) ->> v_uuid::text)::bigint;
END
$fn$;

-- Save one vCon, tenant_id left as it is (as before 0008).
CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_save(p_document, NULL::jsonb)
$fn$;

-- Save many vCons (a JSON array) in one transaction: all or nothing.
-- Returns {"<uuid>": version, ...}; a uuid given twice is saved twice, in order.
-- p_tenants: NULL (tenant_id left as it is) or an array as long as p_documents of
-- {"tenant_id", "exclusive"} objects, the n-th for the n-th vCon.
CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb, p_tenants jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_document jsonb;
    v_index    bigint;
    v_uuids    uuid[] := '{}';
    v_result   jsonb := '{}';
BEGIN
    IF jsonb_typeof(p_documents) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid vCon batch: must be a JSON array of vCons'
            USING ERRCODE = '22023', DETAIL = '(batch)';
    END IF;
    IF jsonb_typeof(p_tenants) = 'null' THEN
        p_tenants := NULL;
    END IF;
    IF p_tenants IS NOT NULL AND (jsonb_typeof(p_tenants) <> 'array'
                                  OR jsonb_array_length(p_tenants) <> jsonb_array_length(p_documents)) THEN
        RAISE EXCEPTION 'invalid vCon batch: the tenants must be an array with one entry per vCon'
            USING ERRCODE = '22023', DETAIL = '(tenants)';
    END IF;
    FOR v_document IN SELECT e FROM jsonb_array_elements(p_documents) AS e LOOP
        v_uuids := v_uuids || conserver_vcon_check(v_document);
    END LOOP;
    IF cardinality(v_uuids) > (SELECT count(DISTINCT x) FROM unnest(v_uuids) AS x) THEN
        FOR v_document, v_index IN
            SELECT e, o FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS t (e, o)
        LOOP
            v_result := v_result || jsonb_build_object(
                lower(v_document ->> 'uuid'),
                conserver_vcon_save(v_document, p_tenants -> (v_index - 1)::integer));
        END LOOP;
        RETURN v_result;
    END IF;
    IF p_tenants IS NOT NULL THEN  -- the same checks as the single save's
        FOR v_document, v_index IN
            SELECT e, o FROM jsonb_array_elements(p_tenants) WITH ORDINALITY AS t (e, o)
        LOOP
            IF NOT (jsonb_typeof(v_document) = 'object'
                    AND jsonb_typeof(v_document -> 'tenant_id') IN ('string', 'null')
                    AND coalesce(jsonb_typeof(v_document -> 'exclusive'), 'boolean') = 'boolean') THEN
                RAISE EXCEPTION 'invalid tenant for vCon %: must be {"tenant_id": text or null, "exclusive": boolean}',
                    v_uuids[v_index]
                    USING ERRCODE = '22023', DETAIL = '(tenant)';
            END IF;
        END LOOP;
    END IF;
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT hashtextextended('conserver_vcon:' || x::text, 0) AS k
               FROM unnest(v_uuids) AS x ORDER BY 1) AS keys;
    RETURN conserver_vcon_write(p_documents, p_tenants);
END
$fn$;

-- Save many vCons, tenant_id left as it is (as before 0008).
CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_save_many(p_documents, NULL::jsonb)
$fn$;

-- ---------------------------------------------------------------------------
-- conserver_vcon_search as in 0004, plus the filter "tenant" (see the header).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION conserver_vcon_search(p_query jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f jsonb := coalesce(p_query -> 'filters', '{}'::jsonb);
    lim integer;
    conds text[] := ARRAY['true'];
    analysis_conds text[] := ARRAY[]::text[];
    name text;
    result jsonb;
BEGIN
    IF jsonb_typeof(f) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid search: filters must be a JSON object'
            USING ERRCODE = '22023', DETAIL = 'filters';
    END IF;
    FOR name IN SELECT jsonb_object_keys(f) LOOP
        IF name NOT IN ('text', 'subject', 'tel', 'mailto', 'name', 'party_uuid', 'tags',
                        'created_after', 'created_before', 'updated_after', 'updated_before',
                        'dialog_type', 'analysis_type', 'analysis_vendor', 'tenant') THEN
            RAISE EXCEPTION 'invalid search: unknown filter %', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
        IF name = 'tags' THEN
            IF jsonb_typeof(f -> name) <> 'array' OR EXISTS (
                SELECT FROM jsonb_array_elements(f -> name) AS e WHERE jsonb_typeof(e) <> 'string'
            ) THEN
                RAISE EXCEPTION 'invalid search: tags must be an array of "key:value" strings'
                    USING ERRCODE = '22023', DETAIL = name;
            END IF;
        ELSIF jsonb_typeof(f -> name) <> 'string' THEN
            RAISE EXCEPTION 'invalid search: % must be a string', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
    END LOOP;
    lim := coalesce((p_query ->> 'limit')::integer, 50);
    IF lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'invalid search: limit must be between 1 and 1000'
            USING ERRCODE = '22023', DETAIL = 'limit';
    END IF;

    IF f ? 'text' THEN
        -- = ANY (ARRAY(...)): the matches are collected first (four GIN lookups) and
        -- then fetched by uuid; "IN (...)" let the planner hash-join them against a full
        -- scan of vcons (measured by scripts/bench_search.py).
        conds := array_append(conds, $c$v.uuid = ANY (ARRAY(
            SELECT x.uuid FROM vcons x
             WHERE x.subject_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
            UNION
            SELECT p.vcon_id FROM parties p
             WHERE p.party_tsvector @@ websearch_to_tsquery('simple', $1 #>> '{filters,text}')
            UNION
            SELECT d.vcon_id FROM dialog d
             WHERE d.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND d.type = 'text' AND coalesce(d.encoding, 'none') NOT IN ('base64url', 'base64')
            UNION
            SELECT a.vcon_id FROM analysis a
             WHERE a.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND coalesce(a.encoding, 'none') NOT IN ('base64url', 'base64')))$c$);
    END IF;
    IF f ? 'tenant' THEN
        -- vcon-mcp's policy for an authenticated user of that tenant: its rows and the
        -- rows without tenant.
        conds := array_append(conds, $c$(v.tenant_id IS NULL
            OR v.tenant_id = $1 #>> '{filters,tenant}')$c$);
    END IF;
    IF f ? 'subject' THEN
        conds := array_append(conds, $c$v.subject ILIKE
            '%' || conserver_like_literal($1 #>> '{filters,subject}') || '%'$c$);
    END IF;
    IF f ? 'tel' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_tel_digits(p.tel) = conserver_tel_digits($1 #>> '{filters,tel}'))$c$);
    END IF;
    IF f ? 'mailto' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_mailto_key(p.mailto)
                = conserver_mailto_key($1 #>> '{filters,mailto}'))$c$);
    END IF;
    IF f ? 'name' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE p.name ILIKE '%' || conserver_like_literal($1 #>> '{filters,name}') || '%')$c$);
    END IF;
    IF f ? 'party_uuid' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE lower(p.uuid) = lower($1 #>> '{filters,party_uuid}'))$c$);
    END IF;
    IF f ? 'tags' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT t.vcon_id FROM attachments t
            WHERE t.type = 'tags' AND conserver_tags(t.body)
                @> ARRAY(SELECT jsonb_array_elements_text($1 #> '{filters,tags}')))$c$);
    END IF;
    IF f ? 'created_after' THEN
        conds := array_append(conds, $c$v.created_at >= ($1 #>> '{filters,created_after}')::timestamptz$c$);
    END IF;
    IF f ? 'created_before' THEN
        conds := array_append(conds, $c$v.created_at < ($1 #>> '{filters,created_before}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_after' THEN
        conds := array_append(conds, $c$v.updated_at >= ($1 #>> '{filters,updated_after}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_before' THEN
        conds := array_append(conds, $c$v.updated_at < ($1 #>> '{filters,updated_before}')::timestamptz$c$);
    END IF;
    IF f ? 'dialog_type' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT d.vcon_id FROM dialog d
            WHERE d.type = $1 #>> '{filters,dialog_type}')$c$);
    END IF;
    IF f ? 'analysis_type' THEN
        analysis_conds := array_append(analysis_conds, $c$a.type = $1 #>> '{filters,analysis_type}'$c$);
    END IF;
    IF f ? 'analysis_vendor' THEN
        analysis_conds := array_append(analysis_conds, $c$a.vendor = $1 #>> '{filters,analysis_vendor}'$c$);
    END IF;
    IF cardinality(analysis_conds) > 0 THEN
        conds := conds || format('v.uuid IN (SELECT a.vcon_id FROM analysis a WHERE %s)',
                                 array_to_string(analysis_conds, ' AND '));
    END IF;
    IF jsonb_typeof(p_query -> 'after') = 'object' THEN
        conds := array_append(conds, $c$(v.created_at, v.uuid) < (($1 #>> '{after,created_at}')::timestamptz,
                                                    ($1 #>> '{after,uuid}')::uuid)$c$);
    END IF;

    EXECUTE format($q$
        WITH page AS (
            SELECT v.uuid, v.created_at,
                   row_number() OVER (ORDER BY v.created_at DESC, v.uuid DESC) AS n
              FROM (SELECT v.uuid, v.created_at FROM vcons v
                     WHERE %s
                     ORDER BY v.created_at DESC, v.uuid DESC
                     LIMIT $2 + 1) AS v)
        SELECT jsonb_build_object(
            'uuids', coalesce(jsonb_agg(page.uuid ORDER BY page.n) FILTER (WHERE page.n <= $2),
                              '[]'::jsonb),
            'vcons', CASE WHEN coalesce(($1 ->> 'include_vcons')::boolean, false) THEN
                coalesce(jsonb_agg(conserver_vcon_load(page.uuid) ORDER BY page.n)
                         FILTER (WHERE page.n <= $2), '[]'::jsonb) END,
            'more', count(*) > $2,
            'last', (SELECT jsonb_build_object('created_at', l.created_at, 'uuid', l.uuid)
                       FROM page l WHERE l.n = $2))
          FROM page$q$, array_to_string(conds, ' AND '))
    INTO result
    USING p_query, lim;
    RETURN result;
END
$fn$;

-- Privileges as for the other functions: service_role (and the owner) only.
DO $grants$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'conserver_vcon_write(jsonb, jsonb)'::regprocedure,
        'conserver_vcon_save(jsonb, jsonb)'::regprocedure,
        'conserver_vcon_save(jsonb)'::regprocedure,
        'conserver_vcon_save_many(jsonb, jsonb)'::regprocedure,
        'conserver_vcon_save_many(jsonb)'::regprocedure,
        'conserver_vcon_search(jsonb)'::regprocedure
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon', fn);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM authenticated', fn);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;
END
$grants$;
