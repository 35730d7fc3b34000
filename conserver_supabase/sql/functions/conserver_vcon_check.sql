-- conserver_vcon_check(jsonb) -> uuid
--
-- Structural guards for callers that bypass the Python validator; returns the vCon's
-- uuid. The message names the field; SQLSTATE 22023 (invalid_parameter_value), with the
-- field in DETAIL, is what the Python side turns into InvalidVconError. The common case
-- (every element of every array is an object) is answered by one jsonpath test per array
-- instead of a query per array.

CREATE OR REPLACE FUNCTION conserver_vcon_check(p_document jsonb)
RETURNS uuid
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_text  text := p_document ->> 'uuid';
    v_name  text;
    v_array jsonb;
    v_bad   bigint;
BEGIN
    IF jsonb_typeof(p_document) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid vCon: (document): must be a JSON object'
            USING ERRCODE = '22023', DETAIL = '(document)';
    END IF;
    IF v_text IS NULL OR v_text !~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'invalid vCon: uuid: must be a UUID string'
            USING ERRCODE = '22023', DETAIL = 'uuid';
    END IF;
    FOREACH v_name IN ARRAY ARRAY['parties', 'dialog', 'analysis', 'attachments'] LOOP
        v_array := p_document -> v_name;
        CONTINUE WHEN v_array IS NULL OR jsonb_typeof(v_array) = 'null';
        IF jsonb_typeof(v_array) <> 'array' THEN
            RAISE EXCEPTION 'invalid vCon %: %: must be an array', v_text, v_name
                USING ERRCODE = '22023', DETAIL = v_name;
        END IF;
        CONTINUE WHEN NOT jsonb_path_exists(v_array, '$[*] ? (@.type() != "object")');
        SELECT min(o) - 1 INTO v_bad
          FROM jsonb_array_elements(v_array) WITH ORDINALITY AS t (e, o)
         WHERE jsonb_typeof(e) <> 'object';
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'invalid vCon %: %[%]: must be a JSON object', v_text, v_name, v_bad
                USING ERRCODE = '22023', DETAIL = format('%s[%s]', v_name, v_bad);
        END IF;
    END LOOP;
    RETURN v_text::uuid;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_check(jsonb)');
