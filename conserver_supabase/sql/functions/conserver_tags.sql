-- conserver_tags(text) -> text[]
--
-- The "key:value" strings of a tags attachment body (JSON text array); NULL when the
-- body is not such an array (another writer's malformed row must not break an index: it
-- backs conserver_idx_attachments_tags). PARALLEL RESTRICTED: its EXCEPTION block opens
-- a subtransaction, which PostgreSQL 15 refuses inside a parallel worker.

CREATE OR REPLACE FUNCTION conserver_tags(p_body text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL RESTRICTED
SET search_path FROM CURRENT
AS $fn$
DECLARE
    parsed jsonb;
BEGIN
    parsed := p_body::jsonb;
    IF jsonb_typeof(parsed) <> 'array' THEN
        RETURN NULL;
    END IF;
    RETURN ARRAY(SELECT e FROM jsonb_array_elements_text(parsed) AS e);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), deliberately: it backs an
-- expression index or a trigger, so every role that writes the rows evaluates it.
