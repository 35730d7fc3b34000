-- conserver_vcon_save(jsonb, jsonb, jsonb) -> jsonb
-- conserver_vcon_save(jsonb, jsonb) -> bigint
-- conserver_vcon_save(jsonb) -> bigint
--
-- Saves one vCon: its document and its vcon-mcp rows in one transaction, through
-- conserver_vcon_write. Returns {"version": n} (the new version), with "vcon": the
-- vCon as saved when it was merged with another writer's changes (docs/database.md,
-- "Conflicts"; a conflict raises SQLSTATE CSC01 and writes nothing). The two- and
-- one-argument forms return the version alone.
--
-- p_document is the vCon, or its exact JSON text as a JSON string (kept as it is, in
-- document_text, and returned by conserver_vcon_read: key order, number spelling and
-- escapes; migration 0006). The object form keeps jsonb's rendition only.
--
-- p_base is NULL, {} (the version the copy was read at is not known) or {"version": n}:
-- the copy was read at version n. A copy read at the head version or later holds every
-- change another writer made, so it is saved as it is; otherwise it is merged.
--
-- p_tenant is NULL (tenant_id left as it is) or {"tenant_id": text or null,
-- "exclusive": boolean}, decided in Python (conserver_supabase/tenants.py) and passed
-- NEXT TO the document, never inside it: the document table keeps the exact vCon. It is
-- checked here too, for callers that bypass Python (as conserver_vcon_check does).
-- The one-argument form is that call with NULL: the 0.1.0 API, kept as it is for its
-- callers. PostgREST tells the overloads apart by their argument names, psycopg by
-- their number.

CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb, p_tenant jsonb, p_base jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_text   text := CASE WHEN jsonb_typeof(p_document) = 'string' THEN p_document #>> '{}' END;
    v_doc    jsonb := coalesce(v_text::jsonb, p_document);
    v_uuid   uuid := conserver_vcon_check(v_doc);
    v_result jsonb;
BEGIN
    IF p_base IS NOT NULL AND jsonb_typeof(p_base) <> 'null' AND NOT (
        jsonb_typeof(p_base) = 'object'
        AND coalesce(jsonb_typeof(p_base -> 'version'), 'number') = 'number'
    ) THEN
        RAISE EXCEPTION 'invalid base for vCon %: must be {"version": n} or {}', v_uuid
            USING ERRCODE = '22023', DETAIL = '(base)';
    END IF;
    IF p_tenant IS NOT NULL AND jsonb_typeof(p_tenant) <> 'null' AND NOT (
        jsonb_typeof(p_tenant) = 'object'
        AND jsonb_typeof(p_tenant -> 'tenant_id') IN ('string', 'null')
        AND coalesce(jsonb_typeof(p_tenant -> 'exclusive'), 'boolean') = 'boolean'
    ) THEN
        RAISE EXCEPTION 'invalid tenant for vCon %: must be {"tenant_id": text or null, "exclusive": boolean}', v_uuid
            USING ERRCODE = '22023', DETAIL = '(tenant)';
    END IF;
    -- Concurrent first saves of one new uuid would race on both unique indexes of
    -- vcons (id and uuid) and ON CONFLICT can arbitrate only one: serialize saves of
    -- the same uuid on a transaction-scoped advisory lock first.
    PERFORM pg_advisory_xact_lock(hashtextextended('conserver_vcon:' || v_uuid::text, 0));
    v_result := conserver_vcon_write(
        ARRAY[v_doc],
        CASE WHEN jsonb_typeof(p_tenant) = 'object' THEN jsonb_build_array(p_tenant) END,
        CASE WHEN jsonb_typeof(p_base -> 'version') = 'number'
             THEN jsonb_build_object(v_uuid::text, p_base -> 'version') END,
        CASE WHEN v_text IS NOT NULL THEN jsonb_build_array(p_document) END);
    RETURN CASE WHEN v_result ? 'merged'
                THEN jsonb_build_object('version', v_result -> v_uuid::text,
                                        'vcon', v_result -> 'merged' -> v_uuid::text)
                ELSE jsonb_build_object('version', v_result -> v_uuid::text) END;
END
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb, p_tenant jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT (conserver_vcon_save(p_document, p_tenant, NULL::jsonb) ->> 'version')::bigint
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
    SELECT conserver_vcon_save(p_document, NULL::jsonb)
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save(jsonb, jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save(jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save(jsonb)');
