-- pg_temp.conserver_restrict_to_service_role(p_object text, p_revoke_from text[]), a
-- procedure: the privileges of one of our objects, set the same way by every file.
--
-- Everything is revoked from PUBLIC and from each role of p_revoke_from that exists,
-- then EXECUTE (a function) or SELECT, INSERT, UPDATE, DELETE (a table) is granted to
-- service_role where it exists. On a plain PostgreSQL without Supabase's roles only the
-- PUBLIC revoke applies; the owner keeps its rights. p_object is written as in GRANT:
-- 'FUNCTION name(types)' or 'TABLE name'; the name is resolved first, so an object that
-- does not exist fails here. anon and authenticated by default: Supabase's default
-- privileges grant them every new function and table, and ours are server-side calls.
--
-- Temporary on purpose: only migrations need it, so it lives in the migration
-- transaction alone. The runner and the printed script create it before anything else
-- (before any function file) and drop it before COMMIT (migrations.py), so the database
-- keeps no routine of its own for it and no other session ever sees it. PostgreSQL never
-- finds functions in pg_temp through search_path: every call names pg_temp. Applying a
-- function file or migration 0002/0003 by hand: run this file first, in the same session.
-- It has no SET search_path: names resolve in the schema being migrated, as the
-- calling file's do.
--
-- A change here reaches an object only when its file is applied again (a function file
-- whose text changes, a new migration).

CREATE OR REPLACE PROCEDURE pg_temp.conserver_restrict_to_service_role(
    p_object text, p_revoke_from text[] DEFAULT ARRAY['anon', 'authenticated'])
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_kind   text := split_part(p_object, ' ', 1);
    v_name   text := substr(p_object, length(v_kind) + 2);
    v_object text;
    v_grant  text;
    v_role   text;
BEGIN
    CASE v_kind
        WHEN 'FUNCTION' THEN
            v_object := 'FUNCTION ' || v_name::regprocedure::text;
            v_grant := 'EXECUTE';
        WHEN 'TABLE' THEN
            v_object := 'TABLE ' || v_name::regclass::text;
            v_grant := 'SELECT, INSERT, UPDATE, DELETE';
        ELSE
            RAISE EXCEPTION 'conserver_restrict_to_service_role: % is neither FUNCTION name(types) nor TABLE name',
                quote_literal(p_object);
    END CASE;
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', v_object);
    FOREACH v_role IN ARRAY p_revoke_from LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('REVOKE ALL ON %s FROM %I', v_object, v_role);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        EXECUTE format('GRANT %s ON %s TO service_role', v_grant, v_object);
    END IF;
END
$fn$;
