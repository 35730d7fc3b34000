-- conserver_tsv_body() -> trigger
--
-- Trigger: the body_tsvector of dialog (weight D) and of analysis (weight B), where
-- vcon-mcp's own triggers are absent (the same formula; migration 0003 creates the
-- triggers, passing the weight as the trigger's argument). Base64 bodies get no tsvector
-- (media is not text, and large recordings stay insertable); unchanged text keeps its
-- tsvector (see conserver_tsv_vcons).

CREATE OR REPLACE FUNCTION conserver_tsv_body() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.body, NEW.encoding) IS NOT DISTINCT FROM (OLD.body, OLD.encoding)
       AND OLD.body_tsvector IS NOT NULL THEN
        NEW.body_tsvector := OLD.body_tsvector;
    ELSIF coalesce(NEW.encoding, 'none') IN ('base64url', 'base64') THEN
        NEW.body_tsvector := NULL;
    ELSE
        NEW.body_tsvector := conserver_tsvector('english', NEW.body, TG_ARGV[0]::"char");
    END IF;
    RETURN NEW;
END $fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), as since it was added: a
-- trigger function cannot be called directly; it runs when the trigger fires, for
-- whichever role writes the row.
