-- conserver_vcon_rebase(jsonb, jsonb, timestamptz) -> jsonb
--
-- The conflict rule (docs/database.md, "Conflicts"): the vCon a save of p_ours writes
-- when another writer changed the rows since our last save. A three-way merge, in the
-- projected form (conserver_vcon_project: what the rows hold), of
--   base   = our stored document p_document, saved at p_saved_at (what the rows held
--            after our last save; NULL for a head row: a vCon only other writers wrote),
--   theirs = the rows now (conserver_vcon_assemble), in document form through
--            conserver_vcon_merge (so what they did not change keeps its exact value),
--   ours   = p_ours, the incoming document.
-- Top level, per row-mapped field (vcon, uuid, created_at, updated_at, subject,
-- extensions, critical, redacted, amended): ours = base -> theirs; theirs = base ->
-- ours; ours = theirs -> ours; otherwise a conflict. updated_at is never one: the later
-- value wins. Keys the rows cannot hold (group, meta, unknown) are ours.
-- parties, dialog, analysis, attachments: ours when they begin with theirs (a copy
-- read after their change, with ours appended). Otherwise per element of base, the
-- same rule (an
-- element one side removed is removed when the other side left it as it was); the
-- elements past base's length are appends: one side's alone, or ours when ours begin
-- with theirs (the copy was read after their append); analysis and attachments
-- appended on both sides: ours, then theirs (they are leaves); dialog and parties
-- appended on both sides, or appended where the other side removed elements: a
-- conflict (analysis and dialog refer to them by index). The type = 'tags' attachment
-- changed on both sides is merged as a set of "key:value" strings: theirs, plus what
-- ours added, minus what ours removed; a key ours and theirs both set to different
-- values is a conflict.
-- Without a base (a head row): arrays take the longest common prefix of ours and
-- theirs as base; a top-level field that differs is a conflict (updated_at aside).
--
-- A conflict raises SQLSTATE CSC01 (nothing is written: the caller's transaction
-- fails) with DETAIL {"vcon": uuid, "field": "analysis[1]"}. Called by
-- conserver_vcon_write, under the caller's advisory lock; not for direct use.

