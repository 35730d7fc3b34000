"""Search against a real PostgreSQL, on both transports, checked against a pure-Python
oracle (tests/search_corpus.py): every filter, combinations, ordering and keyset
pagination (also while new vCons arrive), whole documents, errors, injection
attempts and one database round trip per call.

One database per PostgreSQL server holds the corpus (1200 vCons); the tests only
read it, except the concurrent-insert test, which removes what it added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import conserver_supabase
from conserver_supabase import (
    ConfigurationError,
    SearchError,
    SearchPage,
    StorageConfig,
    SupabaseStorage,
    validate_vcon,
)
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase.testing import make_vcon

from ..support.postgrest_standin import PostgrestStandIn
from ..support.search_corpus import (
    MARKER_MAILTO,
    MARKER_TEL,
    MARKERS,
    PAIR,
    PARTY_UUIDS,
    TIE_TAG,
    expected,
    make_corpus,
    searched_text,
)
from ..support.services import create_database, drop_database, with_database
from ..support.sql_calls import SqlCalls

pytestmark = pytest.mark.integration

KEY = "search-test-key"
CORPUS = make_corpus()
BY_UUID = {document["uuid"].lower(): document for document in CORPUS}
#: A document of the tie group (index 5 carries TIE_TAG): its instants exist in the
#: corpus, so inclusive and exclusive bounds are both exercised.
TIE_DOC = CORPUS[5]
TIE_AT = TIE_DOC["created_at"]
TIE_AT_ELSEWHERE = datetime.fromisoformat(TIE_AT).astimezone(timezone(timedelta(hours=-7)))
UPDATED_AT = TIE_DOC["updated_at"]
TIE_KEY, TIE_VALUE = TIE_TAG.split(":")


@pytest.fixture(scope="module")
def corpus_url(pg_admin_url: str, _migrated_template: str) -> Iterator[str]:
    """A migrated database holding the corpus, once per PostgreSQL server."""
    name = create_database(pg_admin_url, template=_migrated_template)
    url = with_database(pg_admin_url, name)
    database = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": url})))
    try:
        for start in range(0, len(CORPUS), 200):
            database.save_many(CORPUS[start : start + 200])
    finally:
        database.close()
    yield url
    drop_database(pg_admin_url, name)


@dataclass
class Searcher:
    """A storage on the corpus database, the options it was built from, and the
    PostgREST stand-in it talks to (``None`` on the psycopg transport)."""

    storage: SupabaseStorage
    options: dict[str, Any]
    server: PostgrestStandIn | None


@pytest.fixture(scope="module")
def stand_in(corpus_url: str) -> Iterator[PostgrestStandIn]:
    """The PostgREST stand-in in front of the corpus database (stopping one takes 0.5 s,
    so the module shares it; tests count its requests relatively)."""
    with PostgrestStandIn(corpus_url, key=KEY) as server:
        yield server


@pytest.fixture(params=["postgres", "postgrest"])
def store(
    request: pytest.FixtureRequest, corpus_url: str, redis_json_url: str
) -> Iterator[Searcher]:
    """A SupabaseStorage on the corpus database, through psycopg or through PostgREST."""
    server: PostgrestStandIn | None = None
    if request.param == "postgres":
        options = {"database_url": corpus_url, "redis_url": redis_json_url}
    else:
        server = request.getfixturevalue("stand_in")
        options = {"url": server.url, "key": KEY, "redis_url": redis_json_url}
    with SupabaseStorage(options) as storage:
        yield Searcher(storage, options, server)


def walk(storage: SupabaseStorage, limit: int = 1000, **filters: Any) -> list[str]:
    """Every uuid a search returns, following ``next_cursor`` page by page."""
    items: list[str] = []
    cursor = None
    for _ in range(len(CORPUS) + 100):
        page = storage.search(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


def row_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        vcons = conn.execute("SELECT count(*) FROM vcons").fetchone()
        documents = conn.execute("SELECT count(*) FROM conserver_vcon_documents").fetchone()
    assert vcons is not None
    assert documents is not None
    return vcons[0], documents[0]


def case(filters: dict[str, Any], label: str | None = None) -> Any:
    shown = label or ",".join(f"{k}={v!r}" for k, v in filters.items())
    return pytest.param(filters, id=shown[:70])


# --- the corpus itself ----------------------------------------------------------------


def test_corpus_is_valid_and_varied() -> None:
    """Every corpus document passes validate_vcon, and the corpus has what the tests need."""
    assert len({validate_vcon(document) for document in CORPUS}) == len(CORPUS)
    assert any(document["uuid"] != document["uuid"].lower() for document in CORPUS)
    created = [datetime.fromisoformat(document["created_at"]) for document in CORPUS]
    assert len(set(created)) < len(created) - 100  # many shared instants
    assert len({d.utcoffset() for d in created}) > 2  # written in several offsets
    assert 90 <= len(expected(CORPUS, tags=[TIE_TAG])) <= 110
    assert {len(document["parties"]) for document in CORPUS} == {1, 2, 3, 4}
    assert {len(document.get("dialog", [])) for document in CORPUS} >= {0, 1, 2, 3, 4}
    assert {len(document.get("analysis", [])) for document in CORPUS} >= {0, 1, 2, 3}


# --- every filter alone -----------------------------------------------------------------

SINGLE = [
    *(case({"text": marker}) for marker in MARKERS),
    case({"text": "QUOKKA"}),
    case({"text": "kumquat or tundra"}),
    case({"text": f'"{PAIR[0]} {PAIR[1]}"'}),
    case({"text": PAIR[1]}),
    case({"text": MARKER_MAILTO.lower()}),
    case({"text": MARKER_MAILTO.upper()}),
    case({"text": MARKER_TEL}),
    case({"text": "jennings"}, "text=jennings (stems differ: english vs simple)"),
    case({"subject": "refund"}),
    case({"subject": "ROUTER SUPPORT"}),
    case({"subject": "Re: "}),
    case({"subject": "réclamation"}),
    case({"subject": PAIR[0]}),
    case({"tel": "+1 (555) 010-0003"}),
    case({"tel": "15550100007"}),
    case({"tel": "tel:+1-555-010-0012"}),
    case({"tel": "555.010.0004"}, "tel=555.010.0004 (no country code)"),
    case({"tel": MARKER_TEL}),
    case({"mailto": "ALICE@example.com"}),
    case({"mailto": "mailto:Bob.Smith@Example.COM"}),
    case({"mailto": "carol_ann@example.org"}),
    case({"mailto": MARKER_MAILTO.lower()}),
    case({"name": "jennings"}),
    case({"name": "SARAH"}),
    case({"name": "ah Ch"}),
    case({"name": "quokka"}),
    case({"party_uuid": PARTY_UUIDS[0].upper()}),
    case({"party_uuid": PARTY_UUIDS[1]}),
    case({"party_uuid": "USR-TEAMS-001"}),
    case({"tags": {"customer": "gold"}}),
    case({"tags": {"customer": "Gold"}}),
    case({"tags": ["region:emea"]}),
    case({"tags": ["priority:high", "channel:chat"]}),
    case({"tags": {"customer": "silver", "region": "apac", "priority": "low"}}),
    case({"tags": {TIE_KEY: TIE_VALUE}}),
    case({"tags": ["fruit:kumquat"]}),
    case({"created_after": TIE_AT}, "created_after=<a tie instant> (inclusive)"),
    case({"created_after": TIE_AT_ELSEWHERE}, "created_after=<a tie instant, -07:00 datetime>"),
    case({"created_after": "2025-06-01T00:00:00+02:00"}),
    case({"created_after": datetime(2025, 1, 1, tzinfo=UTC)}),
    case({"created_before": TIE_AT}, "created_before=<a tie instant> (exclusive)"),
    case({"created_before": TIE_AT_ELSEWHERE}, "created_before=<a tie instant, -07:00 dt>"),
    case({"created_before": "2024-03-01T00:00:00Z"}),
    case({"updated_after": UPDATED_AT}, "updated_after=<an updated_at> (inclusive)"),
    case({"updated_after": datetime(2025, 9, 1, 12, tzinfo=timezone(timedelta(hours=3)))}),
    case({"updated_before": UPDATED_AT}, "updated_before=<an updated_at> (exclusive)"),
    case({"updated_before": "2024-05-01T00:00:00-05:00"}),
    *(case({"dialog_type": kind}) for kind in ("text", "recording", "transfer", "incomplete")),
    *(case({"analysis_type": kind}) for kind in ("transcript", "summary", "sentiment", "topics")),
    *(case({"analysis_vendor": vendor}) for vendor in ("deepgram", "openai", "acme", "whisper")),
]


@pytest.mark.parametrize("filters", SINGLE)
def test_each_filter_alone(store: Searcher, filters: dict[str, Any]) -> None:
    """One filter returns exactly the oracle's vCons, newest first, uuid breaking ties."""
    want = expected(CORPUS, **filters)
    assert want, "the corpus should have matches for this case"
    assert walk(store.storage, **filters) == want


