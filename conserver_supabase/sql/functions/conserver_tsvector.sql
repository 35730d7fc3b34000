-- conserver_tsvector(regconfig, text, "char") -> tsvector
--
-- The tsvector of a text, or NULL when the text is too big for one (over 1 MB of
-- lexemes: PostgreSQL raises 54000): such a body is not searchable by text, but its vCon
-- still saves. The tsvector triggers (conserver_tsv_*) use it.
--
-- Only a long text can reach that limit, so only a long text pays for the guard (an
-- EXCEPTION block is a subtransaction, and this runs once per row written). A text under
-- 128 KiB yields at most a few times its own size in lexemes (the parser adds a
-- compound's parts and a URL's host and path to the whole; lower case can lengthen a
-- character's UTF-8 by half), far below 1 MiB: the same value without the guard.

CREATE OR REPLACE FUNCTION conserver_tsvector(p_config regconfig, p_text text, p_weight "char")
RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL RESTRICTED
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF p_text IS NULL OR octet_length(p_text) < 131072 THEN
        RETURN setweight(to_tsvector(p_config, coalesce(p_text, '')), p_weight);
    END IF;
    BEGIN
        RETURN setweight(to_tsvector(p_config, p_text), p_weight);
    EXCEPTION WHEN program_limit_exceeded THEN
        RETURN NULL;
    END;
END
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), deliberately: it backs an
-- expression index or a trigger, so every role that writes the rows evaluates it.
