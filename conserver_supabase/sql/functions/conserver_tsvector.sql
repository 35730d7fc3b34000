-- conserver_tsvector(regconfig, text, "char") -> tsvector
--
-- The tsvector of a text, or NULL when the text is too big for one (over 1 MB of
-- lexemes: PostgreSQL raises 54000): such a body is not searchable by text, but its vCon
-- still saves. The tsvector triggers (conserver_tsv_*) use it.

CREATE OR REPLACE FUNCTION conserver_tsvector(p_config regconfig, p_text text, p_weight "char")
RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL RESTRICTED
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN setweight(to_tsvector(p_config, coalesce(p_text, '')), p_weight);
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN NULL;
END
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), deliberately: it backs an
-- expression index or a trigger, so every role that writes the rows evaluates it.
