-- Search: conserver_vcon_search(jsonb), the indexes that serve it, and the tsvector
-- maintenance vcon-mcp's triggers do in its own layout (added here only where those
-- triggers are absent, i.e. in tables 0001 created).

-- ---------------------------------------------------------------------------
-- Normalizing helpers (IMMUTABLE: they back expression indexes).
-- ---------------------------------------------------------------------------

-- Digits only: "+1 (555) 010-0000", "tel:+15550100000" -> "15550100000"; NULL if none.
CREATE OR REPLACE FUNCTION conserver_tel_digits(p_tel text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT nullif(regexp_replace(coalesce(p_tel, ''), '[^0-9]', '', 'g'), '')
$fn$;

-- "MAILTO:Ann@Example.com " -> "ann@example.com"; NULL if empty.
CREATE OR REPLACE FUNCTION conserver_mailto_key(p_mailto text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT nullif(lower(regexp_replace(btrim(coalesce(p_mailto, '')), '^mailto:', '', 'i')), '')
$fn$;

-- The "key:value" strings of a tags attachment body (JSON text array); NULL when the
-- body is not such an array (another writer's malformed row must not break an index).
-- PARALLEL RESTRICTED: its EXCEPTION block opens a subtransaction, which PostgreSQL 15
-- refuses inside a parallel worker.
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

-- LIKE pattern matching p_text literally: \, % and _ escaped (default escape is \).
CREATE OR REPLACE FUNCTION conserver_like_literal(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT replace(replace(replace(p_text, '\', '\\'), '%', '\%'), '_', '\_')
$fn$;

-- ---------------------------------------------------------------------------
-- tsvector maintenance where vcon-mcp's triggers are absent (same formulas; base64
-- dialog bodies get no tsvector, which also keeps large recordings insertable).
-- ---------------------------------------------------------------------------
-- conserver_tsvector(config, text, weight): the tsvector, or NULL when the text is too
-- big for one (over 1 MB of lexemes: PostgreSQL raises 54000) -- such a body is not
-- searchable by text, but its vCon still saves.
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

-- The triggers skip the work when an UPDATE leaves the text alone (our saves upsert
-- every row: without this each re-save would compute every tsvector again).
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

CREATE OR REPLACE FUNCTION conserver_tsv_dialog() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.body, NEW.encoding) IS NOT DISTINCT FROM (OLD.body, OLD.encoding)
       AND OLD.body_tsvector IS NOT NULL THEN
        NEW.body_tsvector := OLD.body_tsvector;
    ELSIF coalesce(NEW.encoding, 'none') IN ('base64url', 'base64') THEN
        NEW.body_tsvector := NULL;
    ELSE
        NEW.body_tsvector := conserver_tsvector('english', NEW.body, 'D');
    END IF;
    RETURN NEW;
END $fn$;

CREATE OR REPLACE FUNCTION conserver_tsv_analysis() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.body, NEW.encoding) IS NOT DISTINCT FROM (OLD.body, OLD.encoding)
       AND OLD.body_tsvector IS NOT NULL THEN
        NEW.body_tsvector := OLD.body_tsvector;
    ELSIF coalesce(NEW.encoding, 'none') IN ('base64url', 'base64') THEN
        NEW.body_tsvector := NULL;
    ELSE
        NEW.body_tsvector := conserver_tsvector('english', NEW.body, 'B');
    END IF;
    RETURN NEW;
END $fn$;

DO $tsv$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['vcons', 'trigger_vcons_subject_tsvector', 'conserver_tsv_vcons', 'subject',
         'subject_tsvector'],
        ['parties', 'trigger_parties_party_tsvector', 'conserver_tsv_parties', 'name, mailto, tel',
         'party_tsvector'],
        ['dialog', 'trigger_dialog_body_tsvector', 'conserver_tsv_dialog', 'body, encoding',
         'body_tsvector'],
        ['analysis', 'trigger_analysis_body_tsvector', 'conserver_tsv_analysis', 'body, encoding',
         'body_tsvector']
    ] LOOP
        IF EXISTS (
            SELECT FROM pg_trigger t
             WHERE t.tgrelid = format('%I', spec[1])::regclass
               AND t.tgname IN (spec[2], spec[3])
        ) THEN
            CONTINUE;  -- vcon-mcp (or an earlier run) maintains this column already
        END IF;
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %I '
            'FOR EACH ROW EXECUTE FUNCTION %I()', spec[3], spec[4], spec[1], spec[3]);
        -- fill the rows written before the trigger existed (the trigger computes it)
        EXECUTE format('UPDATE %I SET %s = %s WHERE %I IS NULL',
            spec[1], split_part(spec[4], ',', 1), split_part(spec[4], ',', 1), spec[5]);
    END LOOP;
END
$tsv$;

-- ---------------------------------------------------------------------------
-- Indexes. vcon-mcp's names where it has the same index, so nothing is built twice.
-- ---------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS conserver_idx_vcons_created_uuid ON vcons (created_at DESC, uuid DESC);
CREATE INDEX IF NOT EXISTS idx_vcons_updated_at ON vcons (updated_at);
CREATE INDEX IF NOT EXISTS idx_vcons_subject_tsvector_gin ON vcons USING gin (subject_tsvector)
    WHERE subject_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_parties_party_tsvector_gin ON parties USING gin (party_tsvector)
    WHERE party_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_dialog_body_tsvector_gin ON dialog USING gin (body_tsvector)
    WHERE body_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_analysis_body_tsvector_gin ON analysis USING gin (body_tsvector)
    WHERE body_tsvector IS NOT NULL;
CREATE INDEX IF NOT EXISTS conserver_idx_parties_tel_digits
    ON parties (conserver_tel_digits(tel), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_parties_mailto_key
    ON parties (conserver_mailto_key(mailto), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_parties_uuid ON parties (lower(uuid), vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_dialog_type ON dialog (type, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_analysis_type_vendor ON analysis (type, vendor, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_analysis_vendor ON analysis (vendor, vcon_id);
CREATE INDEX IF NOT EXISTS conserver_idx_attachments_tags
    ON attachments USING gin (conserver_tags(body)) WHERE type = 'tags';

-- Trigram indexes for the substring filters (subject, party name), when pg_trgm is
-- available (Supabase installs it in schema "extensions"; the operator class is found
-- wherever it lives). Without it those filters still work, by scanning.
DO $trgm$
DECLARE
    ext_schema text;
BEGIN
    SELECT extnamespace::regnamespace::text INTO ext_schema
      FROM pg_extension WHERE extname = 'pg_trgm';
    IF ext_schema IS NULL THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
            RAISE NOTICE 'pg_trgm is not available: subject/name search will scan';
            RETURN;
        END;
        SELECT extnamespace::regnamespace::text INTO ext_schema
          FROM pg_extension WHERE extname = 'pg_trgm';
    END IF;
    EXECUTE format('CREATE INDEX IF NOT EXISTS conserver_idx_vcons_subject_trgm '
                   'ON vcons USING gin (subject %s.gin_trgm_ops)', ext_schema);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_parties_name_trgm '
                   'ON parties USING gin (name %s.gin_trgm_ops)', ext_schema);
END
$trgm$;

-- ---------------------------------------------------------------------------
-- conserver_vcon_search(p_query jsonb) -> jsonb
--
-- p_query = {"filters": {...}, "limit": n, "after": {"created_at", "uuid"} | null,
--            "include_vcons": bool}
-- returns  {"uuids": [...], "vcons": [...] | null, "more": bool,
--           "last": {"created_at", "uuid"} | null}
--
-- Newest first (created_at DESC, uuid DESC); "after" is the last row of the previous
-- page (keyset pagination: rows inserted meanwhile never shift a page). Filter values
-- stay inside p_query: the statement text only ever contains the fixed fragments below.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION conserver_vcon_search(p_query jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f jsonb := coalesce(p_query -> 'filters', '{}'::jsonb);
    lim integer;
    conds text[] := ARRAY['true'];
    analysis_conds text[] := ARRAY[]::text[];
    name text;
    result jsonb;
BEGIN
    IF jsonb_typeof(f) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'invalid search: filters must be a JSON object'
            USING ERRCODE = '22023', DETAIL = 'filters';
    END IF;
    FOR name IN SELECT jsonb_object_keys(f) LOOP
        IF name NOT IN ('text', 'subject', 'tel', 'mailto', 'name', 'party_uuid', 'tags',
                        'created_after', 'created_before', 'updated_after', 'updated_before',
                        'dialog_type', 'analysis_type', 'analysis_vendor') THEN
            RAISE EXCEPTION 'invalid search: unknown filter %', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
        IF name = 'tags' THEN
            IF jsonb_typeof(f -> name) <> 'array' OR EXISTS (
                SELECT FROM jsonb_array_elements(f -> name) AS e WHERE jsonb_typeof(e) <> 'string'
            ) THEN
                RAISE EXCEPTION 'invalid search: tags must be an array of "key:value" strings'
                    USING ERRCODE = '22023', DETAIL = name;
            END IF;
        ELSIF jsonb_typeof(f -> name) <> 'string' THEN
            RAISE EXCEPTION 'invalid search: % must be a string', name
                USING ERRCODE = '22023', DETAIL = name;
        END IF;
    END LOOP;
    lim := coalesce((p_query ->> 'limit')::integer, 50);
    IF lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'invalid search: limit must be between 1 and 1000'
            USING ERRCODE = '22023', DETAIL = 'limit';
    END IF;

    IF f ? 'text' THEN
        -- = ANY (ARRAY(...)): the matches are collected first (four GIN lookups) and
        -- then fetched by uuid; "IN (...)" let the planner hash-join them against a full
        -- scan of vcons (measured by scripts/bench_search.py).
        conds := array_append(conds, $c$v.uuid = ANY (ARRAY(
            SELECT x.uuid FROM vcons x
             WHERE x.subject_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
            UNION
            SELECT p.vcon_id FROM parties p
             WHERE p.party_tsvector @@ websearch_to_tsquery('simple', $1 #>> '{filters,text}')
            UNION
            SELECT d.vcon_id FROM dialog d
             WHERE d.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND d.type = 'text' AND coalesce(d.encoding, 'none') NOT IN ('base64url', 'base64')
            UNION
            SELECT a.vcon_id FROM analysis a
             WHERE a.body_tsvector @@ websearch_to_tsquery('english', $1 #>> '{filters,text}')
               AND coalesce(a.encoding, 'none') NOT IN ('base64url', 'base64')))$c$);
    END IF;
    IF f ? 'subject' THEN
        conds := array_append(conds, $c$v.subject ILIKE
            '%' || conserver_like_literal($1 #>> '{filters,subject}') || '%'$c$);
    END IF;
    IF f ? 'tel' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_tel_digits(p.tel) = conserver_tel_digits($1 #>> '{filters,tel}'))$c$);
    END IF;
    IF f ? 'mailto' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE conserver_mailto_key(p.mailto)
                = conserver_mailto_key($1 #>> '{filters,mailto}'))$c$);
    END IF;
    IF f ? 'name' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE p.name ILIKE '%' || conserver_like_literal($1 #>> '{filters,name}') || '%')$c$);
    END IF;
    IF f ? 'party_uuid' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT p.vcon_id FROM parties p
            WHERE lower(p.uuid) = lower($1 #>> '{filters,party_uuid}'))$c$);
    END IF;
    IF f ? 'tags' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT t.vcon_id FROM attachments t
            WHERE t.type = 'tags' AND conserver_tags(t.body)
                @> ARRAY(SELECT jsonb_array_elements_text($1 #> '{filters,tags}')))$c$);
    END IF;
    IF f ? 'created_after' THEN
        conds := array_append(conds, $c$v.created_at >= ($1 #>> '{filters,created_after}')::timestamptz$c$);
    END IF;
    IF f ? 'created_before' THEN
        conds := array_append(conds, $c$v.created_at < ($1 #>> '{filters,created_before}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_after' THEN
        conds := array_append(conds, $c$v.updated_at >= ($1 #>> '{filters,updated_after}')::timestamptz$c$);
    END IF;
    IF f ? 'updated_before' THEN
        conds := array_append(conds, $c$v.updated_at < ($1 #>> '{filters,updated_before}')::timestamptz$c$);
    END IF;
    IF f ? 'dialog_type' THEN
        conds := array_append(conds, $c$v.uuid IN (SELECT d.vcon_id FROM dialog d
            WHERE d.type = $1 #>> '{filters,dialog_type}')$c$);
    END IF;
    IF f ? 'analysis_type' THEN
        analysis_conds := array_append(analysis_conds, $c$a.type = $1 #>> '{filters,analysis_type}'$c$);
    END IF;
    IF f ? 'analysis_vendor' THEN
        analysis_conds := array_append(analysis_conds, $c$a.vendor = $1 #>> '{filters,analysis_vendor}'$c$);
    END IF;
    IF cardinality(analysis_conds) > 0 THEN
        conds := conds || format('v.uuid IN (SELECT a.vcon_id FROM analysis a WHERE %s)',
                                 array_to_string(analysis_conds, ' AND '));
    END IF;
    IF jsonb_typeof(p_query -> 'after') = 'object' THEN
        conds := array_append(conds, $c$(v.created_at, v.uuid) < (($1 #>> '{after,created_at}')::timestamptz,
                                                    ($1 #>> '{after,uuid}')::uuid)$c$);
    END IF;

    EXECUTE format($q$
        WITH page AS (
            SELECT v.uuid, v.created_at,
                   row_number() OVER (ORDER BY v.created_at DESC, v.uuid DESC) AS n
              FROM (SELECT v.uuid, v.created_at FROM vcons v
                     WHERE %s
                     ORDER BY v.created_at DESC, v.uuid DESC
                     LIMIT $2 + 1) AS v)
        SELECT jsonb_build_object(
            'uuids', coalesce(jsonb_agg(page.uuid ORDER BY page.n) FILTER (WHERE page.n <= $2),
                              '[]'::jsonb),
            'vcons', CASE WHEN coalesce(($1 ->> 'include_vcons')::boolean, false) THEN
                coalesce(jsonb_agg(conserver_vcon_load(page.uuid) ORDER BY page.n)
                         FILTER (WHERE page.n <= $2), '[]'::jsonb) END,
            'more', count(*) > $2,
            'last', (SELECT jsonb_build_object('created_at', l.created_at, 'uuid', l.uuid)
                       FROM page l WHERE l.n = $2))
          FROM page$q$, array_to_string(conds, ' AND '))
    INTO result
    USING p_query, lim;
    RETURN result;
END
$fn$;

-- The search function: service_role only, like the others. Supabase's default
-- privileges also give `authenticated` EXECUTE on new functions: revoked here for every
-- conserver_vcon_* function (0002 and 0003 left it; these are server-side calls).
-- The IMMUTABLE helpers keep PostgreSQL's default EXECUTE for everyone: they back
-- expression indexes and triggers, so every role that writes rows evaluates them.
DO $grants$
DECLARE
    fn regprocedure;
BEGIN
    REVOKE ALL ON FUNCTION conserver_vcon_search(jsonb) FROM PUBLIC;
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND p.proname LIKE 'conserver\_vcon\_%'
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM anon', fn);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM authenticated', fn);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION conserver_vcon_search(jsonb) TO service_role;
    END IF;
END
$grants$;
