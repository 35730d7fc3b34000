-- conserver_read_body(text, text) -> jsonb
--
-- vcon-mcp's deserializeBody: with encoding none/absent, text that parses as JSON is
-- read back as that JSON value; anything else stays a string.

CREATE OR REPLACE FUNCTION conserver_read_body(body text, encoding text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF body IS NULL THEN
        RETURN NULL;
    END IF;
    IF encoding IS NULL OR encoding = 'none' THEN
        BEGIN
            RETURN body::jsonb;
        EXCEPTION WHEN others THEN
            NULL;  -- not JSON: fall through to the string
        END;
    END IF;
    RETURN to_jsonb(body);
END
$fn$;

-- Privileges: EXECUTE revoked from PUBLIC and anon, granted to service_role. As released
-- in 0.1.0, authenticated is left alone (it keeps what Supabase's default privileges give
-- it); only the conserver_vcon_* functions are closed to it.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_read_body(text, text)', ARRAY['anon']);
