"""Fast unit tests of the storage policy: an in-memory database and fakeredis.

They pin the order of effects (database before Redis, on save and on delete) and the
fault shapes fakeredis can emulate (a Redis that drops and comes back). fakeredis
cannot hold RedisJSON keys here (its ``TYPE`` fails on them), so these tests use
string keys under an ``app:`` prefix; the RedisJSON paths run against real Redis in
tests/acceptance/test_cache.py and tests/acceptance/storage/.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fakeredis
import pytest
from redis import exceptions as redis_errors

from conserver_supabase import (
    CacheError,
    ChainPushError,
    DatabaseUnavailableError,
    SupabaseStorage,
    testing,
)
from conserver_supabase._database import Tenant

from ..support.vcons import sample

OPTIONS = {
    "database_url": "postgresql://unused/x",
    "cache_format": "string",
    "cache_key_prefix": "app:",
    "cache_ttl": 90,
    "chain_lists": ["egress"],
    "retry_deadline": 0,  # retries have their own tests (test_retry.py)
    "redis_cooldown": 0,  # the circuit breaker has its own tests below
}


class MemoryDatabase(testing.MemoryDatabase):
    """The package's in-memory database, recording what Redis held at each write."""

    def __init__(self, redis: Any) -> None:
        super().__init__()
        self.redis = redis
        self.rows = self.documents
        self.seen_at_save: list[tuple[bool, int]] = []
        self.seen_at_delete: list[bool] = []

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        if self.fail is None:
            for document in documents:
                with contextlib.suppress(redis_errors.ConnectionError):  # during an outage
                    self.seen_at_save.append(
                        (
                            bool(self.redis.exists(f"app:{document['uuid']}")),
                            self.redis.llen("egress"),
                        )
                    )
        return super().save(documents, tenants, bases, texts)

    def delete(self, vcon_uuid: str) -> int:
        if self.fail is None:
            with contextlib.suppress(redis_errors.ConnectionError):
                self.seen_at_delete.append(bool(self.redis.exists(f"app:{vcon_uuid}")))
        return super().delete(vcon_uuid)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def redis(server: fakeredis.FakeServer) -> Any:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def db(redis: Any) -> MemoryDatabase:
    return MemoryDatabase(redis)


@pytest.fixture
def store(db: MemoryDatabase, redis: Any) -> Iterator[SupabaseStorage]:
    with SupabaseStorage(OPTIONS, database=db, redis_client=redis) as storage:
        yield storage


def make(db: MemoryDatabase, redis: Any, **options: Any) -> SupabaseStorage:
    return SupabaseStorage({**OPTIONS, **options}, database=db, redis_client=redis)


def test_save_writes_the_database_before_redis(
    store: SupabaseStorage, db: MemoryDatabase, redis: Any
) -> None:
    document = sample()
    assert store.save_vcon(document) == 1
    assert db.seen_at_save == [(False, 0)]  # nothing in Redis yet when the database wrote
    assert redis.exists(f"app:{document['uuid']}") == 1
    assert 85 <= redis.ttl(f"app:{document['uuid']}") <= 90
    assert redis.lrange("egress", 0, -1) == [document["uuid"].encode()]


def test_a_failed_database_write_touches_only_the_journal(
    store: SupabaseStorage, db: MemoryDatabase, redis: Any
) -> None:
    """No cache entry, no chain push: the vCon waits on the failed-save journal."""
    document = sample()
    db.fail = DatabaseUnavailableError("down", operation="save")
    with pytest.raises(DatabaseUnavailableError):
        store.save_vcon(document)
    journal = "conserver_supabase:journal"
    kept = {journal, f"{journal}:vcon:{document['uuid']}", f"{journal}:meta:{document['uuid']}"}
    assert set(redis.keys("*")) == {key.encode() for key in kept}


def test_a_save_that_fails_while_a_replay_runs_is_journaled(
    store: SupabaseStorage, db: MemoryDatabase, redis: Any
) -> None:
    """The replay does not journal its own failures again, and only its own: another
    thread's save failing meanwhile is journaled as always (it was raised unjournaled)."""
    down = DatabaseUnavailableError("down", operation="save")
    waiting = [sample(), sample()]
    db.fail = down
    for document in waiting:
        with pytest.raises(DatabaseUnavailableError):
            store.save_vcon(document)
    db.fail = None
    late = sample()
    failures: list[DatabaseUnavailableError] = []

    def save_elsewhere() -> None:
        try:
            store.save_vcon(late)
        except DatabaseUnavailableError as exc:
            failures.append(exc)

    def midway(done: int, total: int) -> None:
        if done == 1:  # between the two entries: another thread's save fails
            db.fail = down
            thread = threading.Thread(target=save_elsewhere)
            thread.start()
            thread.join()
            db.fail = None

    report = store.replay_journal(progress=midway)
    assert report.replayed == 2
    assert report.error is None
    assert len(failures) == 1
    assert failures[0].journaled is True
    journal = "conserver_supabase:journal"
    assert redis.lrange(journal, 0, -1) == [late["uuid"].encode()]
    assert store.replay_journal().replayed == 1
    assert set(db.rows) == {d["uuid"] for d in [*waiting, late]}


