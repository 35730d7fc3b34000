"""Whole vCons in one pass (issue 18): search(include_vcons=True) asks for the json form
of conserver_vcon_search, whose answer carries the page's vCons as JSON inside it, each
read from its document row in the statement that finds the page and parsed once on the
client, with the page; the results stay those of get_vcon (the exact text, the merge of
other writers' changes, a vCon only other writers wrote), on both transports.

The corpus is saved without texts (the object form); the vCons saved here have their
texts, one is changed by another writer afterwards and one has only rows. They are
removed afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conserver_supabase import SearchError, StorageConfig
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase._search import build_query
from conserver_supabase.testing import make_vcon

from ...support.search_store import CORPUS, Searcher, row_counts

pytestmark = pytest.mark.integration

SUBJECT = "one pass check"


def exact_text(document: dict[str, Any]) -> str:
    """The vCon's JSON text with its keys in an order jsonb never gives (uuid first, vcon
    last) and a number spelled as jsonb would not keep it."""
    ordered = {"uuid": document["uuid"], **{k: v for k, v in document.items() if k != "uuid"}}
    ordered["vcon"] = ordered.pop("vcon")
    return json.dumps(ordered, ensure_ascii=False).replace('"duration": 20,', '"duration": 2.0e1,')


@pytest.fixture
def added(store: Searcher, corpus_url: str) -> Iterator[dict[str, Any]]:
    """Three vCons matching subject=SUBJECT, newest first: saved with its text, saved with
    its text and then edited by another writer, and one with rows only."""
    saved = []
    for seed in range(2):
        document = make_vcon(seed + 20_000, dialogs=2)
        document["subject"] = f"{SUBJECT} {seed}"
        document["created_at"] = datetime(2099, 1, 1, 0, seed, tzinfo=UTC).isoformat()
        document["dialog"][0]["duration"] = 20
        store.storage.save_vcon(exact_text(document))
        saved.append(document)
    rows_only = str(uuid.uuid4())
    with psycopg.connect(corpus_url, autocommit=True) as conn:
        conn.execute(  # another writer, as vcon-mcp's createVCon writes the head row
            "INSERT INTO vcons (id, uuid, vcon_version, subject, created_at, updated_at)"
            " VALUES (%s, %s, '0.4.0', %s, '2098-01-01T00:00:00Z', '2098-01-01T00:00:00Z')",
            [rows_only, rows_only, f"{SUBJECT} rows only"],
        )
        conn.execute(  # another writer edits the second one's subject
            "UPDATE vcons SET subject = subject || ' (edited)' WHERE uuid = %s",
            [saved[1]["uuid"]],
        )
    texts = {document["uuid"]: exact_text(document) for document in saved}
    try:
        yield {"uuids": [saved[1]["uuid"], saved[0]["uuid"], rows_only], "texts": texts}
    finally:
        with psycopg.connect(corpus_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM vcons WHERE uuid = ANY(%s::uuid[])",
                [[saved[0]["uuid"], saved[1]["uuid"], rows_only]],
            )
        for document in saved:
            store.storage.delete_vcon(document["uuid"])  # and its cache entry
        assert row_counts(corpus_url) == (len(CORPUS), len(CORPUS))


def test_whole_vcons_are_what_get_returns(store: Searcher, added: dict[str, Any]) -> None:
    """Each item is get_vcon's answer from the database, key order and numbers included:
    the exact text, the merge of another writer's edit, a vCon with rows only."""
    page = store.storage.search(subject=SUBJECT, include_vcons=True)
    assert [item["uuid"] for item in page.items] == added["uuids"]
    for item in page.items:
        read = store.storage.get_vcon(item["uuid"], use_cache=False)
        assert json.dumps(item) == json.dumps(read), item["uuid"]
    newest, exact, rows_only = page.items
    assert json.dumps(exact) == json.dumps(json.loads(added["texts"][exact["uuid"]]))
    assert next(iter(exact)) == "uuid"
    assert list(exact)[-1] == "vcon"
    assert exact["dialog"][0]["duration"] == 20.0
    assert isinstance(exact["dialog"][0]["duration"], float)
    assert newest["subject"].endswith("(edited)")
    assert rows_only["subject"] == f"{SUBJECT} rows only"


def test_pages_of_whole_vcons_follow_the_uuid_pages(store: Searcher, added: dict[str, Any]) -> None:
    """limit and cursor: the pages of whole vCons are the uuid pages, with the same cursors."""
    first = store.storage.search(subject=SUBJECT, limit=2, include_vcons=True)
    uuids = store.storage.search(subject=SUBJECT, limit=2)
    assert [item["uuid"] for item in first.items] == uuids.items == added["uuids"][:2]
    assert first.next_cursor == uuids.next_cursor is not None
    second = store.storage.search(
        subject=SUBJECT, limit=2, include_vcons=True, cursor=first.next_cursor
    )
    assert [item["uuid"] for item in second.items] == added["uuids"][2:]
    assert second.next_cursor is None
    exactly = store.storage.search(subject=SUBJECT, limit=3, include_vcons=True)
    assert len(exactly.items) == 3
    assert exactly.next_cursor is None
    nothing = store.storage.search(subject=f"{SUBJECT} nowhere", include_vcons=True)
    assert nothing.items == []
    assert nothing.next_cursor is None


