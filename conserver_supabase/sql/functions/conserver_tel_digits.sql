-- conserver_tel_digits(text) -> text
--
-- Digits only: "+1 (555) 010-0000", "tel:+15550100000" -> "15550100000"; NULL if none.
-- IMMUTABLE: it backs the index conserver_idx_parties_tel_digits.

CREATE OR REPLACE FUNCTION conserver_tel_digits(p_tel text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT nullif(regexp_replace(coalesce(p_tel, ''), '[^0-9]', '', 'g'), '')
$fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), deliberately: it backs an
-- expression index or a trigger, so every role that writes the rows evaluates it.
