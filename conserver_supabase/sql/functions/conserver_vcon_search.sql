-- conserver_vcon_search(jsonb) -> jsonb
-- conserver_vcon_search(jsonb, boolean) -> json
--
-- One page of a search (docs/search.md):
--
-- p_query = {"filters": {...}, "limit": n, "after": {"created_at", "uuid"} | null,
--            "include_vcons": bool, "exact": bool}
-- returns  {"uuids": [...], "vcons": [...] | null, "more": bool,
--           "last": {"created_at", "uuid"} | null}
-- "vcons" holds the vCons (conserver_vcon_load), or with "exact" what
-- conserver_vcon_read returns for each: the vCon as saved, as a get returns it.
--
-- The storage calls the second form, in json, with p_vcons for whole vCons (instead of
-- p_query's "include_vcons"). There each "exact" entry carries the text as the JSON it
-- is, not as a JSON string: {"version": n, "vcon": <the exact JSON text the vCon was
-- saved as>} while the stored document is current and has its text, else
-- conserver_vcon_fetch's {"version": n, "vcon": {...}} (a vCon merged with other
-- writers' changes, one saved without its text, one only other writers wrote). json
-- keeps a text exactly as given, so the client's JSON parser (the driver, PostgREST's
-- client) reads each vCon once, with the page. The first form, in jsonb, answers as
-- before for callers of the SQL function that predate the second: its texts are JSON
-- strings ({"version", "text"}), escaped here, unescaped by the client and parsed a
-- second time (measured by benchmarks/search.py).
--
-- Newest first (created_at DESC, uuid DESC); "after" is the last row of the previous
-- page (keyset pagination: rows inserted meanwhile never shift a page). The filters, the
-- limit and "after" are checked and turned into the page's condition by
-- conserver_vcon_search_where, whose fragments read every value from $1 (p_query): the
-- statement text only ever contains fixed fragments.

CREATE OR REPLACE FUNCTION conserver_vcon_search(p_query jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    cond text;
    lim integer;
    result jsonb;
BEGIN
    cond := conserver_vcon_search_where(p_query);  -- raises on a bad query
    lim := coalesce((p_query ->> 'limit')::integer, 50);

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
                coalesce(jsonb_agg(CASE WHEN coalesce(($1 ->> 'exact')::boolean, false)
                                        THEN conserver_vcon_read(page.uuid)
                                        ELSE conserver_vcon_load(page.uuid) END ORDER BY page.n)
                         FILTER (WHERE page.n <= $2), '[]'::jsonb) END,
            'more', count(*) > $2,
            'last', (SELECT jsonb_build_object('created_at', l.created_at, 'uuid', l.uuid)
                       FROM page l WHERE l.n = $2))
          FROM page$q$, cond)
    INTO result
    USING p_query, lim;
    RETURN result;
END
$fn$;

CREATE OR REPLACE FUNCTION conserver_vcon_search(p_query jsonb, p_vcons boolean)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path FROM CURRENT
-- Its page statement is plain enough for a parallel plan, which the jsonb form's never
-- is (it calls conserver_vcon_read): walking created_at in workers, estimated cheaper
-- than collecting a filter's matches, ran 5-20x slower for mailto and party_uuid at
-- 100,000 vCons (benchmarks/search.py). One page is small work: no workers.
SET max_parallel_workers_per_gather = 0
AS $fn$
DECLARE
    cond text;
    lim integer;
    uuids uuid[];
    created timestamptz[];
    result json;
BEGIN
    cond := conserver_vcon_search_where(p_query);  -- raises on a bad query
    lim := coalesce((p_query ->> 'limit')::integer, 50);

    -- The page, one row past it (there are more): the statement its filters make,
    -- planned for each call as conserver_vcon_search's is.
    EXECUTE format($q$
        SELECT array_agg(v.uuid ORDER BY v.created_at DESC, v.uuid DESC),
               array_agg(v.created_at ORDER BY v.created_at DESC, v.uuid DESC)
          FROM (SELECT v.uuid, v.created_at FROM vcons v
                 WHERE %s
                 ORDER BY v.created_at DESC, v.uuid DESC
                 LIMIT $2 + 1) AS v$q$, cond)
    INTO uuids, created
    USING p_query, lim;

    -- Its vCons: a fixed statement, so its plan is kept from call to call. The document
    -- row is joined (conserver_vcon_read's rule inline: one index probe per vCon in the
    -- common case, no function call).
    SELECT json_build_object(
        'uuids', coalesce(to_json(uuids[1:lim]), '[]'::json),
        'vcons', CASE WHEN p_vcons THEN coalesce((
            SELECT json_agg(CASE
                       WHEN NOT coalesce((p_query ->> 'exact')::boolean, false)
                           THEN conserver_vcon_load(hit.uuid)::json
                       WHEN doc.version = doc.document_version AND doc.document_text IS NOT NULL
                           THEN json_build_object('version', doc.version,
                                                  'vcon', doc.document_text::json)
                       ELSE conserver_vcon_fetch(hit.uuid)::json END ORDER BY hit.n)
              FROM unnest(uuids[1:lim]) WITH ORDINALITY AS hit (uuid, n)
              -- One index probe per vCon whatever the plan: a plain join's generic plan
              -- (kept from call to call) can turn into a hash join over every document
              -- row (seen at 100,000 vCons: 17-74 ms added to a page); LIMIT 1 keeps the
              -- subquery a lateral probe.
              LEFT JOIN LATERAL (
                  SELECT d.version, d.document_version, d.document_text
                    FROM conserver_vcon_documents d WHERE d.uuid = hit.uuid LIMIT 1
              ) doc ON true), '[]'::json) END,
        'more', coalesce(cardinality(uuids), 0) > lim,
        'last', CASE WHEN cardinality(uuids) >= lim
                     THEN json_build_object('created_at', created[lim], 'uuid', uuids[lim]) END)
      INTO result;
    RETURN result;
END
$fn$;

-- Privileges: EXECUTE for service_role (and the owner) only.
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_search(jsonb)');
CALL pg_temp.conserver_restrict_to_service_role('FUNCTION conserver_vcon_search(jsonb, boolean)');