CREATE OR REPLACE FUNCTION conserver_vcon_rebase(p_ours jsonb, p_document jsonb, p_saved_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid    uuid := (p_ours ->> 'uuid')::uuid;
    v_rows    jsonb := conserver_vcon_assemble(v_uuid);
    v_theirs  jsonb;
    v_base    jsonb;
    v_ours    jsonb := conserver_vcon_project(p_ours, now());
    v_out     jsonb := p_ours;
    v_key     text;
    v_names   text[];
    v_name    text;
    v_b       jsonb;
    v_t       jsonb;
    v_o       jsonb;
    v_array   text;
    v_bs      jsonb;
    v_ts      jsonb;
    v_os      jsonb;
    v_td      jsonb;
    v_od      jsonb;
    v_kept    jsonb;
    v_added   jsonb;
    v_elem    jsonb;
    v_gone    boolean;
    v_field   text;
    n_base    integer;
    n_t       integer;
    n_o       integer;
    i         integer;
BEGIN
    IF v_rows IS NULL THEN
        RETURN p_ours;  -- no rows (nothing of theirs to keep)
    END IF;
    v_theirs := CASE WHEN p_document IS NULL THEN v_rows
                     ELSE conserver_vcon_merge(p_document, v_rows, p_saved_at) END;
    v_base := CASE WHEN p_document IS NOT NULL THEN conserver_vcon_project(p_document, p_saved_at) END;

    FOREACH v_key IN ARRAY ARRAY['vcon', 'uuid', 'created_at', 'updated_at', 'subject',
                                 'extensions', 'critical', 'redacted', 'amended'] LOOP
        v_t := v_rows -> v_key;
        v_o := v_ours -> v_key;
        v_b := v_base -> v_key;
        IF v_key = 'created_at' AND NOT p_ours ? 'created_at' THEN
            CONTINUE;  -- the write keeps the row's: theirs
        ELSIF v_o IS NOT DISTINCT FROM v_t THEN
            CONTINUE;
        ELSIF v_key = 'updated_at' THEN
            IF v_t IS NULL OR (v_o IS NOT NULL AND (v_o #>> '{}')::timestamptz >= (v_t #>> '{}')::timestamptz) THEN
                CONTINUE;  -- ours is the later one
            END IF;
        ELSIF v_base IS NOT NULL AND v_t IS NOT DISTINCT FROM v_b THEN
            CONTINUE;  -- only ours changed it
        ELSIF v_base IS NULL OR v_o IS DISTINCT FROM v_b THEN
            v_field := v_key;
            EXIT;
        END IF;
        -- theirs: under the spellings theirs has (the stored document's)
        v_names := ARRAY[v_key] || CASE v_key WHEN 'critical' THEN ARRAY['must_support']
                                              WHEN 'amended' THEN ARRAY['appended']
                                              ELSE '{}'::text[] END;
        FOREACH v_name IN ARRAY v_names LOOP
            v_out := v_out - v_name;
        END LOOP;
        FOREACH v_name IN ARRAY v_names LOOP
            IF v_theirs ? v_name THEN
                v_out := v_out || jsonb_build_object(v_name, v_theirs -> v_name);
            END IF;
        END LOOP;
    END LOOP;

    FOREACH v_array IN ARRAY ARRAY['parties', 'dialog', 'analysis', 'attachments'] LOOP
        EXIT WHEN v_field IS NOT NULL;
        v_ts := coalesce(v_rows -> v_array, '[]');
        v_os := coalesce(v_ours -> v_array, '[]');
        IF v_base IS NOT NULL THEN
            v_bs := coalesce(v_base -> v_array, '[]');
        ELSE  -- no base: what both sides hold alike, from the start
            v_bs := coalesce((SELECT jsonb_agg(o.e ORDER BY o.n)
                                FROM jsonb_array_elements(v_os) WITH ORDINALITY AS o (e, n)
                               WHERE NOT EXISTS (
                                     SELECT FROM generate_series(0, o.n::integer - 1) AS k
                                      WHERE (v_os -> k) IS DISTINCT FROM (v_ts -> k))), '[]');
        END IF;
        IF v_ts = v_bs OR NOT EXISTS (
               SELECT FROM jsonb_array_elements(v_ts) WITH ORDINALITY AS t (e, n)
                WHERE t.e IS DISTINCT FROM v_os -> (t.n::integer - 1)) THEN
            CONTINUE;  -- ours as it is: theirs did not change it, or ours begin with theirs
        END IF;
        v_td := coalesce(v_theirs -> v_array, '[]');
        IF v_os = v_bs THEN
            v_out := v_out || jsonb_build_object(v_array, v_td);  -- theirs as they are
            CONTINUE;
        END IF;
        v_od := CASE WHEN jsonb_typeof(p_ours -> v_array) = 'array' THEN p_ours -> v_array ELSE '[]' END;
        n_base := jsonb_array_length(v_bs);
        n_t := jsonb_array_length(v_ts);
        n_o := jsonb_array_length(v_os);
        v_kept := '[]';
        v_gone := false;
        FOR i IN 0 .. n_base - 1 LOOP
            v_b := v_bs -> i;
            v_t := v_ts -> i;
            v_o := v_os -> i;
            IF v_o IS NOT DISTINCT FROM v_b THEN
                v_elem := v_td -> i;
            ELSIF v_t IS NOT DISTINCT FROM v_b OR v_o IS NOT DISTINCT FROM v_t THEN
                v_elem := v_od -> i;
            ELSIF v_array = 'attachments' AND v_b ->> 'type' = 'tags' AND v_t ->> 'type' = 'tags'
                  AND v_o ->> 'type' = 'tags' AND (v_t - 'body') = (v_o - 'body') THEN
                v_elem := conserver_vcon_rebase_tags(v_b -> 'body', v_t -> 'body', v_o -> 'body', v_od -> i);
                IF v_elem IS NULL THEN
                    v_field := format('attachments[%s].body', i);
                    EXIT;
                END IF;
            ELSE
                v_field := format('%s[%s]', v_array, i);
                EXIT;
            END IF;
            IF v_elem IS NULL THEN
                v_gone := true;  -- removed (by the side that changed it)
            ELSIF v_gone THEN
                v_field := format('%s[%s]', v_array, i);  -- would leave a hole
                EXIT;
            ELSE
                v_kept := v_kept || jsonb_build_array(v_elem);
            END IF;
        END LOOP;
        EXIT WHEN v_field IS NOT NULL;
        -- The appends.
        IF n_t <= n_base THEN
            v_added := coalesce((SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(v_od)
                                  WITH ORDINALITY AS a (e, n) WHERE n > n_base), '[]');
        ELSIF n_o <= n_base
              OR (n_o >= n_t AND NOT EXISTS (SELECT FROM generate_series(n_base, n_t - 1) AS k
                                              WHERE (v_os -> k) IS DISTINCT FROM (v_ts -> k))) THEN
            -- only theirs appended, or ours begin with theirs: the longer side's
            v_added := coalesce((SELECT jsonb_agg(e ORDER BY n)
                                   FROM jsonb_array_elements(CASE WHEN n_o <= n_base THEN v_td ELSE v_od END)
                                        WITH ORDINALITY AS a (e, n) WHERE n > n_base), '[]');
        ELSIF v_array IN ('analysis', 'attachments') THEN
            v_added := coalesce((SELECT jsonb_agg(e ORDER BY w, n)
                                   FROM (SELECT e, n, 0 AS w FROM jsonb_array_elements(v_od)
                                                  WITH ORDINALITY AS a (e, n) WHERE n > n_base
                                         UNION ALL
                                         SELECT e, n, 1 FROM jsonb_array_elements(v_td)
                                                  WITH ORDINALITY AS a (e, n) WHERE n > n_base) AS x), '[]');
        ELSE
            v_field := format('%s[%s]', v_array, n_base);
            EXIT;
        END IF;
        IF v_array IN ('parties', 'dialog') AND v_added <> '[]'
           AND jsonb_array_length(v_kept) <> n_base THEN
            v_field := format('%s[%s]', v_array, jsonb_array_length(v_kept));  -- indexes would move
            EXIT;
        END IF;
        v_out := v_out || jsonb_build_object(v_array, v_kept || v_added);
    END LOOP;

    IF v_field IS NOT NULL THEN
        RAISE EXCEPTION 'conflicting save of vCon %: % was changed by another writer since this copy was read, and differently by it',
            v_uuid, v_field
            USING ERRCODE = 'CSC01',
                  DETAIL = jsonb_build_object('vcon', v_uuid, 'field', v_field)::text,
                  HINT = 'nothing was written; read the vCon again, apply the change to it and save that';
    END IF;
    RETURN v_out;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_rebase(jsonb, jsonb, timestamptz)');