def test_the_answer_carries_the_vcons_as_json(corpus_url: str, added: dict[str, Any]) -> None:
    """The transport's answer holds each vCon saved with its text as the JSON it is (no
    JSON string to parse a second time), with its version: one parse, with the page."""
    database = PostgresDatabase(StorageConfig.from_options({"database_url": corpus_url}))
    try:
        found = database.search(build_query({"subject": SUBJECT}, include_vcons=True))
    finally:
        database.close()
    assert found["uuids"] == added["uuids"]
    exact = found["vcons"][1]
    assert set(exact) == {"version", "vcon"}
    assert isinstance(exact["version"], int)
    assert exact["version"] >= 1
    assert json.dumps(exact["vcon"]) == json.dumps(json.loads(added["texts"][added["uuids"][1]]))
    assert all(isinstance(entry["vcon"], dict) for entry in found["vcons"])


def both_forms(conn: Any, query: dict[str, Any]) -> tuple[Any, Any]:
    """The jsonb form's answer (texts parsed) and the json form's, for one query."""
    old = conn.execute("SELECT conserver_vcon_search(%s)", [Jsonb(query)]).fetchone()[0]
    new = conn.execute("SELECT conserver_vcon_search(%s, true)", [Jsonb(query)]).fetchone()[0]
    for entry in old["vcons"] or []:
        if "text" in entry:
            entry["vcon"] = json.loads(entry.pop("text"))
    return old, new


@pytest.mark.parametrize(
    "query",
    [
        {"filters": {}, "limit": 50, "include_vcons": True, "exact": True},
        {"filters": {"subject": SUBJECT}, "limit": 2, "include_vcons": True, "exact": True},
        {"filters": {"subject": SUBJECT}, "limit": 3, "include_vcons": True, "exact": True},
        {"filters": {"subject": SUBJECT}, "limit": 9, "include_vcons": True, "exact": False},
        {"filters": {"subject": SUBJECT, "tenant": "nobody"}, "include_vcons": True, "exact": True},
        {
            "filters": {"subject": SUBJECT},
            "limit": 1,
            "after": {"created_at": "2099-01-01T00:01:00+00:00", "uuid": str(uuid.UUID(int=0))},
            "include_vcons": True,
            "exact": True,
        },
        {"filters": {"subject": "no such subject"}, "include_vcons": True, "exact": True},
    ],
    ids=["newest", "more", "exactly a page", "not exact", "tenant", "after", "nothing"],
)
def test_the_json_form_answers_as_the_jsonb_form(
    corpus_url: str, added: dict[str, Any], query: dict[str, Any]
) -> None:
    """Same uuids, vCons (the texts parsed, key order included), more and last, paging and
    tenant included."""
    with psycopg.connect(corpus_url, autocommit=True) as conn:
        old, new = both_forms(conn, query)
    assert new == old
    for mine, theirs in zip(new["vcons"], old["vcons"], strict=True):
        assert json.dumps(mine.get("vcon", mine)) == json.dumps(theirs.get("vcon", theirs))
    uuids_only = {**query, "include_vcons": False}
    with psycopg.connect(corpus_url, autocommit=True) as conn:
        plain = conn.execute("SELECT conserver_vcon_search(%s, false)", [Jsonb(uuids_only)])
        assert plain.fetchone()[0] == {**old, "vcons": None}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filters": {"tags": "vip"}}, "tags"),
        ({"filters": {"tel": 5}}, "tel"),
        ({"filters": [], "limit": 5}, "filters"),
        ({"filters": {}, "limit": 1001}, "limit"),
    ],
)
def test_the_database_refuses_a_bad_query_in_both_forms(
    corpus_url: str, query: dict[str, Any], named: str
) -> None:
    """A query the storage would not send, sent anyway: SearchError naming the filter,
    from either form (the checks live in conserver_vcon_search_where)."""
    database = PostgresDatabase(StorageConfig.from_options({"database_url": corpus_url}))
    try:
        for include_vcons in (False, True):
            with pytest.raises(SearchError) as caught:
                database.search({**query, "include_vcons": include_vcons, "exact": True})
            assert caught.value.filter == named, include_vcons
    finally:
        database.close()


def test_the_page_of_whole_vcons_is_planned_without_workers(corpus_url: str) -> None:
    """The json form's page statement would get a parallel plan (walking created_at in
    workers), which at 100,000 vCons made mailto and party_uuid pages 5-20x slower than
    the same page of uuids (benchmarks/search.py); the function plans it without."""
    with psycopg.connect(corpus_url) as conn:
        config = conn.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = 'conserver_vcon_search'"
            " AND pg_get_function_identity_arguments(oid) = 'p_query jsonb, p_vcons boolean'"
        ).fetchone()[0]
    assert "max_parallel_workers_per_gather=0" in config
