-- conserver_tsv_parties() -> trigger
--
-- Trigger: parties.party_tsvector (name, mailto, tel), where vcon-mcp's own trigger is
-- absent (the same formula; migration 0003 creates the trigger). Unchanged text keeps
-- its tsvector (see conserver_tsv_vcons).

CREATE OR REPLACE FUNCTION conserver_tsv_parties() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.name, NEW.mailto, NEW.tel)
       IS NOT DISTINCT FROM (OLD.name, OLD.mailto, OLD.tel)
       AND OLD.party_tsvector IS NOT NULL THEN
        NEW.party_tsvector := OLD.party_tsvector;
    ELSE
        NEW.party_tsvector :=
            conserver_tsvector('simple', concat_ws(' ', NEW.name, NEW.mailto, NEW.tel), 'B');
    END IF;
    RETURN NEW;
END $fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), as since it was added: a
-- trigger function cannot be called directly; it runs when the trigger fires, for
-- whichever role writes the row.
