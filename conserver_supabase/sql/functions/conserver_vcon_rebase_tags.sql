-- conserver_vcon_rebase_tags(jsonb, jsonb, jsonb, jsonb) -> jsonb
--
-- The tags attachment (type = 'tags', a JSON array of "key:value" strings) changed by
-- both sides, for conserver_vcon_rebase: p_base, p_theirs and p_ours are its bodies in
-- projected form (a JSON array, or its JSON text), p_element our attachment. Returns
-- p_element with the body theirs + (ours - base) - (base - ours), in theirs' order then
-- ours' additions, as JSON text when our body is text; NULL (a conflict) when a body is
-- not such an array or when ours and theirs both set one key to different values.

CREATE OR REPLACE FUNCTION conserver_vcon_rebase_tags(p_base jsonb, p_theirs jsonb, p_ours jsonb, p_element jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_sets   jsonb[] := ARRAY[p_base, p_theirs, p_ours];
    v_base   text[];
    v_theirs text[];
    v_ours   text[];
    v_merged text[];
    i        integer;
BEGIN
    FOR i IN 1 .. 3 LOOP
        IF jsonb_typeof(v_sets[i]) = 'string' THEN
            BEGIN
                v_sets[i] := (v_sets[i] #>> '{}')::jsonb;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END;
        END IF;
        IF coalesce(jsonb_typeof(v_sets[i]), 'null') = 'null' THEN
            v_sets[i] := '[]';
        END IF;
        IF jsonb_typeof(v_sets[i]) <> 'array'
           OR jsonb_path_exists(v_sets[i], '$[*] ? (@.type() != "string")') THEN
            RETURN NULL;
        END IF;
    END LOOP;
    v_base := ARRAY(SELECT jsonb_array_elements_text(v_sets[1]));
    v_theirs := ARRAY(SELECT jsonb_array_elements_text(v_sets[2]));
    v_ours := ARRAY(SELECT jsonb_array_elements_text(v_sets[3]));
    IF EXISTS (SELECT FROM unnest(v_ours) AS a, unnest(v_theirs) AS t
                WHERE NOT a = ANY (v_base) AND NOT t = ANY (v_base) AND a <> t
                  AND split_part(a, ':', 1) = split_part(t, ':', 1)
                  AND NOT t = ANY (v_ours) AND NOT a = ANY (v_theirs)) THEN
        RETURN NULL;  -- one key set to two values
    END IF;
    v_merged := ARRAY(SELECT t FROM unnest(v_theirs) WITH ORDINALITY AS x (t, n)
                       WHERE NOT (t = ANY (v_base) AND NOT t = ANY (v_ours)) ORDER BY n)
             || ARRAY(SELECT a FROM unnest(v_ours) WITH ORDINALITY AS x (a, n)
                       WHERE NOT a = ANY (v_base) AND NOT a = ANY (v_theirs) ORDER BY n);
    RETURN p_element || jsonb_build_object('body',
        CASE WHEN jsonb_typeof(p_element -> 'body') = 'string' THEN to_jsonb(to_jsonb(v_merged)::text)
             ELSE to_jsonb(v_merged) END);
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_rebase_tags(jsonb, jsonb, jsonb, jsonb)');
