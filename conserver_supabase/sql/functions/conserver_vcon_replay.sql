-- conserver_vcon_replay(jsonb, jsonb, jsonb) -> jsonb
--
-- Saves one journaled vCon again (the `replay` command), only if the database has
-- acknowledged nothing newer for it since the failed save: the fence of the journal
-- (docs/reliability.md, "Replay"). Returns {"version": n} (with "vcon" when merged)
-- when it saved (as conserver_vcon_save), or {"superseded": "<why>"} when it wrote
-- nothing.
--
-- p_document as conserver_vcon_save's: the vCon, or its exact JSON text as a JSON string.
-- p_base is what the failed save was based on, as the journal recorded it:
--   {"version": n}  the cache knew version n: save only if the database still holds n,
--                   or holds our save of n with only other writers' changes since
--                   (document_version = n): then it is saved merged with them, as any
--                   save (docs/database.md, "Conflicts");
--   {"version": -n} the cache knew the vCon deleted at version n: save only if it is
--                   still deleted, and not deleted again since;
--   {"at": t}       the version was not known (t: when the failed save started, epoch
--                   seconds): save only if nothing of it was saved or deleted at or
--                   after t (the database's clock against the saving process's);
--   {}              an entry journaled before 0.2 (no base, no time): save only a vCon
--                   the database has no trace of.
-- p_tenant is the tenant guard the failed save had (see conserver_vcon_save), applied
-- whatever options the replay runs with. The per-uuid advisory lock is taken before the
-- state is read, so no save or delete can commit in between (conserver_vcon_save takes
-- it again: advisory locks stack within a transaction).

CREATE OR REPLACE FUNCTION conserver_vcon_replay(p_document jsonb, p_tenant jsonb, p_base jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid       uuid := conserver_vcon_check(CASE WHEN jsonb_typeof(p_document) = 'string'
                                                   THEN (p_document #>> '{}')::jsonb
                                                   ELSE p_document END);
    v_base       bigint;
    v_at         timestamptz;
    v_version    bigint;
    v_document_version bigint;
    v_saved_at   timestamptz;
    v_tomb       bigint;
    v_deleted_at timestamptz;
    v_row_at     timestamptz;
    v_foreign    boolean;
    v_why        text;
BEGIN
    IF jsonb_typeof(p_base) IS DISTINCT FROM 'object'
       OR coalesce(jsonb_typeof(p_base -> 'version'), 'number') <> 'number'
       OR coalesce(jsonb_typeof(p_base -> 'at'), 'number') <> 'number' THEN
        RAISE EXCEPTION 'invalid replay base for vCon %: must be {"version": n} or {"at": epoch seconds}', v_uuid
            USING ERRCODE = '22023', DETAIL = '(base)';
    END IF;
    v_base := (p_base ->> 'version')::bigint;
    v_at := to_timestamp((p_base ->> 'at')::double precision);
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || v_uuid::text, 0));
    -- A head row (document NULL, migration 0004) is a vCon only other writers wrote:
    -- it has a version but was never saved by us, so its rows' time decides (below).
    SELECT doc.version, CASE WHEN doc.document IS NOT NULL THEN doc.updated_at END,
           doc.document IS NULL, CASE WHEN doc.document IS NOT NULL THEN doc.document_version END
      INTO v_version, v_saved_at, v_foreign, v_document_version
      FROM conserver_vcon_documents doc WHERE doc.uuid = v_uuid;
    SELECT t.version, t.deleted_at INTO v_tomb, v_deleted_at
      FROM conserver_vcon_tombstones t WHERE t.uuid = v_uuid;
    SELECT v.updated_at INTO v_row_at FROM vcons v WHERE v.uuid = v_uuid;

    IF v_base > 0 THEN
        IF v_version IS DISTINCT FROM v_base AND v_document_version IS DISTINCT FROM v_base THEN
            v_why := format('it was based on version %s, the database %s', v_base,
                CASE WHEN v_version IS NULL THEN format('deleted it (version %s)', coalesce(v_tomb, 0))
                     ELSE format('holds version %s', v_version) END);
        END IF;
    ELSIF v_base < 0 THEN
        IF v_version IS NOT NULL OR coalesce(v_tomb, 0) > -v_base THEN
            v_why := format('it was based on the delete at version %s, the database %s', -v_base,
                CASE WHEN v_version IS NOT NULL THEN format('holds version %s', v_version)
                     ELSE format('deleted it again (version %s)', v_tomb) END);
        END IF;
    ELSIF v_at IS NOT NULL THEN
        IF v_saved_at >= v_at THEN
            v_why := format('the database saved version %s at %s, after the failed save (%s)',
                            v_version, v_saved_at, v_at);
        ELSIF v_deleted_at >= v_at THEN
            v_why := format('the database deleted it at %s (version %s), after the failed save (%s)',
                            v_deleted_at, v_tomb, v_at);
        ELSIF (v_version IS NULL OR v_foreign) AND v_row_at >= v_at THEN
            v_why := format('another writer changed it at %s, after the failed save (%s)',
                            v_row_at, v_at);
        END IF;
    ELSIF v_version IS NOT NULL OR v_tomb IS NOT NULL OR v_row_at IS NOT NULL THEN
        v_why := 'the entry was journaled by a release before 0.2 (no base recorded) and '
                 'the database already knows this vCon';
    END IF;
    IF v_why IS NOT NULL THEN
        RETURN jsonb_build_object('superseded', v_why);
    END IF;
    RETURN conserver_vcon_save(p_document, p_tenant, NULL::jsonb);
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_replay(jsonb, jsonb, jsonb)');
