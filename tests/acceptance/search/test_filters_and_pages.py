"""Search against a real PostgreSQL, on both transports, checked against a pure-Python
oracle (tests/support/search_oracle.py): every filter, combinations, ordering and keyset
pagination (also while new vCons arrive) and whole documents. The corpus is only read,
except by the concurrent-insert test, which removes what it added.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import conserver_supabase
from conserver_supabase import SearchPage, StorageConfig, SupabaseStorage, validate_vcon
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase.testing import make_vcon

from ...support.search_corpus import MARKER_MAILTO, MARKER_TEL, MARKERS, PAIR, PARTY_UUIDS, TIE_TAG
from ...support.search_oracle import expected
from ...support.search_store import (
    BY_UUID,
    CORPUS,
    TIE_AT,
    TIE_AT_ELSEWHERE,
    TIE_KEY,
    TIE_VALUE,
    UPDATED_AT,
    Searcher,
    case,
    row_counts,
    walk,
)
from ...support.sql_calls import SqlCalls

pytestmark = pytest.mark.integration


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
