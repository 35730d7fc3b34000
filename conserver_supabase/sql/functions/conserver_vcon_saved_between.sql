-- conserver_vcon_saved_between(jsonb) -> jsonb
--
-- The vCons this storage saved in a time window, for requeue: pages
-- through conserver_vcon_documents.updated_at (the time of the last save) with
-- since <= saved < until, oldest first, keyset-paginated on (updated_at, uuid):
--   {"since": ts, "until": ts|null, "limit": n, "after": {"at": ts, "uuid": u}|null}
-- returns {"uuids": [...], "last": {"at": ts, "uuid": u}|null}.

CREATE OR REPLACE FUNCTION conserver_vcon_saved_between(p_query jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_since    timestamptz := (p_query ->> 'since')::timestamptz;
    v_until    timestamptz := (p_query ->> 'until')::timestamptz;
    v_limit    integer := coalesce((p_query ->> 'limit')::integer, 1000);
    v_after_at timestamptz := (p_query #>> '{after,at}')::timestamptz;
    v_after    uuid := (p_query #>> '{after,uuid}')::uuid;
    v_result   jsonb;
BEGIN
    IF v_since IS NULL THEN
        RAISE EXCEPTION 'invalid window: since is required' USING ERRCODE = '22023',
            DETAIL = 'since';
    END IF;
    IF v_limit < 1 OR v_limit > 10000 THEN
        RAISE EXCEPTION 'invalid window: limit must be 1..10000' USING ERRCODE = '22023',
            DETAIL = 'limit';
    END IF;
    WITH page AS (
        SELECT d.uuid, d.updated_at
          FROM conserver_vcon_documents d
         WHERE d.updated_at >= v_since
           AND d.document IS NOT NULL  -- a head row: only other writers wrote it
           AND (v_until IS NULL OR d.updated_at < v_until)
           AND (v_after_at IS NULL OR (d.updated_at, d.uuid) > (v_after_at, v_after))
         ORDER BY d.updated_at, d.uuid
         LIMIT v_limit
    )
    SELECT jsonb_build_object(
               'uuids', coalesce(jsonb_agg(p.uuid ORDER BY p.updated_at, p.uuid), '[]'::jsonb),
               'last', (SELECT jsonb_build_object('at', l.updated_at, 'uuid', l.uuid)
                          FROM page l ORDER BY l.updated_at DESC, l.uuid DESC LIMIT 1))
      INTO v_result
      FROM page p;
    RETURN v_result;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_saved_between(jsonb)');
