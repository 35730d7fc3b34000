"""A read's cache fill does not wait for Redis (issue 18, ``_redis/_fills.py``), on a
real PostgreSQL and real Redis servers: the read returns before Redis answers the fill,
the fill lands as a waited-for one would, through the same version rule, and what
goes wrong with it costs only the fill."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conserver_supabase import SupabaseStorage

from ..support.services import closing_later, redis_client
from ..support.vcons import sample

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url: str, redis_url: str) -> Iterator[SupabaseStorage]:
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_url}) as storage:
        yield storage


def _uncached(store: SupabaseStorage, client: Any) -> dict[str, Any]:
    """A vCon in the database and not in the cache."""
    document = sample()
    store.save_vcon(document)
    client.delete(store._redis.cache_key(document["uuid"]))
    return document


def test_a_miss_returns_before_redis_answers_its_fill(
    store: SupabaseStorage, redis_url: str
) -> None:
    """While Redis holds back every write (CLIENT PAUSE WRITE: scripts wait, reads are
    served), a miss still returns the vCon, and its fill is written once Redis goes on.
    A fill the read waited for would have waited out the pause (or its timeout)."""
    client = closing_later(redis_client(redis_url))
    store.get_vcon(_uncached(store, client)["uuid"])  # the fills' connection, its script
    document = _uncached(store, client)
    key = store._redis.cache_key(document["uuid"])
    client.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    try:
        assert store.get_vcon(document["uuid"]) == document
        assert client.exists(key) == 0  # sent, held by the pause: not waited for
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
    assert store.cache_stats()["fills"] == 2  # answered now, and counted
    assert json.loads(client.execute_command("JSON.GET", key) if _json(client, key) else
                      client.get(key)) == document  # fmt: skip
    assert 0 < client.ttl(key) <= store.config.cache_ttl


def _json(client: Any, key: str) -> bool:
    return bool(client.type(key) == b"ReJSON-RL")


def test_a_save_that_overtakes_the_fill_is_kept(store: SupabaseStorage, redis_url: str) -> None:
    """The fill carries the version the read got: a newer save cached before Redis runs
    the fill is not replaced by it (the fence of lua/write.lua), nor is a delete's
    tombstone."""
    client = closing_later(redis_client(redis_url))
    document = _uncached(store, client)
    newer = {**document, "subject": "saved after the read"}
    store.save_vcon(newer)  # version 2 cached
    store._redis.fill(document["uuid"], json.dumps(document), 1, wait=False)
    gone = _uncached(store, client)
    store.delete_vcon(gone["uuid"])
    store._redis.fill(gone["uuid"], json.dumps(gone), 1, wait=False)
    assert store.cache_stats()["fills"] == 0
    assert store.get_vcon(document["uuid"]) == newer
    assert client.exists(store._redis.cache_key(gone["uuid"])) == 0


def test_a_restarted_redis_without_the_script_still_gets_the_fill(
    store: SupabaseStorage, redis_url: str
) -> None:
    """NOSCRIPT (Redis lost its scripts) is answered later: the fill is made again then."""
    client = closing_later(redis_client(redis_url))
    store.get_vcon(_uncached(store, client)["uuid"])
    client.script_flush()
    document = _uncached(store, client)
    assert store.get_vcon(document["uuid"]) == document
    assert store.cache_stats()["fills"] == 2
    assert client.exists(store._redis.cache_key(document["uuid"])) == 1


def test_a_failed_fill_is_logged_and_the_connection_stays_in_step(
    store: SupabaseStorage, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A fill Redis refuses (the key holds a hash) is a logged cache error when its
    answer comes (after the read's own, which the hash is too); the reads around it get
    their own answers, and their fills land."""
    caplog.set_level(logging.WARNING, logger="conserver_supabase")
    client = closing_later(redis_client(redis_url))
    documents = [_uncached(store, client) for _ in range(3)]
    refused = documents[1]["uuid"]
    client.hset(store._redis.cache_key(refused), "not", "a vCon")
    for document in documents:
        assert store.get_vcon(document["uuid"]) == document
    assert store.cache_stats()["errors"] == 2  # the read of the hash, then its fill
    assert f"cache fill of vCon {refused} failed" in caplog.text
    for document in (documents[0], documents[2]):
        assert store.get_vcon(document["uuid"]) == document  # hits: filled
    stats = store.cache_stats()
    assert (stats["hits"], stats["fills"], stats["errors"]) == (2, 2, 2)


def test_a_fill_after_the_server_closed_the_idle_connection_lands(
    store: SupabaseStorage, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that closes idle clients (``timeout``) closes the fills' connection
    between two misses; the next fill finds out (PING) and goes on a new one, instead of
    being written to the closed socket and lost with an error."""
    from conserver_supabase._redis import _fills

    monkeypatch.setattr(_fills, "_IDLE_CHECK", 0.5)
    client = closing_later(redis_client(redis_url))
    store.get_vcon(_uncached(store, client)["uuid"])
    client.config_set("timeout", 1)
    try:
        time.sleep(2.5)  # the server closes the idle fills' connection
        document = _uncached(store, client)
        assert store.get_vcon(document["uuid"]) == document
        stats = store.cache_stats()
    finally:
        client.config_set("timeout", 0)
    assert (stats["fills"], stats["errors"]) == (2, 0)
    assert client.exists(store._redis.cache_key(document["uuid"])) == 1
