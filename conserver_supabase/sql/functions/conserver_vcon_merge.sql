-- conserver_vcon_merge(jsonb, jsonb, timestamptz) -> jsonb
--
-- "The document follows the rows" (docs/database.md, "Other writers"): the vCon as the
-- rows now say (p_rows, from conserver_vcon_assemble), keeping from our stored document
-- (p_document, saved at p_saved_at) what the rows cannot hold and the exact value of
-- every field the rows did not change. p = conserver_vcon_project(p_document): what the
-- rows held right after our save.
--   * Top level: a row-mapped field (vcon, uuid, created_at, updated_at, subject,
--     extensions, critical, redacted, amended) whose row value equals p's keeps the
--     document's value and spelling (must_support, appended); otherwise it is the row's
--     (absent when the row's is NULL), written under the document's spelling. Every other
--     key (group, meta, extension and unknown keys) is the document's.
--   * parties, dialog, analysis, attachments: as many elements as the rows have. An
--     element equal to p's at its index is the document's element, whole. Otherwise, if
--     it is still the same element (same index, and same dialog type and start, analysis
--     type and vendor, attachment type and purpose; parties: the index alone), the
--     document's element with each row-mapped key that changed taken from the row, under
--     the document's spelling (mimetype, schema_version: every spelling it has); its
--     other keys, party_history, meta, unknown ones, stay. Otherwise the row's element.

CREATE OR REPLACE FUNCTION conserver_vcon_merge(p_document jsonb, p_rows jsonb, p_saved_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_p       jsonb := conserver_vcon_project(p_document, p_saved_at);
    v_out     jsonb := p_document;
    v_key     text;
    v_names   text[];
    v_name    text;
    v_array   text;
    v_keys    text[];
    v_ident   text[];
    v_rows    jsonb;
    v_proj    jsonb;
    v_doc     jsonb;
    v_new     jsonb;
    v_r       jsonb;
    v_pe      jsonb;
    v_de      jsonb;
    v_same    boolean;
    i         integer;
BEGIN
    FOREACH v_key IN ARRAY ARRAY['vcon', 'uuid', 'created_at', 'updated_at', 'subject',
                                 'extensions', 'critical', 'redacted', 'amended'] LOOP
        IF (p_rows -> v_key) IS NOT DISTINCT FROM (v_p -> v_key)
           OR (v_key = 'created_at' AND NOT v_p ? 'created_at') THEN
            CONTINUE;  -- the rows did not change it: the document's value and spelling
        END IF;
        v_names := ARRAY(SELECT n FROM unnest(ARRAY[v_key,
                             CASE v_key WHEN 'critical' THEN 'must_support'
                                        WHEN 'amended' THEN 'appended' END]) AS n
                          WHERE n IS NOT NULL AND p_document ? n);
        IF v_names = '{}' THEN
            v_names := ARRAY[v_key];
        END IF;
        FOREACH v_name IN ARRAY v_names LOOP
            v_out := CASE WHEN p_rows ? v_key THEN v_out || jsonb_build_object(v_name, p_rows -> v_key)
                          ELSE v_out - v_name END;
        END LOOP;
    END LOOP;

    FOREACH v_array IN ARRAY ARRAY['parties', 'dialog', 'analysis', 'attachments'] LOOP
        v_rows := coalesce(p_rows -> v_array, '[]');
        v_proj := coalesce(v_p -> v_array, '[]');
        IF v_rows = v_proj THEN
            CONTINUE;
        END IF;
        v_doc := CASE WHEN jsonb_typeof(p_document -> v_array) = 'array'
                      THEN p_document -> v_array ELSE '[]' END;
        CASE v_array
            WHEN 'parties' THEN
                v_keys := ARRAY['tel', 'sip', 'stir', 'mailto', 'name', 'did', 'uuid', 'validation',
                                'jcard', 'gmlpos', 'civicaddress', 'timezone'];
                v_ident := '{}';
            WHEN 'dialog' THEN
                v_keys := ARRAY['type', 'start', 'duration', 'parties', 'originator', 'mediatype',
                                'filename', 'body', 'encoding', 'url', 'content_hash', 'disposition',
                                'session_id', 'application', 'message_id', 'transferee', 'transferor',
                                'transfer_target', 'original', 'consultation', 'target_dialog'];
                v_ident := ARRAY['type', 'start'];
            WHEN 'analysis' THEN
                v_keys := ARRAY['type', 'dialog', 'mediatype', 'filename', 'vendor', 'product',
                                'schema', 'body', 'encoding', 'url', 'content_hash'];
                v_ident := ARRAY['type', 'vendor'];
            ELSE
                v_keys := ARRAY['type', 'purpose', 'start', 'party', 'dialog', 'mediatype',
                                'filename', 'body', 'encoding', 'url', 'content_hash'];
                v_ident := ARRAY['type', 'purpose'];
        END CASE;
        v_new := '[]';
        FOR i IN 0 .. jsonb_array_length(v_rows) - 1 LOOP
            v_r := v_rows -> i;
            v_pe := v_proj -> i;
            v_de := v_doc -> i;
            IF v_pe IS NOT NULL AND v_r = v_pe THEN
                v_new := v_new || jsonb_build_array(v_de);
                CONTINUE;
            END IF;
            v_same := v_pe IS NOT NULL AND jsonb_typeof(v_de) = 'object'
                      AND NOT EXISTS (SELECT FROM unnest(v_ident) AS k
                                       WHERE (v_r -> k) IS DISTINCT FROM (v_pe -> k));
            IF NOT v_same THEN
                v_new := v_new || jsonb_build_array(v_r);
                CONTINUE;
            END IF;
            FOREACH v_key IN ARRAY v_keys LOOP
                CONTINUE WHEN (v_r -> v_key) IS NOT DISTINCT FROM (v_pe -> v_key);
                -- Under the document's spellings (a 0.0.1 name the rows read it by), every
                -- one of them.
                v_names := ARRAY(SELECT n FROM unnest(ARRAY[v_key,
                                     CASE v_key WHEN 'mediatype' THEN 'mimetype'
                                                WHEN 'schema' THEN 'schema_version' END]) AS n
                                  WHERE n IS NOT NULL AND v_de ? n);
                IF v_names = '{}' THEN
                    v_names := ARRAY[v_key];
                END IF;
                FOREACH v_name IN ARRAY v_names LOOP
                    v_de := CASE WHEN v_r ? v_key THEN v_de || jsonb_build_object(v_name, v_r -> v_key)
                                 ELSE v_de - v_name END;
                END LOOP;
            END LOOP;
            v_new := v_new || jsonb_build_array(v_de);
        END LOOP;
        v_out := v_out || jsonb_build_object(v_array, v_new);
    END LOOP;
    RETURN v_out;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_merge(jsonb, jsonb, timestamptz)');
