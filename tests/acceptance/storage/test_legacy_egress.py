"""Reads in the 0.0.1 shape (``egress_format_version``, issue 17) on real PostgreSQL and
Redis (with and without RedisJSON), through each transport: from the cache and from the
database, by option and by argument, for get_vcon, get_many, search and the host's get.
The output is vcon-server's to_legacy output exactly (tests/data/legacy); what the
database stores and the cache holds stays the document as saved."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import conserver_supabase
from conserver_supabase import ConfigurationError, SupabaseStorage

from ...support.counting import CountingDatabase, cached, storage, stored

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "legacy"
NOWHERE = "0190a0e0-0000-8000-8000-000000000000"
NAMES = ["conserver-0.4.0", "legacy-0.0.1", "rich", "host-dataset-9a752af2"]


def case(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text("utf-8"))
    return loaded


def same_text(got: Any, expected: Any) -> bool:
    """vcon-server's output for the input (tests/data/legacy), as JSON text: key order
    and number kinds included (the database keeps each document's text, issue 17)."""
    return json.dumps(got, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


@pytest.mark.parametrize("name", NAMES)
def test_from_the_database_and_then_from_the_cache(
    name: str, db: CountingDatabase, redis_url: str, r: Any, database_url: str
) -> None:
    loaded = case(name)
    document, expected = loaded["input"], loaded["to_legacy"]
    u = document["uuid"]
    with storage(db, redis_url) as store:
        store.save_vcon(copy.deepcopy(document))
        r.delete(f"vcon:{u}")  # the database path first
        got = store.get_vcon(u, egress_format_version="0.0.1")
        assert same_text(got, expected)
        assert store.cache_stats()["misses"] == 1
        assert cached(r, u) == document  # the fill is the document, not the old shape
        again = store.get_vcon(u, egress_format_version="0.0.1")
        assert same_text(again, expected)
        assert store.cache_stats()["hits"] == 1
        assert again is not got
        assert store.get_vcon(u) == document  # without it: as saved
        assert store.get_vcon(u, use_cache=False, egress_format_version="0.0.1") == expected
    assert cached(r, u) == document
    assert stored(database_url, u) == document


def test_the_option_and_the_hosts_get(db: CountingDatabase, redis_url: str, r: Any) -> None:
    loaded = case("conserver-0.4.0")
    document, expected = loaded["input"], loaded["to_legacy"]
    u = document["uuid"]
    with storage(db, redis_url, egress_format_version="0.0.1") as store:
        store.save_vcon(copy.deepcopy(document))
        assert same_text(store.get_vcon(u), expected)
        assert same_text(store.get_many([u])[u], expected)
        page = store.search(include_vcons=True)
        assert [same_text(v, expected) for v in page.items] == [True]
        assert store.get_vcon(u, egress_format_version=None) is not None  # None: the option
        assert cached(r, u) == document


def test_get_many_and_search(db: CountingDatabase, redis_url: str, r: Any) -> None:
    cases = [case(n) for n in NAMES]
    with storage(db, redis_url) as store:
        for loaded in cases:
            store.save_vcon(copy.deepcopy(loaded["input"]))
        uuids = [c["input"]["uuid"] for c in cases]
        r.delete(f"vcon:{uuids[0]}")  # one from the database, the rest from the cache
        many = store.get_many(uuids, egress_format_version="0.0.1")
        for loaded in cases:
            assert same_text(many[loaded["input"]["uuid"]], loaded["to_legacy"])
        assert store.get_many(uuids) == {c["input"]["uuid"]: c["input"] for c in cases}
        page = store.search(include_vcons=True, egress_format_version="0.0.1", limit=10)
        by_uuid = {v["uuid"]: v for v in page.items}
        for loaded in cases:
            assert same_text(by_uuid[loaded["input"]["uuid"]], loaded["to_legacy"])
        plain = store.search(egress_format_version="0.0.1", limit=10)
        assert sorted(plain.items) == sorted(uuids)  # uuids have no shape
        for loaded in cases:
            assert cached(r, loaded["input"]["uuid"]) in (None, loaded["input"])


def test_a_bad_argument_is_refused_before_any_read(db: CountingDatabase, redis_url: str) -> None:
    with storage(db, redis_url) as store:
        calls = list(db.calls)
        for call in (
            lambda: store.get_vcon(
                "0190a0e0-0000-8000-8000-000000000000", egress_format_version="1"
            ),
            lambda: store.get_many(
                ["0190a0e0-0000-8000-8000-000000000000"], egress_format_version="1"
            ),
            lambda: store.search(include_vcons=True, egress_format_version="1"),
        ):
            with pytest.raises(ConfigurationError, match="egress_format_version"):
                call()
        assert db.calls == calls


def test_the_module_level_get_takes_it_from_opts(database_url: str, redis_json_url: str) -> None:
    """The conserver's ``get(vcon_uuid, opts)``: the option in config.yml's options."""
    loaded = case("legacy-0.0.1")
    document = loaded["input"]
    opts = {"database_url": database_url, "redis_url": redis_json_url}
    try:
        SupabaseStorage.for_options(opts).save_vcon(copy.deepcopy(document))
        legacy = conserver_supabase.get(
            document["uuid"], {**opts, "egress_format_version": "0.0.1"}
        )
        assert same_text(legacy, loaded["to_legacy"])
        assert conserver_supabase.get(document["uuid"], opts) == document
    finally:
        SupabaseStorage.close_shared()
