-- conserver_vcon_record_change() -> trigger
--
-- Trigger (AFTER INSERT OR UPDATE OF version OR DELETE on conserver_vcon_documents): the
-- change log's single writer. Every save (conserver_vcon_write), every change of the rows
-- by another writer (conserver_vcon_rows_changed raises the head version) and every
-- delete of a document row, whoever deletes, appends one row to conserver_vcon_changes in
-- the same transaction: op 'save' when the document was written at the new version,
-- 'rows' when only the rows changed, 'delete' with the delete's version (OLD.version + 1,
-- the number conserver_vcon_tombstone_on_delete records).
--
-- Wake-ups: while a consumer waits on LISTEN (a cursor with listen, polled in the last
-- minute: conserver_vcon_feed_poll), the change also sends NOTIFY conserver_vcon_changes
-- (empty payload: PostgreSQL sends one per transaction). Without one, nothing is sent.
--
-- The log's bound: every 100th change, the changes past the newest keep_rows (while a
-- consumer polls; keep_rows_idle when none polled for a day) are pruned, consumed or
-- not, and pruned_below records how far (conserver_vcon_feed_state, migration 0005).
-- One transaction prunes at a time (a transaction-level advisory lock, tried, never
-- waited for; conserver_vcon_feed_poll takes the same): a transaction that finds another
-- pruning goes on and leaves it to the next 100th change. Waiting there made two bulk
-- loads deadlock: each held changes the other's pruning deleted, or the bound's row.
--
-- SECURITY DEFINER, as the tombstone trigger: vcon-mcp writes and deletes as
-- `authenticated`, which has no privilege on the change log. It only records the row's
-- uuid and version; a trigger function cannot be called directly.

CREATE OR REPLACE FUNCTION conserver_vcon_record_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_seq   bigint;
    v_keep  bigint;
    v_xid   xid8;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO conserver_vcon_changes (vcon_uuid, version, op, source)
        VALUES (OLD.uuid, OLD.version + 1, 'delete', session_user)
        RETURNING seq INTO v_seq;
    ELSE
        INSERT INTO conserver_vcon_changes (vcon_uuid, version, op, source)
        VALUES (NEW.uuid, NEW.version,
                CASE WHEN NEW.document_version = NEW.version THEN 'save' ELSE 'rows' END,
                session_user)
        RETURNING seq INTO v_seq;
    END IF;
    IF EXISTS (SELECT FROM conserver_vcon_feed_cursors c
                WHERE c.listen AND c.updated_at > now() - interval '1 minute') THEN
        PERFORM pg_notify('conserver_vcon_changes', '');
    END IF;
    -- (two IFs: AND does not promise to test the count before taking the lock)
    IF v_seq % 100 = 0 THEN IF pg_try_advisory_xact_lock(1668247156) THEN  -- "cont"
        SELECT CASE WHEN EXISTS (SELECT FROM conserver_vcon_feed_cursors c
                                  WHERE c.updated_at > now() - interval '1 day')
                    THEN s.keep_rows ELSE s.keep_rows_idle END
          INTO v_keep
          FROM conserver_vcon_feed_state s;
        IF v_keep IS NOT NULL THEN
            WITH gone AS (
                DELETE FROM conserver_vcon_changes ch WHERE ch.seq <= v_seq - v_keep
                RETURNING ch.xid
            )
            SELECT max(xid) INTO v_xid FROM gone;
            IF v_xid IS NOT NULL THEN
                UPDATE conserver_vcon_feed_state s
                   SET pruned_below = greatest(s.pruned_below, (v_xid::text::numeric + 1)::text::xid8);
            END IF;
        END IF;
    END IF; END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_record_change()');
