-- conserver_like_literal(text) -> text
--
-- A LIKE pattern matching p_text literally: \, % and _ escaped (the default escape is
-- \).

CREATE OR REPLACE FUNCTION conserver_like_literal(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT replace(replace(replace(p_text, '\', '\\'), '%', '\%'), '_', '\_')
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), as since it was added: it
-- escapes a string and reads nothing.
