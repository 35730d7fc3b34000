-- conserver_tsv_vcons() -> trigger
--
-- Trigger: vcons.subject_tsvector, where vcon-mcp's own trigger is absent (the same
-- formula; migration 0003 creates the trigger). An UPDATE that leaves the text alone
-- keeps the tsvector it had: our saves upsert every row, and without this each re-save
-- would compute every tsvector again.

CREATE OR REPLACE FUNCTION conserver_tsv_vcons() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.subject IS NOT DISTINCT FROM OLD.subject
       AND OLD.subject_tsvector IS NOT NULL THEN
        NEW.subject_tsvector := OLD.subject_tsvector;
    ELSE
        NEW.subject_tsvector := conserver_tsvector('english', NEW.subject, 'A');
    END IF;
    RETURN NEW;
END $fn$;

-- Privileges: PostgreSQL's default (EXECUTE for PUBLIC), as since it was added: a
-- trigger function cannot be called directly; it runs when the trigger fires, for
-- whichever role writes the row.
