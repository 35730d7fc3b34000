-- conserver_vcon_search(jsonb) -> jsonb
--
-- One page of a search (docs/search.md):
--
-- p_query = {"filters": {...}, "limit": n, "after": {"created_at", "uuid"} | null,
--            "include_vcons": bool, "exact": bool}
-- returns  {"uuids": [...], "vcons": [...] | null, "more": bool,
--           "last": {"created_at", "uuid"} | null}
-- "vcons" holds the vCons (conserver_vcon_load), or with "exact" what
-- conserver_vcon_read returns for each ({"version", "text"} or {"version", "vcon"}):
-- the vCon as saved, as a get returns it.
--
-- Newest first (created_at DESC, uuid DESC); "after" is the last row of the previous
-- page (keyset pagination: rows inserted meanwhile never shift a page). Filter values
-- stay inside p_query: the statement text only ever contains the fixed fragments below.
-- The indexes that serve the filters are created by migration 0003.
--
-- The filter "tenant" is internal (added by a storage with a fixed `tenant_id`): only
-- vCons of that tenant or without tenant, the rows vcon-mcp's policy shows an
-- authenticated user of that tenant.

CREATE OR REPLACE FUNCTION conserver_vcon_search(p_query jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f jsonb := coalesce(p_query -> 'filters', '{}'::jsonb);
    lim integer;
    conds text[] := ARRAY['true'];
    analysis_conds text[] := ARRAY[]::text[];
    name text;
    result jsonb;
BEGIN
    IF jsonb_typeof(f) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid search: filters must be a JSON object'
            USING ERRCODE = '22023', DETAIL = 'filters';
    END IF;
    FOR name IN SELECT jsonb_object_keys(f) LOOP
        IF name NOT IN ('text', 'subject', 'tel', 'mailto', 'name', 'party_uuid', 'tags',
                        'created_after', 'created_before', 'updated_after', 'updated_before',
                        'dialog_type', 'analysis_type', 'analysis_vendor', 'tenant') THEN
            RAISE EXCEPTION 'invalid search: unknown filter %', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
        IF name = 'tags' THEN
            IF jsonb_typeof(f -> name) <> 'array' OR EXISTS (
                SELECT FROM jsonb_array_elements(f -> name) AS e WHERE jsonb_typeof(e) <> 'string'
            ) THEN
                RAISE EXCEPTION 'invalid search: tags must be an array of "key:value" strings'
                    USING ERRCODE = '22023', DETAIL = name;
            END IF;
        ELSIF jsonb_typeof(f -> name) <> 'string' THEN
            RAISE EXCEPTION 'invalid search: % must be a string', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
    END LOOP;
    lim := coalesce((p_query ->> 'limit')::integer, 50);
    IF lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'invalid search: limit must be between 1 and 1000'
            USING ERRCODE = '22023', DETAIL = 'limit';
    END IF;

    IF f ? 'text' THEN
        -- = ANY (ARRAY(...)): the matches are collected first (four GIN lookups) and
        -- then fetched by uuid; "IN (...)" let the planner hash-join them against a full
        -- scan of vcons (measured by scripts/bench_search.py).
        conds := array_append(conds, $c$v.uuid = ANY (ARRAY(
            SELECT x.uuid FROM vcons x
             WHERE x.subject_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
            UNION
            SELECT p.vcon_id FROM parties p
             WHERE p.party_tsvector @@ websearch_to_tsquery('simple', $1 #>> '{filters,text}')
            UNION
            SELECT d.vcon_id FROM dialog d
             WHERE d.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND d.type = 'text' AND coalesce(d.encoding, 'none') NOT IN ('base64url', 'base64')
            UNION
            SELECT a.vcon_id FROM analysis a
             WHERE a.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND coalesce(a.encoding, 'none') NOT IN ('base64url', 'base64')))$c$);
    END IF;
    IF f ? 'tenant' THEN
        -- vcon-mcp's policy for an authenticated user of that tenant: its rows and the
        -- rows without tenant.
        conds := array_append(conds, $c$(v.tenant_id IS NULL
            OR v.tenant_id = $1 #>> '{filters,tenant}')$c$);
    END IF;
    IF f ? 'subject' THEN
        conds := array_append(conds, $c$v.subject ILIKE
            '%' || conserver_like_literal($1 #>> '{filters,subject}') || '%'$c$);
    END IF;
    IF f ? 'tel' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_tel_digits(p.tel) = conserver_tel_digits($1 #>> '{filters,tel}'))$c$);
    END IF;
    IF f ? 'mailto' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_mailto_key(p.mailto)
                = conserver_mailto_key($1 #>> '{filters,mailto}'))$c$);
    END IF;
    IF f ? 'name' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE p.name ILIKE '%' || conserver_like_literal($1 #>> '{filters,name}') || '%')$c$);
    END IF;
    IF f ? 'party_uuid' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE lower(p.uuid) = lower($1 #>> '{filters,party_uuid}'))$c$);
    END IF;
    IF f ? 'tags' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT t.vcon_id FROM attachments t
            WHERE t.type = 'tags' AND conserver_tags(t.body)
                @> ARRAY(SELECT jsonb_array_elements_text($1 #> '{filters,tags}')))$c$);
    END IF;
    IF f ? 'created_after' THEN
        conds := array_append(conds, $c$v.created_at >= ($1 #>> '{filters,created_after}')::timestamptz$c$);
    END IF;
    IF f ? 'created_before' THEN
        conds := array_append(conds, $c$v.created_at < ($1 #>> '{filters,created_before}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_after' THEN
        conds := array_append(conds, $c$v.updated_at >= ($1 #>> '{filters,updated_after}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_before' THEN
        conds := array_append(conds, $c$v.updated_at < ($1 #>> '{filters,updated_before}')::timestamptz$c$);
    END IF;
    IF f ? 'dialog_type' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT d.vcon_id FROM dialog d
            WHERE d.type = $1 #>> '{filters,dialog_type}')$c$);
    END IF;
    IF f ? 'analysis_type' THEN
        analysis_conds := array_append(analysis_conds, $c$a.type = $1 #>> '{filters,analysis_type}'$c$);
    END IF;
    IF f ? 'analysis_vendor' THEN
        analysis_conds := array_append(analysis_conds, $c$a.vendor = $1 #>> '{filters,analysis_vendor}'$c$);
    END IF;
    IF cardinality(analysis_conds) > 0 THEN
        conds := conds || format('v.uuid IN (SELECT a.vcon_id FROM analysis a WHERE %s)',
                                 array_to_string(analysis_conds, ' AND '));
    END IF;
    IF jsonb_typeof(p_query -> 'after') = 'object' THEN
        conds := array_append(conds, $c$(v.created_at, v.uuid) < (($1 #>> '{after,created_at}')::timestamptz,
                                                    ($1 #>> '{after,uuid}')::uuid)$c$);
    END IF;

    EXECUTE format($q$
        WITH page AS (
            SELECT v.uuid, v.created_at,
                   row_number() OVER (ORDER BY v.created_at DESC, v.uuid DESC) AS n
              FROM (SELECT v.uuid, v.created_at FROM vcons v
                     WHERE %s
                     ORDER BY v.created_at DESC, v.uuid DESC
                     LIMIT $2 + 1) AS v)
        SELECT jsonb_build_object(
            'uuids', coalesce(jsonb_agg(page.uuid ORDER BY page.n) FILTER (WHERE page.n <= $2),
                              '[]'::jsonb),
            'vcons', CASE WHEN coalesce(($1 ->> 'include_vcons')::boolean, false) THEN
                coalesce(jsonb_agg(CASE WHEN coalesce(($1 ->> 'exact')::boolean, false)
                                        THEN conserver_vcon_read(page.uuid)
                                        ELSE conserver_vcon_load(page.uuid) END ORDER BY page.n)
                         FILTER (WHERE page.n <= $2), '[]'::jsonb) END,
            'more', count(*) > $2,
            'last', (SELECT jsonb_build_object('created_at', l.created_at, 'uuid', l.uuid)
                       FROM page l WHERE l.n = $2))
          FROM page$q$, array_to_string(conds, ' AND '))
    INTO result
    USING p_query, lim;
    RETURN result;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_search(jsonb)');