def test_no_filter_returns_everything_in_order(store: Searcher) -> None:
    """Without filters the search walks the whole corpus: created_at desc, then uuid desc."""
    assert walk(store.storage) == expected(CORPUS)


def test_no_match_is_an_empty_last_page(store: Searcher) -> None:
    """A search that matches nothing returns no items and no cursor."""
    page = store.storage.search(text="xylophone")
    assert page.items == []
    assert page.next_cursor is None


# --- full-text search details ------------------------------------------------------


@pytest.mark.parametrize("marker", MARKERS)
def test_text_ignores_base64_bodies_attachments_and_other_fields(
    store: Searcher, marker: str
) -> None:
    """A marker only in base64url bodies, attachments, tags, filenames or meta is not found."""
    mentioning = {u for u, d in BY_UUID.items() if marker in json.dumps(d).lower()}
    want = expected(CORPUS, text=marker)
    assert set(want) < mentioning, "the corpus should also hide the marker in ignored fields"
    assert walk(store.storage, text=marker) == want


def test_text_query_matches_within_one_field(store: Searcher) -> None:
    """All words of a text query must match in ONE field (split over two, no match)."""
    query = " ".join(PAIR)
    want = expected(CORPUS, text=query)
    anywhere = [u for u, d in BY_UUID.items() if all(expected([d], text=w) for w in PAIR)]
    assert want
    assert set(want) < set(anywhere), "the corpus should split the pair in some vCons"
    assert walk(store.storage, text=query) == want


