-- conserver_mailto_key(text) -> text
--
-- "MAILTO:Ann@Example.com " -> "ann@example.com"; NULL if empty. IMMUTABLE: it backs the
-- index conserver_idx_parties_mailto_key.

CREATE OR REPLACE FUNCTION conserver_mailto_key(p_mailto text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT nullif(lower(regexp_replace(btrim(coalesce(p_mailto, '')), '^mailto:', '', 'i')), '')
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), deliberately: it backs an
-- expression index or a trigger, so every role that writes the rows evaluates it.
