-- conserver_vcon_save_many(jsonb, jsonb, jsonb) -> jsonb
-- conserver_vcon_save_many(jsonb, jsonb) -> jsonb
-- conserver_vcon_save_many(jsonb) -> jsonb
--
-- Saves many vCons (a JSON array) in one transaction, all or nothing, and returns
-- {"<uuid>": version, ...}; the three-argument form adds "merged": {"<uuid>": vCon}
-- for the vCons merged with another writer's changes (docs/database.md, "Conflicts":
-- a conflict of any of them raises SQLSTATE CSC01 and writes nothing of the batch). Every vCon is checked before anything is written (a bad
-- one fails the batch), then the advisory locks of all uuids are taken in one fixed
-- order (two batches sharing uuids wait for each other instead of deadlocking) and
-- conserver_vcon_write writes the batch in one statement. A batch that names a uuid
-- twice is saved one vCon after the other, in order (the same row cannot be upserted
-- twice in one statement).
--
-- p_tenants is NULL (tenant_id left as it is) or an array as long as p_documents of
-- {"tenant_id", "exclusive"} objects, the n-th for the n-th vCon (see
-- conserver_vcon_save). p_bases is NULL or an array as long as p_documents of bases
-- (NULL, {} or {"version": n}, as conserver_vcon_save's p_base). The two- and
-- one-argument forms are that call with NULLs, without "merged": the 0.1.0 API, kept
-- as it is for its callers. An element of p_documents may be the vCon's exact JSON text
-- (a JSON string), kept as conserver_vcon_save keeps it.

CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb, p_tenants jsonb, p_bases jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_batch    jsonb[];
    v_texts    jsonb;
    v_document jsonb;
    v_index    bigint;
    v_uuids    uuid[] := '{}';
    v_result   jsonb := '{}';
    v_saved    jsonb;
    v_versions jsonb;
BEGIN
    IF jsonb_typeof(p_documents) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid vCon batch: must be a JSON array of vCons'
            USING ERRCODE = '22023', DETAIL = '(batch)';
    END IF;
    IF jsonb_typeof(p_tenants) = 'null' THEN
        p_tenants := NULL;
    END IF;
    IF jsonb_typeof(p_bases) = 'null' THEN
        p_bases := NULL;
    END IF;
    IF p_bases IS NOT NULL AND (jsonb_typeof(p_bases) <> 'array'
                                OR jsonb_array_length(p_bases) <> jsonb_array_length(p_documents)) THEN
        RAISE EXCEPTION 'invalid vCon batch: the bases must be an array with one entry per vCon'
            USING ERRCODE = '22023', DETAIL = '(bases)';
    END IF;
    IF p_tenants IS NOT NULL AND (jsonb_typeof(p_tenants) <> 'array'
                                  OR jsonb_array_length(p_tenants) <> jsonb_array_length(p_documents)) THEN
        RAISE EXCEPTION 'invalid vCon batch: the tenants must be an array with one entry per vCon'
            USING ERRCODE = '22023', DETAIL = '(tenants)';
    END IF;
    -- Elements given as exact JSON text (JSON strings, see conserver_vcon_save): parsed
    -- here, their texts kept beside them (p_documents is then the texts). The batch as a
    -- PostgreSQL array, for conserver_vcon_write: a jsonb array would rebuild every
    -- document in it.
    SELECT array_agg(CASE WHEN jsonb_typeof(e) = 'string' THEN (e #>> '{}')::jsonb ELSE e END
                     ORDER BY o),
           CASE WHEN bool_or(jsonb_typeof(e) = 'string') THEN p_documents END
      INTO v_batch, v_texts
      FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS t (e, o);
    FOREACH v_document IN ARRAY coalesce(v_batch, '{}') LOOP
        v_uuids := v_uuids || conserver_vcon_check(v_document);
    END LOOP;
    IF cardinality(v_uuids) > (SELECT count(DISTINCT x) FROM unnest(v_uuids) AS x) THEN
        FOR v_document, v_index IN
            SELECT e, o FROM jsonb_array_elements(p_documents) WITH ORDINALITY AS t (e, o)
        LOOP
            v_saved := conserver_vcon_save(v_document, p_tenants -> (v_index - 1)::integer,
                                           p_bases -> (v_index - 1)::integer);
            v_result := v_result || jsonb_build_object(v_uuids[v_index]::text, v_saved -> 'version');
            -- merged earlier and saved again unmerged: the last save's document stands
            v_result := CASE WHEN v_saved ? 'vcon'
                             THEN jsonb_set(v_result, '{merged}', coalesce(v_result -> 'merged', '{}')
                                            || jsonb_build_object(v_uuids[v_index]::text, v_saved -> 'vcon'))
                             ELSE v_result #- ARRAY['merged', v_uuids[v_index]::text] END;
        END LOOP;
        RETURN v_result;
    END IF;
    IF p_tenants IS NOT NULL THEN  -- the same checks as the single save's
        FOR v_document, v_index IN
            SELECT e, o FROM jsonb_array_elements(p_tenants) WITH ORDINALITY AS t (e, o)
        LOOP
            IF NOT (jsonb_typeof(v_document) = 'object'
                    AND jsonb_typeof(v_document -> 'tenant_id') IN ('string', 'null')
                    AND coalesce(jsonb_typeof(v_document -> 'exclusive'), 'boolean') = 'boolean') THEN
                RAISE EXCEPTION 'invalid tenant for vCon %: must be {"tenant_id": text or null, "exclusive": boolean}',
                    v_uuids[v_index]
                    USING ERRCODE = '22023', DETAIL = '(tenant)';
            END IF;
        END LOOP;
    END IF;
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT hashtextextended('conserver_vcon:' || x::text, 0) AS k
               FROM unnest(v_uuids) AS x ORDER BY 1) AS keys;
    IF p_bases IS NOT NULL THEN
        SELECT jsonb_object_agg(d.u::text, b.e -> 'version')
                   FILTER (WHERE jsonb_typeof(b.e -> 'version') = 'number')
          INTO v_versions
          FROM unnest(v_uuids) WITH ORDINALITY AS d (u, o)
          JOIN jsonb_array_elements(p_bases) WITH ORDINALITY AS b (e, o) ON b.o = d.o;
    END IF;
    RETURN conserver_vcon_write(v_batch, p_tenants, v_versions, v_texts);
END
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb, p_tenants jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_save_many(p_documents, p_tenants, NULL::jsonb) - 'merged'
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_save_many(p_documents jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_save_many(p_documents, NULL::jsonb)
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save_many(jsonb, jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save_many(jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save_many(jsonb)');