# --- combinations ----------------------------------------------------------------------

COMBINATIONS = [
    case(
        {
            "tags": {"region": "emea"},
            "created_after": "2024-06-01T00:00:00Z",
            "created_before": "2025-06-01T00:00:00+00:00",
        }
    ),
    case({"text": "kumquat", "dialog_type": "text"}),
    case({"text": "zeppelin", "dialog_type": "recording"}),
    case({"tel": "+1 555 010 0003", "analysis_vendor": "acme", "analysis_type": "summary"}),
    case({"subject": "for", "name": "jennings"}),
    case({"tags": ["customer:gold", "priority:high"], "dialog_type": "recording"}),
    case({"text": "quokka or marzipan", "tags": {"channel": "voice"}}),
    case({"mailto": "alice@example.com", "updated_after": datetime(2025, 3, 1, tzinfo=UTC)}),
    case({"party_uuid": PARTY_UUIDS[2], "created_before": "2025-01-01T00:00:00+05:30"}),
    case({"analysis_type": "sentiment", "analysis_vendor": "openai"}),
    case({"name": "sarah", "mailto": "ALICE@EXAMPLE.COM"}),
    case({"tags": [TIE_TAG], "text": "tundra or kumquat or quokka"}),
    case(
        {
            "created_after": "2024-09-01T00:00:00Z",
            "created_before": "2025-09-01T00:00:00Z",
            "updated_after": "2024-10-01T00:00:00Z",
            "updated_before": "2025-08-01T00:00:00Z",
        }
    ),
    case({"tags": {"customer": "bronze"}, "tel": "15550100001", "dialog_type": "text"}),
    case({"text": MARKER_MAILTO, "mailto": MARKER_MAILTO, "analysis_vendor": "whisper"}),
]


