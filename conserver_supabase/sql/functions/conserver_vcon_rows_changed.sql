-- conserver_vcon_rows_changed() -> trigger
--
-- Trigger (AFTER INSERT, UPDATE and DELETE, FOR EACH STATEMENT, on vcons, parties,
-- dialog, analysis and attachments; its argument names the uuid column): another
-- writer changed rows. Raises the head version (conserver_vcon_documents.version) of
-- each vCon the statement touched, once per transaction, so that the next read merges
-- the rows into our document (conserver_vcon_fetch) and conserver_vcon_record_change
-- logs the change. A vCon without a document row gets a head row (document NULL).
-- conserver_vcon_write's own statements skip these triggers (their WHEN clause reads
-- conserver_supabase.writing, which that function sets for its duration).
--
-- Skipped: vCons whose vcons row is gone (a cascade of a delete: the delete is logged by
-- the document row's delete), and a vCon this transaction already marked changed with
-- no save since (an upsert fires both the INSERT and the UPDATE trigger; a transaction
-- of several statements counts once). The document rows are locked in uuid order, the
-- order conserver_vcon_write takes them in, last (docs/database.md, "Lock order").
--
-- SECURITY DEFINER, as the tombstone trigger: vcon-mcp writes as `authenticated`, which
-- has no privilege on our tables. It only raises versions of the uuids of the rows the
-- statement changed; a trigger function cannot be called directly.

CREATE OR REPLACE FUNCTION conserver_vcon_rows_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_uuids uuid[];
BEGIN
    IF TG_ARGV[0] = 'uuid' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(DISTINCT n.uuid) INTO v_uuids FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            SELECT array_agg(DISTINCT x.u) INTO v_uuids
              FROM (SELECT n.uuid AS u FROM new_rows n UNION SELECT o.uuid FROM old_rows o) AS x;
        ELSE
            SELECT array_agg(DISTINCT o.uuid) INTO v_uuids FROM old_rows o;
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(DISTINCT n.vcon_id) INTO v_uuids FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            SELECT array_agg(DISTINCT x.u) INTO v_uuids
              FROM (SELECT n.vcon_id AS u FROM new_rows n
                    UNION SELECT o.vcon_id FROM old_rows o) AS x;
        ELSE
            SELECT array_agg(DISTINCT o.vcon_id) INTO v_uuids FROM old_rows o;
        END IF;
    END IF;
    IF v_uuids IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO conserver_vcon_documents AS d (uuid, document, version, content_hash)
    SELECT c.u, NULL, 1, NULL
      FROM unnest(v_uuids) AS c (u)
     WHERE EXISTS (SELECT FROM vcons v WHERE v.uuid = c.u)
       AND NOT EXISTS (
           SELECT FROM conserver_vcon_changes x
             JOIN conserver_vcon_documents doc ON doc.uuid = x.vcon_uuid
            WHERE x.xid = pg_current_xact_id() AND x.vcon_uuid = c.u
              AND x.op = 'rows' AND x.version = doc.version)
     ORDER BY c.u
    ON CONFLICT (uuid) DO UPDATE SET version = d.version + 1;
    RETURN NULL;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_rows_changed()');
