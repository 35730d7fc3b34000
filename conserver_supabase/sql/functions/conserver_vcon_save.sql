-- conserver_vcon_save(jsonb, jsonb) -> bigint
-- conserver_vcon_save(jsonb) -> bigint
--
-- Saves one vCon: its document and its vcon-mcp rows in one transaction, through
-- conserver_vcon_write. Returns the new version.
--
-- p_tenant is NULL (tenant_id left as it is) or {"tenant_id": text or null,
-- "exclusive": boolean}, decided in Python (conserver_supabase/tenants.py) and passed
-- NEXT TO the document, never inside it: the document table keeps the exact vCon. It is
-- checked here too, for callers that bypass Python (as conserver_vcon_check does).
-- The one-argument form is that call with NULL: the 0.1.0 API, kept as it is for its
-- callers. PostgREST tells the overloads apart by their argument names, psycopg by
-- their number.

CREATE OR REPLACE FUNCTION conserver_vcon_save(p_document jsonb, p_tenant jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path FROM CURRENT
SET timezone TO 'UTC'
AS $fn$
DECLARE
    v_uuid uuid := conserver_vcon_check(p_document);
BEGIN
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
    RETURN (conserver_vcon_write(
        jsonb_build_array(p_document),
        CASE WHEN jsonb_typeof(p_tenant) = 'object' THEN jsonb_build_array(p_tenant) END
    ) ->> v_uuid::text)::bigint;
END
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
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save(jsonb, jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_save(jsonb)');