@pytest.mark.parametrize("filters", COMBINATIONS)
def test_combined_filters_all_hold(store: Searcher, filters: dict[str, Any]) -> None:
    """Several filters together return exactly the vCons matching all of them."""
    want = expected(CORPUS, **filters)
    assert want, "the corpus should have matches for this combination"
    assert walk(store.storage, **filters) == want


def test_nothing_matches_when_filters_exclude_each_other(store: Searcher) -> None:
    """Contradictory filters return nothing."""
    filters: dict[str, Any] = {
        "created_after": "2025-01-01T00:00:00Z",
        "created_before": "2024-01-01T00:00:00Z",
    }
    assert expected(CORPUS, **filters) == []
    assert walk(store.storage, **filters) == []


def test_analysis_type_and_vendor_hold_on_the_same_entry(store: Searcher) -> None:
    """analysis_type with analysis_vendor needs ONE analysis with both, not two analyses."""
    for kind in ("transcript", "summary", "sentiment", "topics"):
        for vendor in ("deepgram", "openai", "whisper"):
            loose = set(expected(CORPUS, analysis_type=kind)) & set(
                expected(CORPUS, analysis_vendor=vendor)
            )
            want = expected(CORPUS, analysis_type=kind, analysis_vendor=vendor)
            assert set(want) < loose
            assert walk(store.storage, analysis_type=kind, analysis_vendor=vendor) == want


def test_filter_forms_agree(store: Searcher) -> None:
    """Mapping or keywords, tags as dict or list, dates as datetime or ISO text: same search."""
    storage = store.storage
    want = expected(CORPUS, tags={"region": "emea"}, created_after=TIE_AT)
    assert storage.search({"tags": {"region": "emea"}, "created_after": TIE_AT}, limit=1000).items
    for page in (
        storage.search({"tags": {"region": "emea"}, "created_after": TIE_AT}, limit=1000),
        storage.search({"tags": ["region:emea"]}, created_after=TIE_AT, limit=1000),
        storage.search(tags=["region:emea"], created_after=TIE_AT_ELSEWHERE, limit=1000),
        storage.search(
            tags={"region": "emea"}, created_after=TIE_AT_ELSEWHERE.isoformat(), limit=1000
        ),
    ):
        assert page.items == want


def test_module_level_search(store: Searcher) -> None:
    """conserver_supabase.search(filters, opts, **kwargs) searches like the storage does."""
    want = expected(CORPUS, tags=[TIE_TAG], dialog_type="text")
    page = conserver_supabase.search({"tags": [TIE_TAG]}, store.options, dialog_type="text")
    assert isinstance(page, SearchPage)
    assert page.items == want[:50]
    page = conserver_supabase.search(opts=store.options, tags=[TIE_TAG], limit=5)
    assert page.items == expected(CORPUS, tags=[TIE_TAG])[:5]
    rest = conserver_supabase.search(
        None, store.options, tags=[TIE_TAG], limit=1000, cursor=page.next_cursor
    )
    assert page.items + rest.items == expected(CORPUS, tags=[TIE_TAG])


# --- pages -------------------------------------------------------------------------


def test_page_is_a_sequence_of_uuids(store: Searcher) -> None:
    """A SearchPage iterates and counts its items: lowercase uuid strings."""
    page = store.storage.search(tags=[TIE_TAG], limit=10)
    assert isinstance(page, SearchPage)
    assert list(page) == page.items
    assert len(page) == 10
    assert all(isinstance(item, str) and item == item.lower() for item in page)
    assert isinstance(page.next_cursor, str)


def test_limits(store: Searcher) -> None:
    """limit defaults to 50; 1 and 1000 are allowed."""
    everything = expected(CORPUS)
    assert store.storage.search().items == everything[:50]
    assert store.storage.search(limit=1).items == everything[:1]
    assert store.storage.search(limit=1000).items == everything[:1000]


def test_include_vcons_returns_the_saved_documents(store: Searcher) -> None:
    """include_vcons=True returns the saved documents in the order of the uuids, page by page."""
    filters = {"tags": {"channel": "chat"}, "dialog_type": "text"}
    want = expected(CORPUS, **filters)
    assert len(want) > 45
    first = store.storage.search(filters, limit=30, include_vcons=True)
    assert first.items == [BY_UUID[u] for u in want[:30]]
    second = store.storage.search(filters, limit=30, include_vcons=True, cursor=first.next_cursor)
    assert second.items == [BY_UUID[u] for u in want[30:60]]
    uuids = store.storage.search(filters, limit=30)
    assert uuids.items == want[:30]


