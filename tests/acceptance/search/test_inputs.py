"""Search's inputs against a real PostgreSQL, on both transports: errors named before
anything is sent, injection attempts matched only literally, one database round trip
per call, times without a zone, privileges and the tsvector triggers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

import conserver_supabase
from conserver_supabase import ConfigurationError, SearchError, StorageConfig
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase.testing import make_vcon

from ...support.search_corpus import MARKERS, PARTY_UUIDS, TIE_TAG
from ...support.search_oracle import expected, searched_text
from ...support.search_store import CORPUS, Searcher, case, row_counts, walk
from ...support.sql_calls import SqlCalls

pytestmark = pytest.mark.integration


# --- errors ------------------------------------------------------------------------

ERRORS = [
    pytest.param({"colour": "red"}, "colour", id="unknown keyword filter"),
    pytest.param({"filters": {"colour": "red"}}, "colour", id="unknown filter in mapping"),
    pytest.param({"tags": 5}, "tags", id="tags=5"),
    pytest.param({"tags": "customer:gold"}, "tags", id="tags=a str"),
    pytest.param({"tags": ["customer:gold", 5]}, "tags", id="tags=list with a number"),
    pytest.param({"created_after": "yesterday"}, "created_after", id="created_after=yesterday"),
    pytest.param({"created_before": 20250101}, "created_before", id="created_before=int"),
    pytest.param({"updated_after": ["2025-01-01"]}, "updated_after", id="updated_after=list"),
    pytest.param({"updated_before": "2025-13-45"}, "updated_before", id="updated_before=bad"),
    pytest.param({"text": 5}, "text", id="text=5"),
    pytest.param({"subject": ["refund"]}, "subject", id="subject=list"),
    pytest.param({"name": b"Sarah"}, "name", id="name=bytes"),
    pytest.param({"party_uuid": 123}, "party_uuid", id="party_uuid=int"),
    pytest.param({"dialog_type": 7}, "dialog_type", id="dialog_type=int"),
    pytest.param({"analysis_type": {"a": 1}}, "analysis_type", id="analysis_type=dict"),
    pytest.param({"analysis_vendor": 1.5}, "analysis_vendor", id="analysis_vendor=float"),
    pytest.param({"mailto": 42}, "mailto", id="mailto=int"),
    pytest.param({"tel": "no digits here"}, "tel", id="tel without digits"),
    pytest.param({"tel": 15550100000}, "tel", id="tel=int"),
    pytest.param({"limit": 0}, "limit", id="limit=0"),
    pytest.param({"limit": 1001}, "limit", id="limit=1001"),
    pytest.param({"limit": -5}, "limit", id="limit=-5"),
    pytest.param({"limit": 2.5}, "limit", id="limit=2.5"),
    pytest.param({"cursor": "garbage"}, "cursor", id="cursor=garbage"),
    pytest.param({"cursor": "eyJhIjoxfQ"}, "cursor", id="cursor=base64 json"),
    pytest.param({"cursor": 5}, "cursor", id="cursor=int"),
]


@pytest.mark.parametrize(("arguments", "offending"), ERRORS)
def test_bad_arguments_are_search_errors(
    store: Searcher, arguments: dict[str, Any], offending: str
) -> None:
    """Unknown filters, wrong types, bad limits and bad cursors: SearchError naming them."""
    with pytest.raises(SearchError) as caught:
        store.storage.search(**arguments)
    assert caught.value.filter == offending
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, ValueError)


def test_module_level_search_raises_search_errors(store: Searcher) -> None:
    """The module-level search rejects bad filters the same way."""
    with pytest.raises(SearchError) as caught:
        conserver_supabase.search({"colour": "red"}, store.options)
    assert caught.value.filter == "colour"
    with pytest.raises(SearchError) as caught:
        conserver_supabase.search(opts=store.options, limit=0)
    assert caught.value.filter == "limit"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"tags": {"region": "emea"}}, id="other tags"),
        pytest.param({}, id="no filters"),
        pytest.param({"tags": [TIE_TAG], "text": "tundra"}, id="one filter more"),
        pytest.param({"tags": ["team:day"]}, id="other tag value"),
    ],
)
def test_cursor_for_other_filters_is_rejected(store: Searcher, other: dict[str, Any]) -> None:
    """A cursor made for one set of filters cannot be used with another."""
    cursor = store.storage.search(tags=[TIE_TAG], limit=5).next_cursor
    assert cursor is not None
    with pytest.raises(SearchError) as caught:
        store.storage.search(limit=5, cursor=cursor, **other)
    assert caught.value.filter == "cursor"


# --- injection attempts -------------------------------------------------------------

INJECTIONS = [
    *(
        case({"subject": value})
        for value in (
            "'",
            '"',
            "%",
            "_",
            "\\",
            "%%",
            "a_b",
            "a%b",
            "under%score",
            "50%_",
            "0%_o",
            "\\b",
            "eq.",
            "or=(a,b)",
            "--",
            "/* c */",
            "/*",
            "'; DROP TABLE vcons; --",
            "'; drop table VCONS; --",
            'it\'s "quoted"',
            "x' OR '1'='1",
        )
    ),
    *(
        case({"name": value})
        for value in (
            "'",
            "%",
            "_",
            "o'brien",
            "ann%marie",
            "ann_marie",
            "n_m",
            "100%",
            "\\",
            "k\\s",
            "'; DROP TABLE vcons; --",
            "eq.5",
            "or=(a,b)",
        )
    ),
    *(
        case({"text": value})
        for value in (
            "'; DROP TABLE vcons; --",
            "zeppelin'; DROP TABLE vcons; --",
            "kumquat' OR 'x'='x",
            "kumquat) or (zeppelin",
            "tundra /* c */",
            "quokka%",
            "zeppelin_",
            "marzipan\\",
            'quokka "',
        )
    ),
    *(
        case({"tags": value})
        for value in (
            ["note:'; DROP TABLE vcons; --"],
            ["note:100%_off"],
            ["note:100%"],
            ["note:a\\b"],
            {"note": "a\\b"},
            ['note:say "hi"'],
            ["note:or=(a,b)"],
            ["customer:%"],
            ["%:%"],
            ["customer:gold' OR '1'='1"],
            {"customer": 'gold"]'},
            ["customer:gold", "note:100%_off"],
        )
    ),
    *(
        case({"mailto": value})
        for value in (
            "o'brien@example.com",
            "eve%ops@example.com",
            "mailto:EVE%OPS@example.org",
            "eve%@example.com",
            "caro__ann@example.com",
            "%@example.com",
            "_lice@example.com",
            "'; DROP TABLE vcons; --",
        )
    ),
]


@pytest.mark.parametrize("filters", INJECTIONS)
def test_injection_attempts_match_only_literally(
    store: Searcher, corpus_url: str, filters: dict[str, Any]
) -> None:
    """Quotes, %, _, \\, PostgREST operators and SQL comments in values match literally."""
    assert walk(store.storage, **filters) == expected(CORPUS, **filters)
    assert row_counts(corpus_url) == (len(CORPUS), len(CORPUS))


def test_tricky_values_do_find_their_vcons() -> None:
    """The injection cases are not vacuous: most of them expect matches."""
    with_matches = [p for p in INJECTIONS if expected(CORPUS, **p.values[0])]
    assert len(with_matches) > len(INJECTIONS) * 2 // 3


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("store", ["postgrest"], indirect=True)
def test_one_round_trip_per_search(store: Searcher) -> None:
    """Every search call is exactly one POST to /rest/v1/rpc/conserver_vcon_search."""
    assert store.server is not None
    storage = store.storage
    calls: list[Any] = [
        lambda cursor: storage.search(),
        lambda cursor: storage.search(tags=[TIE_TAG], limit=7),
        lambda cursor: storage.search(tags=[TIE_TAG], limit=7, cursor=cursor),
        lambda cursor: storage.search(tags=[TIE_TAG], limit=7, include_vcons=True),
        lambda cursor: storage.search(
            text="kumquat",
            subject="a",
            tel="+1 555 010 0003",
            mailto="alice@example.com",
            name="a",
            party_uuid=PARTY_UUIDS[0],
            tags={"region": "emea"},
            created_after="2024-01-01T00:00:00Z",
            created_before=datetime.now(UTC),
            updated_after="2024-01-01T00:00:00Z",
            updated_before=datetime.now(UTC),
            dialog_type="text",
            analysis_type="summary",
            analysis_vendor="acme",
        ),
    ]
    cursor = storage.search(tags=[TIE_TAG], limit=7).next_cursor
    for call in calls:
        before = len(store.server.requests)
        call(cursor)
        paths = [request["path"] for request in store.server.requests[before:]]
        assert paths == ["/rest/v1/rpc/conserver_vcon_search"]


def test_searched_text_helper_sees_planted_markers() -> None:
    """The oracle's searched fields contain each marker somewhere (sanity of the oracle)."""
    for marker in MARKERS:
        assert any(marker in field.lower() for d in CORPUS for field in searched_text(d))


