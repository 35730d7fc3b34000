"""The search tests' corpus database: the corpus, instants of its tie group, and what
the tests call on it (fixtures: tests/acceptance/search/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage

from .postgrest_standin import PostgrestStandIn
from .search_corpus import TIE_TAG, make_corpus

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


@dataclass
class Searcher:
    """A storage on the corpus database, the options it was built from, and the
    PostgREST stand-in it talks to (``None`` on the psycopg transport)."""

    storage: SupabaseStorage
    options: dict[str, Any]
    server: PostgrestStandIn | None


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