def test_walk_with_limit_7_has_no_duplicates_and_no_gaps(store: Searcher) -> None:
    """Pages of 7 through ~100 matches that share 12 instants give the oracle's list."""
    want = expected(CORPUS, tags=[TIE_TAG])
    instants = [datetime.fromisoformat(BY_UUID[u]["created_at"]) for u in want]
    assert any(instants[k - 1] == instants[k] for k in range(7, len(want), 7)), (
        "some page boundary should fall inside a group of equal created_at"
    )
    got = walk(store.storage, limit=7, tags=[TIE_TAG])
    assert len(got) == len(set(got))
    assert got == want


def test_cursor_continues_with_another_limit(store: Searcher) -> None:
    """The limit may change between pages: the cursor keeps the position."""
    want = expected(CORPUS, tags=[TIE_TAG])
    first = store.storage.search(tags=[TIE_TAG], limit=7)
    second = store.storage.search(tags=[TIE_TAG], limit=20, cursor=first.next_cursor)
    rest = walk_from(store.storage, second.next_cursor, tags=[TIE_TAG])
    assert first.items + second.items + rest == want


def walk_from(storage: SupabaseStorage, cursor: str | None, **filters: Any) -> list[str]:
    items: list[str] = []
    while cursor is not None:
        page = storage.search(limit=1000, cursor=cursor, **filters)
        items.extend(page.items)
        cursor = page.next_cursor
    return items


def new_matching_vcons(count: int) -> list[dict[str, Any]]:
    """vCons that match tags=[TIE_TAG], created now (newer than the whole corpus)."""
    documents = []
    for seed in range(count):
        document = make_vcon(seed + 10_000, dialogs=1)
        now = datetime.now(UTC).isoformat()
        document.update(created_at=now, updated_at=now)
        document["attachments"] = [
            {"type": "tags", "encoding": "json", "body": json.dumps([TIE_TAG])}
        ]
        documents.append(document)
    return documents


def test_walk_while_new_matches_arrive(store: Searcher, corpus_url: str) -> None:
    """vCons saved during a walk (newer than its cursor) leave the walk's result unchanged."""
    want = expected(CORPUS, tags=[TIE_TAG])
    arrivals = new_matching_vcons(50)
    halfway_done: list[bool] = []

    def insert() -> int:
        database = SqlCalls(
            PostgresDatabase(StorageConfig.from_options({"database_url": corpus_url}))
        )
        try:
            for number, document in enumerate(arrivals, 1):
                database.save(document, document["uuid"])
                if number == 25:
                    halfway_done.append(True)
                time.sleep(0.002)
        finally:
            database.close()
        return len(arrivals)

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            page = store.storage.search(tags=[TIE_TAG], limit=7)
            got = list(page.items)
            inserting = pool.submit(insert)
            pages = 1
            while page.next_cursor is not None:
                if pages == 2:  # let half the arrivals land between two pages
                    deadline = time.monotonic() + 30
                    while not halfway_done and not inserting.done():
                        assert time.monotonic() < deadline, "the inserts did not progress"
                        time.sleep(0.01)
                page = store.storage.search(tags=[TIE_TAG], limit=7, cursor=page.next_cursor)
                got.extend(page.items)
                pages += 1
            assert inserting.result(timeout=60) == 50
        assert got == want
        newest = store.storage.search(tags=[TIE_TAG], limit=50)
        assert set(newest.items) == {document["uuid"] for document in arrivals}
    finally:
        with psycopg.connect(corpus_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM vcons WHERE uuid = ANY(%s::uuid[])",
                [[document["uuid"] for document in arrivals]],
            )
    assert row_counts(corpus_url) == (len(CORPUS), len(CORPUS))


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
    import psycopg

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
    from conserver_supabase import StorageConfig
    from conserver_supabase._database._postgres import PostgresDatabase
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

    from conserver_supabase.testing import make_vcon

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
