-- conserver_vcon_write(jsonb[], jsonb, jsonb, jsonb) -> jsonb
-- conserver_vcon_write(jsonb, jsonb, jsonb, jsonb) -> jsonb
-- conserver_vcon_write(jsonb, jsonb, jsonb) -> jsonb
-- conserver_vcon_write(jsonb, jsonb) -> jsonb
--
-- The row mapping, for a batch of checked vCons with distinct uuids whose advisory
-- locks the caller holds (conserver_vcon_save and conserver_vcon_save_many). Returns
-- {"<uuid>": version, ...}, plus "merged": {"<uuid>": vCon, ...} for the vCons it
-- merged (below). Not for direct use: it trusts its caller for the checks and the
-- locks. p_tenants: NULL (tenant_id left as it is) or an array, one {"tenant_id",
-- "exclusive"} object per element of p_documents. p_bases: NULL or {"<uuid>": n}, the
-- version each copy was read at where the caller knows it (a hint, see below).
-- p_texts: NULL or an array, one element per element of p_documents: the exact JSON
-- text that document was given as (a JSON string), or null where there is none; it is
-- kept in document_text (migration 0006) and conserver_vcon_read returns it. A merged
-- vCon keeps none (what it was given is not what is stored). The first form takes the
-- documents as a PostgreSQL array (what conserver_vcon_save and conserver_vcon_save_many
-- call: building a jsonb array of a batch rebuilds every document in it, an array only
-- points at them); the second is that call with a JSON array, the three- and
-- two-argument forms the calls with no texts, and no bases.
--
-- Conflicts (docs/database.md, "Conflicts"): a vCon whose rows another writer changed
-- since our last save (version <> document_version, or a head row) is saved as
-- conserver_vcon_rebase merges it (ours, theirs, and our stored document as the base;
-- a conflict raises CSC01 and nothing is written), unless the copy was read at the
-- head version or later (p_bases: it already holds every foreign change). The common
-- case reads nothing more than the head versions it read before.
--
-- What it writes (docs/database.md): the vcons row (id = uuid), the parties, dialog,
-- analysis and attachments rows upserted by index with the rows past the new array
-- lengths deleted, and the document row whose version grows by one per save. With
-- tenants, tenant_id is stamped on the vcons row AND on every child row, on every save,
-- so a vCon whose tenant changed moves with all its rows; "exclusive" refuses (SQLSTATE
-- P0001, nothing written) to take over a vCon that belongs to ANOTHER tenant (a
-- non-NULL tenant_id that differs). A vCon saved without created_at keeps the one it
-- has (the caller holds the lock, so the row read is the row updated).
--
-- Other writers (issue 16): the function runs with conserver_supabase.writing = on (its
-- SET clause, undone when it returns), so the change-feed triggers on the row tables skip
-- its statements; the document upsert records the save (conserver_vcon_record_change) and
-- sets document_version = version: the document is what the rows say. The document rows
-- are written LAST, in their own statement, in uuid order: another writer's statement
-- takes its row locks first and the document row's last (its AFTER trigger raises the
-- head version), so a save that held a document row while waiting for a child row could
-- deadlock with it. If another writer raised the version after this save read it (it
-- committed rows this save may have overwritten, or that the merge did not see), the
-- save raises SQLSTATE 40001 and writes nothing: a retry merges that change.
--
-- The vcons upsert runs as its own statement, before the children's: vcon-mcp's BEFORE
-- INSERT triggers overwrite a new child row's tenant_id with vcons.tenant_id (looked up
-- by vcons.id), and inside one statement the sub-statements of a WITH run in an
-- unspecified order, so a child trigger could read the parent before it was stamped.
--
-- The planner cannot know how many vCons a batch holds (it assumes 100 elements per
-- jsonb_array_elements), so left to itself it hash-joins the stale-row deletes
-- against a Seq Scan of each child table, whose cost grows with the table. Every
-- step here is a per-vCon index probe, so hash and merge joins are off, and one
-- generic plan is kept (replanning the statement on every call made a single save
-- slower than the per-statement function it replaces).
--
-- The column mappings of conserver_int_array, conserver_jsonb_text and
-- conserver_text_array are written out here (each CASE names the helper it is): a call of
-- such a function (SET search_path keeps PostgreSQL from inlining it) starts an executor
-- of its own, and a batch of 500 vCons made about 17,000 of them, a tenth of the write
-- (docs/performance.md, "Where a save's time goes"). The values are the helpers' (tested:
-- tests/acceptance/test_write_columns.py).

CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb[], p_tenants jsonb, p_bases jsonb,
                                                p_texts jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
SET enable_hashjoin TO off
SET enable_mergejoin TO off
SET plan_cache_mode TO force_generic_plan
SET conserver_supabase.writing TO 'on'
AS $fn$
DECLARE
    v_before jsonb;
    v_moved  boolean;
    v_raced  text;
    v_merged jsonb;
    v_rows   bigint;
    v_result jsonb;
    v_stamp  boolean := p_tenants IS NOT NULL;
    v_taken  uuid;
    v_tenant text;
    v_docs   jsonb[];
    v_uuids  uuid[];
    v_at     integer[];
BEGIN
    -- The batch in uuid order, once, as arrays: every statement below reads it through
    -- unnest (no jsonb array taken apart and built again per statement) and takes its
    -- row locks in the order the change-feed triggers take theirs. v_at[i] is the
    -- position of v_docs[i] in p_documents, where its tenant and text are.
    SELECT array_agg(e ORDER BY u, o), array_agg(u ORDER BY u, o), array_agg(o::integer ORDER BY u, o)
      INTO v_docs, v_uuids, v_at
      FROM (SELECT e, (e ->> 'uuid')::uuid AS u, o
              FROM unnest(p_documents) WITH ORDINALITY AS a (e, o)) AS x;

    -- A storage with a fixed tenant does not take another tenant's vCon over.
    IF v_stamp AND jsonb_path_exists(p_tenants, '$[*] ? (@.exclusive == true)') THEN
        SELECT x.u, x.t ->> 'tenant_id' INTO v_taken, v_tenant
          FROM (SELECT u, p_tenants -> (o - 1) AS t FROM unnest(v_uuids, v_at) AS a (u, o)) AS x
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

    -- The head versions before anything is written (see the header), and whether
    -- another writer changed a vCon since our last save of it.
    SELECT jsonb_object_agg(doc.uuid::text, doc.version),
           bool_or(doc.version IS DISTINCT FROM doc.document_version OR doc.document IS NULL)
      INTO v_before, v_moved
      FROM conserver_vcon_documents doc
     WHERE doc.uuid = ANY (v_uuids);

    -- Those vCons: ours merged with theirs (see the header), in the batch's order.
    IF v_moved THEN
        -- (A CASE, not a WHERE: the planner may compute a lateral subquery's output
        -- before its condition; OFFSET 0: merged once, not once per reference.)
        SELECT array_agg(coalesce(m.merged, m.e) ORDER BY m.i),
               jsonb_object_agg(m.u::text, m.merged) FILTER (WHERE m.merged <> m.e)
          INTO v_docs, v_merged
          FROM (SELECT x.e, x.u, x.i,
                       CASE WHEN (doc.version IS DISTINCT FROM doc.document_version OR doc.document IS NULL)
                                 AND coalesce((p_bases ->> x.u::text)::bigint, 0) < doc.version
                            THEN conserver_vcon_rebase(x.e, doc.document, doc.updated_at) END AS merged
                  FROM unnest(v_docs, v_uuids) WITH ORDINALITY AS x (e, u, i)
                  LEFT JOIN conserver_vcon_documents doc ON doc.uuid = x.u
                OFFSET 0) AS m;
    END IF;

    -- A row another writer made with id <> uuid gets id = uuid (vcon-mcp joins children
    -- on vcons.id), here and not in the upsert below: an upsert that assigns id, a key
    -- column, locks the row FOR UPDATE even when the value stays, and that lock blocks
    -- the foreign-key check of another writer's child insert, which then holds the child
    -- row this save waits for (a deadlock). Without it the upsert locks FOR NO KEY UPDATE.
    UPDATE vcons v SET id = v.uuid
     WHERE v.uuid = ANY (v_uuids) AND v.id <> v.uuid;

    -- The parent first, in its own statement (see the header: vcon-mcp's child triggers
    -- read it).
    WITH docs AS (
        SELECT u, e AS d, p_tenants -> (o - 1) ->> 'tenant_id' AS tenant
          FROM unnest(v_docs, v_uuids, v_at) AS x (e, u, o)
    )
    INSERT INTO vcons AS v (id, uuid, vcon_version, subject, created_at, updated_at,
                            extensions, critical, redacted, amended, tenant_id)
    SELECT u, u,
           coalesce(d ->> 'vcon', '0.4.0'),
           d ->> 'subject',
           coalesce((d ->> 'created_at')::timestamptz,
                    (SELECT old.created_at FROM vcons old WHERE old.uuid = docs.u), now()),
           coalesce((d ->> 'updated_at')::timestamptz, now()),
           CASE jsonb_typeof(d -> 'extensions')  -- conserver_text_array(d -> 'extensions')
                WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(d -> 'extensions')) END,
           CASE jsonb_typeof(critical)  -- conserver_text_array(critical)
                WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(critical)) END,
           coalesce(nullif(d -> 'redacted', 'null'), '{}'),
           coalesce(nullif(d -> 'amended', 'null'), nullif(d -> 'appended', 'null'), '{}'),
           tenant
      FROM docs,
           LATERAL (SELECT coalesce(nullif(d -> 'critical', 'null'), d -> 'must_support')) AS c (critical)
    ON CONFLICT (uuid) DO UPDATE SET
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
        SELECT u, e AS d,
               p_tenants -> (o - 1) ->> 'tenant_id' AS tenant,
               coalesce(nullif(e -> 'parties', 'null'), '[]') AS parties,
               coalesce(nullif(e -> 'dialog', 'null'), '[]') AS dialog,
               coalesce(nullif(e -> 'analysis', 'null'), '[]') AS analysis,
               coalesce(nullif(e -> 'attachments', 'null'), '[]') AS attach
          FROM unnest(v_docs, v_uuids, v_at) AS x (e, u, o)
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
               (e ->> 'duration')::real,
               CASE jsonb_typeof(e -> 'parties')  -- conserver_int_array(e -> 'parties')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'parties') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'parties')::integer] END,
               (e ->> 'originator')::integer, coalesce(e ->> 'mediatype', e ->> 'mimetype'),
               e ->> 'filename',
               CASE jsonb_typeof(e -> 'body')  -- conserver_jsonb_text(e -> 'body')
                   WHEN 'string' THEN e ->> 'body' WHEN 'null' THEN NULL ELSE (e -> 'body')::text END,
               e ->> 'encoding', e ->> 'url',
               CASE jsonb_typeof(e -> 'content_hash')  -- conserver_jsonb_text(e -> 'content_hash')
                   WHEN 'string' THEN e ->> 'content_hash' WHEN 'null' THEN NULL ELSE (e -> 'content_hash')::text END,
               e ->> 'disposition', e ->> 'application',
               e ->> 'message_id', nullif(e -> 'session_id', 'null'), (e ->> 'transferee')::integer,
               (e ->> 'transferor')::integer,
               CASE jsonb_typeof(e -> 'transfer_target')  -- conserver_int_array(e -> 'transfer_target')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'transfer_target') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'transfer_target')::integer] END,
               CASE jsonb_typeof(e -> 'original')  -- conserver_int_array(e -> 'original')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'original') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'original')::integer] END,
               CASE jsonb_typeof(e -> 'consultation')  -- conserver_int_array(e -> 'consultation')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'consultation') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'consultation')::integer] END,
               CASE jsonb_typeof(e -> 'target_dialog')  -- conserver_int_array(e -> 'target_dialog')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'target_dialog') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'target_dialog')::integer] END,
               tenant
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
        SELECT u, (o - 1)::integer, e ->> 'type',
               CASE jsonb_typeof(e -> 'dialog')  -- conserver_int_array(e -> 'dialog')
                   WHEN 'array' THEN ARRAY(SELECT x::integer FROM jsonb_array_elements_text(e -> 'dialog') AS x)
                   WHEN 'number' THEN ARRAY[(e ->> 'dialog')::integer] END,
               coalesce(e ->> 'mediatype', e ->> 'mimetype'), e ->> 'filename', e ->> 'vendor',
               e ->> 'product', coalesce(e ->> 'schema', e ->> 'schema_version'),
               CASE jsonb_typeof(e -> 'body')  -- conserver_jsonb_text(e -> 'body')
                   WHEN 'string' THEN e ->> 'body' WHEN 'null' THEN NULL ELSE (e -> 'body')::text END,
               e ->> 'encoding', e ->> 'url',
               CASE jsonb_typeof(e -> 'content_hash')  -- conserver_jsonb_text(e -> 'content_hash')
                   WHEN 'string' THEN e ->> 'content_hash' WHEN 'null' THEN NULL ELSE (e -> 'content_hash')::text END,
               tenant
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
               (e ->> 'party')::integer, (e ->> 'dialog')::integer,
               coalesce(e ->> 'mediatype', e ->> 'mimetype'),
               e ->> 'filename',
               CASE jsonb_typeof(e -> 'body')  -- conserver_jsonb_text(e -> 'body')
                   WHEN 'string' THEN e ->> 'body' WHEN 'null' THEN NULL ELSE (e -> 'body')::text END,
               e ->> 'encoding', e ->> 'url',
               CASE jsonb_typeof(e -> 'content_hash')  -- conserver_jsonb_text(e -> 'content_hash')
                   WHEN 'string' THEN e ->> 'content_hash' WHEN 'null' THEN NULL ELSE (e -> 'content_hash')::text END,
               tenant
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
    )
    SELECT count(*) INTO v_rows FROM docs;

    -- The document rows last, in uuid order (see the header), each with its exact text
    -- (none for a merged one).
    WITH docs AS (
        SELECT u, e AS d,
               CASE WHEN (v_merged IS NULL OR NOT v_merged ? u::text)
                         AND jsonb_typeof(p_texts -> (o - 1)) = 'string'
                    THEN (p_texts -> (o - 1)) #>> '{}' END AS exact
          FROM unnest(v_docs, v_uuids, v_at) AS x (e, u, o)
    ),
    saved AS (
        INSERT INTO conserver_vcon_documents AS doc (uuid, document, document_text, version,
                                                     content_hash)
        SELECT u, d, exact, 1, encode(sha256(convert_to(d::text, 'UTF8')), 'hex')
          FROM docs ORDER BY u
        ON CONFLICT (uuid) DO UPDATE SET
            document         = EXCLUDED.document,
            document_text    = EXCLUDED.document_text,
            version          = doc.version + 1,
            document_version = CASE WHEN doc.version = (v_before ->> doc.uuid::text)::bigint
                                    THEN doc.version + 1 ELSE doc.version END,
            content_hash     = EXCLUDED.content_hash,
            updated_at       = now()
        RETURNING doc.uuid, doc.version, doc.document_version
    )
    SELECT coalesce(jsonb_object_agg(saved.uuid::text, saved.version), '{}'),
           string_agg(saved.uuid::text, ', ' ORDER BY saved.uuid)
               FILTER (WHERE saved.document_version IS DISTINCT FROM saved.version)
      INTO v_result, v_raced FROM saved;
    IF v_raced IS NOT NULL THEN
        -- Another writer committed a change of one of these vCons after this save read
        -- its head version: the rows written may have overwritten it, or the merge did
        -- not see it. Nothing is written; a retry merges it.
        RAISE EXCEPTION 'another writer changed vCon % during this save', v_raced
            USING ERRCODE = '40001',
                  HINT = 'nothing was written; saving again merges that change';
    END IF;
    IF v_merged IS NOT NULL THEN
        v_result := v_result || jsonb_build_object('merged', v_merged);
    END IF;
    RETURN v_result;
END
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb, p_tenants jsonb, p_bases jsonb,
                                                p_texts jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_write(
        ARRAY(SELECT e FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS a (e, o) ORDER BY o),
        p_tenants, p_bases, p_texts)
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb, p_tenants jsonb, p_bases jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_write(p_documents, p_tenants, p_bases, NULL::jsonb)
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_write(p_documents jsonb, p_tenants jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_write(p_documents, p_tenants, NULL::jsonb, NULL::jsonb)
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_write(jsonb[], jsonb, jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_write(jsonb, jsonb, jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_write(jsonb, jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_write(jsonb, jsonb)');
