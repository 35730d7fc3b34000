-- conserver_vcon_search_where(jsonb) -> text
--
-- The condition of a search's page statement (docs/search.md), after checking the
-- query: the filters (an object of known names, each a string, tags an array of
-- strings) and the limit (1..1000); a bad one raises 22023 'invalid search: ...' with the
-- name in DETAIL. The condition is built from the fixed fragments below, one per given
-- filter, and one for "after" (the last row of the previous page). They read every value
-- from $1, the query itself, and name the vcons row v: the caller EXECUTEs its statement
-- with USING p_query (as $1) over "FROM vcons v WHERE <this>". Filter values never
-- become SQL text. conserver_vcon_search (uuids) and conserver_vcon_search_vcons (whole
-- vCons) page with it.
--
-- The filter "tenant" is internal (added by a storage with a fixed `tenant_id`): only
-- vCons of that tenant or without tenant, the rows vcon-mcp's policy shows an
-- authenticated user of that tenant. The indexes that serve the filters are created by
-- migration 0003.

CREATE OR REPLACE FUNCTION conserver_vcon_search_where(p_query jsonb)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f jsonb := coalesce(p_query -> 'filters', '{}'::jsonb);
    lim integer;
    conds text[] := ARRAY['true'];
    analysis_conds text[] := ARRAY[]::text[];
    name text;
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
        -- scan of vcons (measured by benchmarks/search.py).
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

    RETURN array_to_string(conds, ' AND ');
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_search_where(jsonb)');
