-- conserver_vcon_assemble(uuid) -> jsonb
--
-- A vCon reassembled from vcon-mcp's rows, the way vcon-mcp's getVCon does (for vCons
-- another writer created, which have no document row). Null columns are left out. NULL
-- when there is no vCon.

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

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_assemble(uuid)');
