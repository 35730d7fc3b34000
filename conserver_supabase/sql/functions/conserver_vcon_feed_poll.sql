-- conserver_vcon_feed_poll(text, jsonb, integer) -> jsonb
--
-- The change feed's one call (docs/conserver.md, "The change feed"): a page of the change
-- log for the consumer cursor p_name, in commit-safe order, and the cursor's upkeep.
--
-- A round reads every change of transactions at or above the cursor's watermark, in pages
-- of at most p_limit, ordered by (xid, seq):
--   p_state {} or {"advance": x, "listen": b, "seen": p}: a round's first page. "advance"
--       first moves the cursor to x (never back), as the consumer applied everything
--       below it ("seen": it flushed its cache for what was pruned below p); the
--       answer's "next" is the watermark to advance to once this round is applied: the
--       oldest transaction still running now (every one below it has finished, so its
--       changes are in this round). Changes at or above it come again in the next round.
--   p_state {"from": x, "xid": x, "seq": n}: the next page of the round that started at
--       "from", after the change (xid, seq) the previous page ended with.
-- p_limit 0 only advances. The answer: {"from", "next", "changes": [[uuid, version, op,
-- xid, seq], ...], "more": whether a page may follow, "lost": true when changes this
-- cursor had not read were pruned (a new cursor, or one behind the log's bound): the
-- consumer cannot know what its cache missed and flushes it, "pruned": how far}.
--
-- At a round's first page, the changes every cursor has consumed are pruned, and cursors
-- nobody polled for idle_cursor are dropped (conserver_vcon_feed_state, migration 0005).
-- Always on the primary: a replica's snapshot says nothing about the primary's.

CREATE OR REPLACE FUNCTION conserver_vcon_feed_poll(p_name text, p_state jsonb, p_limit integer)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_from    xid8;
    v_next    xid8;
    v_xid     xid8;
    v_seq     bigint;
    v_lost    boolean := false;  -- a new cursor starts at 0: lost only if anything was pruned
    v_low     xid8;
    v_seen    xid8;
    v_pruned  xid8;
    v_gone    bigint;
    v_changes jsonb;
    v_count   integer;
BEGIN
    IF p_name IS NULL OR p_name = '' OR jsonb_typeof(p_state) IS DISTINCT FROM 'object'
       OR p_limit IS NULL OR p_limit < 0 THEN
        RAISE EXCEPTION 'invalid feed poll: a cursor name, a state object and a limit >= 0'
            USING ERRCODE = '22023', DETAIL = '(feed)';
    END IF;
    IF p_state ? 'xid' THEN
        v_from := (p_state ->> 'from')::xid8;
        v_xid := (p_state ->> 'xid')::xid8;
        v_seq := (p_state ->> 'seq')::bigint;
    ELSE
        INSERT INTO conserver_vcon_feed_cursors AS c (name, watermark, listen, seen_pruned, updated_at)
        VALUES (p_name, coalesce((p_state ->> 'advance')::xid8, '0'::xid8),
                coalesce((p_state ->> 'listen')::boolean, false),
                (p_state ->> 'seen')::xid8, now())
        ON CONFLICT (name) DO UPDATE SET
            watermark   = greatest(c.watermark, EXCLUDED.watermark),
            listen      = EXCLUDED.listen,
            seen_pruned = greatest(c.seen_pruned, EXCLUDED.seen_pruned),
            updated_at  = now()
        RETURNING c.watermark, c.seen_pruned INTO v_from, v_seen;
        IF p_limit = 0 THEN
            RETURN jsonb_build_object('from', v_from::text, 'next', v_from::text,
                                      'changes', '[]'::jsonb, 'more', false, 'lost', false,
                                      'pruned', NULL);
        END IF;
        v_next := pg_snapshot_xmin(pg_current_snapshot());

        DELETE FROM conserver_vcon_feed_cursors c
         USING conserver_vcon_feed_state s
         WHERE c.updated_at < now() - s.idle_cursor;
        SELECT min(c.watermark) INTO v_low FROM conserver_vcon_feed_cursors c;
        -- Only while no other transaction prunes (conserver_vcon_record_change): the
        -- next round prunes what this one leaves.
        IF pg_try_advisory_xact_lock(1668247156) THEN  -- as conserver_vcon_record_change
            DELETE FROM conserver_vcon_changes ch WHERE ch.xid < v_low;
            GET DIAGNOSTICS v_gone = ROW_COUNT;
        END IF;
        IF v_gone > 0 THEN
            UPDATE conserver_vcon_feed_state s SET pruned_below = greatest(s.pruned_below, v_low);
        END IF;
        -- Lost: changes at or above the cursor were pruned, after its consumer last
        -- flushed for them (a pruning by count; the pruning of consumed changes stays
        -- below every cursor, except a new one's).
        SELECT s.pruned_below INTO v_pruned FROM conserver_vcon_feed_state s;
        v_lost := coalesce(v_pruned, '0'::xid8) > greatest(v_from, v_seen);
    END IF;

    SELECT coalesce(jsonb_agg(jsonb_build_array(p.vcon_uuid, p.version, p.op, p.xid::text, p.seq)
                              ORDER BY p.xid, p.seq), '[]'),
           count(*)
      INTO v_changes, v_count
      FROM (SELECT ch.vcon_uuid, ch.version, ch.op, ch.xid, ch.seq
              FROM conserver_vcon_changes ch
             WHERE ch.xid >= v_from
               AND (v_xid IS NULL OR (ch.xid, ch.seq) > (v_xid, v_seq))
             ORDER BY ch.xid, ch.seq
             LIMIT p_limit) AS p;
    RETURN jsonb_build_object('from', v_from::text, 'next', v_next::text, 'changes', v_changes,
                              'more', v_count = p_limit, 'lost', v_lost,
                              'pruned', v_pruned::text);
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_feed_poll(text, jsonb, integer)');