def test_delete_goes_to_the_database_while_the_cache_still_holds_it(
    store: SupabaseStorage, db: MemoryDatabase, redis: Any
) -> None:
    document = sample()
    store.save_vcon(document)
    assert store.delete_vcon(document["uuid"]) is True
    assert db.seen_at_delete == [True]
    assert redis.exists(f"app:{document['uuid']}") == 0


def test_a_miss_fills_with_the_ttl(store: SupabaseStorage, db: MemoryDatabase, redis: Any) -> None:
    document = sample()
    db.rows[document["uuid"]] = document
    assert store.get_vcon(document["uuid"]) == document
    assert 85 <= redis.ttl(f"app:{document['uuid']}") <= 90


def test_a_redis_outage_is_logged_once_and_its_end_once(
    store: SupabaseStorage,
    db: MemoryDatabase,
    server: fakeredis.FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="conserver_supabase")
    documents = [sample() for _ in range(3)]
    server.connected = False
    for document in documents:
        with pytest.raises(ChainPushError) as caught:  # the chain list is in Redis too
            store.save_vcon(document)
        assert caught.value.lists == ("egress",)
        assert store.get_vcon(document["uuid"]) == document  # from the database
    server.connected = True
    store.get_vcon(documents[0]["uuid"])
    levels = [record.levelname for record in caplog.records]
    assert levels == ["WARNING", "INFO"]
    assert "is unavailable" in caplog.records[0].getMessage()
    # each round: the cache write after the save and the fill after the read (the read
    # itself does not ask Redis: the write failed, so the entry may be stale)
    assert "after 6 failed cache operation(s)" in caplog.records[1].getMessage()
    assert db.rows.keys() == {d["uuid"] for d in documents}


def test_without_chain_lists_an_outage_does_not_fail_saves(
    db: MemoryDatabase, redis: Any, server: fakeredis.FakeServer
) -> None:
    with make(db, redis, chain_lists=[]) as store:
        server.connected = False
        assert store.save_vcon(sample()) == 1
        assert store.cache_stats()["errors"] == 1


def test_cache_errors_raise(db: MemoryDatabase, redis: Any, server: fakeredis.FakeServer) -> None:
    document = sample()
    with make(db, redis, chain_lists=[], cache_errors="raise") as store:
        server.connected = False
        with pytest.raises(CacheError, match="saved in the database"):
            store.save_vcon(document)
        assert document["uuid"] in db.rows
        with pytest.raises(CacheError):
            store.get_vcon(document["uuid"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRedis:
    """A fakeredis client that counts the commands storage sends it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.commands = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return self.inner.execute_command(*args, **options)

    def register_script(self, script: str) -> Any:
        return self.inner.register_script(script)


def test_the_circuit_opens_after_three_failures_and_closes_after_a_good_probe(
    db: MemoryDatabase, server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While open, calls skip Redis entirely (no waiting on redis_timeout); after the
    cool-down one call probes; each change of state is logged once."""
    caplog.set_level(logging.INFO, logger="conserver_supabase")
    document = sample()
    db.rows[document["uuid"]] = document
    clock = FakeClock()
    counting = CountingRedis(fakeredis.FakeRedis(server=server))
    with make(db, counting, chain_lists=[], redis_cooldown=5) as store:
        store._redis.breaker.clock = clock
        server.connected = False
        for _ in range(2):  # read + fill fail each time: the third failure trips it
            assert store.get_vcon(document["uuid"]) == document
        tried = counting.commands
        for _ in range(5):
            assert store.get_vcon(document["uuid"]) == document
        assert counting.commands == tried  # skipped, not tried
        messages = [record.getMessage() for record in caplog.records]
        assert sum("circuit open" in m for m in messages) == 1
        server.connected = True
        clock.now += 4  # still cooling down: skipped although Redis is back
        store.get_vcon(document["uuid"])
        assert not any("Redis answers again" in r.getMessage() for r in caplog.records)
        clock.now += 2  # cool-down over: this call probes and succeeds
        assert store.get_vcon(document["uuid"]) == document
    closing = [r.getMessage() for r in caplog.records if "Redis answers again" in r.getMessage()]
    assert len(closing) == 1
    assert "(circuit closed)" in closing[0]


def test_a_failed_probe_opens_the_circuit_again(
    db: MemoryDatabase, server: fakeredis.FakeServer
) -> None:
    document = sample()
    db.rows[document["uuid"]] = document
    clock = FakeClock()
    counting = CountingRedis(fakeredis.FakeRedis(server=server))
    with make(db, counting, chain_lists=[], redis_cooldown=5) as store:
        store._redis.breaker.clock = clock
        server.connected = False
        for _ in range(3):
            store.get_vcon(document["uuid"])
        clock.now += 6
        assert store._redis.breaker.skip_for() is None  # the probe may go
        assert store._redis.breaker.skip_for() == 0.0  # the others keep skipping meanwhile
        store._redis.breaker._probing = False
        store.get_vcon(document["uuid"])  # the probe fails
        assert store._redis.breaker.skip_for() == pytest.approx(5.0)