def test_times_without_a_zone_are_utc() -> None:
    """A date or a naive datetime is read as UTC; an aware one keeps its offset."""
    from datetime import datetime

    from conserver_supabase._search import build_query

    naive = build_query({"created_after": "2026-11-01", "created_before": datetime(2026, 12, 1)})
    assert naive["filters"] == {
        "created_after": "2026-11-01T00:00:00+00:00",
        "created_before": "2026-12-01T00:00:00+00:00",
    }
    aware = build_query({"updated_after": "2026-11-01T08:00:00+02:00"})
    assert aware["filters"] == {"updated_after": "2026-11-01T08:00:00+02:00"}


@pytest.mark.parametrize(
    ("filters", "more", "name"),
    [
        ({"text": "-refund -cancel"}, {}, "text"),
        ({"tags": []}, {}, "tags"),
        ({"tags": {}}, {}, "tags"),
        ({"subject": "a\x00b"}, {}, "subject"),
        ({"tel": "555"}, {"tel": "556"}, "tel"),
        ("refund", {}, "filters"),
    ],
)
def test_more_mistakes_are_named_before_anything_is_sent(
    filters: Any, more: dict[str, Any], name: str
) -> None:
    """Pure negations, empty tags, NULs, a filter given twice, a bare string."""
    from conserver_supabase._search import build_query, merge_filters

    with pytest.raises(SearchError) as caught:
        build_query(merge_filters(filters, more))
    assert caught.value.filter == name


