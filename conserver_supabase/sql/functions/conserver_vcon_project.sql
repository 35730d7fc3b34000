-- conserver_vcon_project(jsonb, timestamptz) -> jsonb
--
-- What conserver_vcon_assemble returns for a vCon right after conserver_vcon_write saved
-- p_document, computed from the document alone: the same casts as the write (text,
-- integer, real, timestamptz, integer arrays, conserver_jsonb_text bodies) read back as
-- assemble reads them, and the 0.0.1 names as the write reads them (the spec's name wins:
-- mediatype <- mimetype, analysis schema <- schema_version; an attachment's type and
-- purpose as given). conserver_vcon_merge compares it with the
-- rows to tell the fields another writer changed from those it did not (tested:
-- project(d) = assemble after write(d), tests/acceptance/feed/test_reads.py). p_saved_at is the time of that save
-- (conserver_vcon_documents.updated_at): the write stamps updated_at with it when the
-- document has none. A document without created_at projects none (the write keeps the
-- row's); the merge takes that field as unchanged.

CREATE OR REPLACE FUNCTION conserver_vcon_project(p_document jsonb, p_saved_at timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_strip_nulls(jsonb_build_object(
        'vcon', coalesce(d ->> 'vcon', '0.4.0'),
        'uuid', (d ->> 'uuid')::uuid,
        'created_at', (d ->> 'created_at')::timestamptz,
        'updated_at', coalesce((d ->> 'updated_at')::timestamptz, p_saved_at),
        'subject', d ->> 'subject',
        'extensions', conserver_text_array(d -> 'extensions'),
        'critical', conserver_text_array(coalesce(nullif(d -> 'critical', 'null'), d -> 'must_support')),
        'redacted', nullif(coalesce(nullif(d -> 'redacted', 'null'), '{}'), '{}'),
        'amended', nullif(coalesce(nullif(d -> 'amended', 'null'), nullif(d -> 'appended', 'null'), '{}'), '{}'),
        'parties', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'tel', e ->> 'tel', 'sip', e ->> 'sip', 'stir', e ->> 'stir',
                       'mailto', e ->> 'mailto', 'name', e ->> 'name', 'did', e ->> 'did',
                       'uuid', e ->> 'uuid', 'validation', e ->> 'validation',
                       'jcard', nullif(e -> 'jcard', 'null'), 'gmlpos', e ->> 'gmlpos',
                       'civicaddress', nullif(e -> 'civicaddress', 'null'),
                       'timezone', e ->> 'timezone')) ORDER BY o)
              FROM jsonb_array_elements(coalesce(nullif(d -> 'parties', 'null'), '[]'))
                   WITH ORDINALITY AS t (e, o)), '[]'),
        'dialog', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', e ->> 'type', 'start', (e ->> 'start')::timestamptz,
                       'duration', (e ->> 'duration')::real,
                       'parties', conserver_int_array(e -> 'parties'),
                       'originator', (e ->> 'originator')::integer,
                       'mediatype', coalesce(e ->> 'mediatype', e ->> 'mimetype'),
                       'filename', e ->> 'filename',
                       'body', conserver_jsonb_text(e -> 'body'), 'encoding', e ->> 'encoding',
                       'url', e ->> 'url', 'content_hash', conserver_jsonb_text(e -> 'content_hash'),
                       'disposition', e ->> 'disposition',
                       'session_id', nullif(e -> 'session_id', 'null'),
                       'application', e ->> 'application', 'message_id', e ->> 'message_id',
                       'transferee', (e ->> 'transferee')::integer,
                       'transferor', (e ->> 'transferor')::integer,
                       'transfer_target', conserver_int_array(e -> 'transfer_target'),
                       'original', conserver_int_array(e -> 'original'),
                       'consultation', conserver_int_array(e -> 'consultation'),
                       'target_dialog', conserver_int_array(e -> 'target_dialog'))) ORDER BY o)
              FROM jsonb_array_elements(coalesce(nullif(d -> 'dialog', 'null'), '[]'))
                   WITH ORDINALITY AS t (e, o)), '[]'),
        'analysis', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', e ->> 'type',
                       'dialog', CASE WHEN cardinality(x.dialog) = 1 THEN to_jsonb(x.dialog[1])
                                      ELSE to_jsonb(x.dialog) END,
                       'mediatype', coalesce(e ->> 'mediatype', e ->> 'mimetype'),
                       'filename', e ->> 'filename',
                       'vendor', e ->> 'vendor', 'product', e ->> 'product',
                       'schema', coalesce(e ->> 'schema', e ->> 'schema_version'),
                       'body', conserver_read_body(conserver_jsonb_text(e -> 'body'), e ->> 'encoding'),
                       'encoding', e ->> 'encoding', 'url', e ->> 'url',
                       'content_hash', conserver_jsonb_text(e -> 'content_hash'))) ORDER BY o)
              FROM jsonb_array_elements(coalesce(nullif(d -> 'analysis', 'null'), '[]'))
                   WITH ORDINALITY AS t (e, o)
              CROSS JOIN LATERAL (SELECT conserver_int_array(e -> 'dialog') AS dialog) AS x), '[]'),
        'attachments', coalesce((
            SELECT jsonb_agg(conserver_strip_nulls(jsonb_build_object(
                       'type', e ->> 'type', 'purpose', e ->> 'purpose',
                       'start', (e ->> 'start')::timestamptz,
                       'party', (e ->> 'party')::integer, 'dialog', (e ->> 'dialog')::integer,
                       'mediatype', coalesce(e ->> 'mediatype', e ->> 'mimetype'),
                       'filename', e ->> 'filename',
                       'body', conserver_read_body(conserver_jsonb_text(e -> 'body'), e ->> 'encoding'),
                       'encoding', e ->> 'encoding', 'url', e ->> 'url',
                       'content_hash', conserver_jsonb_text(e -> 'content_hash'))) ORDER BY o)
              FROM jsonb_array_elements(coalesce(nullif(d -> 'attachments', 'null'), '[]'))
                   WITH ORDINALITY AS t (e, o)), '[]')
    ))
      FROM (SELECT p_document AS d) AS doc
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_project(jsonb, timestamptz)');