def test_supabase_default_privileges_do_not_open_our_functions(empty_database_url: str) -> None:
    """Supabase grants EXECUTE on new functions to authenticated; 0004 takes it back."""

    from conserver_supabase import _migrations as migrations

    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role"
        )
    migrations.apply(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text, "
            "has_function_privilege('authenticated', p.oid, 'EXECUTE'), "
            "has_function_privilege('service_role', p.oid, 'EXECUTE') "
            "FROM pg_proc p WHERE p.proname LIKE 'conserver\\_vcon\\_%'"
        ).fetchall()
    assert len(rows) >= 10
    for function, authenticated, service in rows:
        assert not authenticated, function
        assert service, function


def test_a_body_too_big_for_a_tsvector_still_saves(database_url: str) -> None:
    """Over 1 MB of distinct words: no tsvector (not text-searchable), the vCon is saved
    and found by its other filters."""
    from conserver_supabase.testing import make_vcon

    document = make_vcon(seed=7)
    document["analysis"][0]["body"] = " ".join(f"w{i}" for i in range(250_000))
    document["analysis"][0]["encoding"] = "none"
    db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": database_url})))
    try:
        assert db.save(document, document["uuid"]) == 1
        assert db.save(document, document["uuid"]) == 2
        found = db.search({"filters": {"subject": document["subject"]}, "limit": 5})
        assert found["uuids"] == [document["uuid"]]
    finally:
        db.close()


def test_a_resave_computes_each_tsvector_once(sql: Any) -> None:
    """The upsert fires BEFORE INSERT and then BEFORE UPDATE: the second is skipped when
    the text did not change."""
    import json as _json

    document = make_vcon(seed=3)
    payload = _json.dumps(document)
    sql.execute("SELECT conserver_vcon_save(%s::jsonb)", [payload])
    rows = 1 + len(document["parties"]) + len(document["dialog"]) + len(document["analysis"])
    with sql.transaction():
        sql.execute("SET LOCAL track_functions = 'all'")
        sql.execute("SELECT conserver_vcon_save(%s::jsonb)", [payload])
        calls = sql.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
            "WHERE funcname = 'conserver_tsvector'"
        ).fetchone()[0]
    assert calls == rows
