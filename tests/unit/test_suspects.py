"""After a skipped or failed cache write, the process does not serve that vCon from
Redis until the entry is repaired: the marks (with a fake clock) and the policy on
fakeredis, whose server keeps its data while it is disconnected (a freeze)."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from conserver_supabase import ChainPushError, DatabaseUnavailableError, SupabaseStorage, testing
from conserver_supabase._redis._suspects import Suspects

from ..support.vcons import sample

OPTIONS = {
    "database_url": "postgresql://unused/x",
    "cache_format": "string",
    "cache_key_prefix": "app:",
    "cache_ttl": 60,
    "retry_deadline": 0,
    "redis_cooldown": 0,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_mark_holds_until_repaired_or_for_the_ttl() -> None:
    clock = Clock()
    suspects = Suspects(capacity=10, ttl=60, clock=clock)
    suspects.mark(["a", "b"])
    assert (suspects.trusted("a"), suspects.trusted("b"), suspects.trusted("c")) == (
        False,
        False,
        True,
    )
    suspects.repaired_one("a")
    assert suspects.trusted("a")
    clock.now += 59.9
    assert not suspects.trusted("b")
    clock.now += 0.2  # every entry written before the mark has expired
    assert suspects.trusted("b")
    assert suspects.summary()["tracked"] == 0


def test_past_the_capacity_no_hit_is_trusted_until_the_ttl_after_the_last_mark() -> None:
    clock = Clock()
    suspects = Suspects(capacity=2, ttl=60, clock=clock)
    suspects.mark(["a", "b", "c"])
    assert not suspects.trusted("never-marked")
    assert suspects.summary()["distrusting_all"] is True
    clock.now += 30
    suspects.mark(["d"])  # while distrusting: the window moves on
    clock.now += 45
    assert not suspects.trusted("never-marked")
    clock.now += 15.1
    assert suspects.trusted("never-marked")
    assert suspects.trusted("a")  # the overflow dropped the marks, the window covered them
    assert suspects.summary()["overflows"] == 1


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def db() -> testing.MemoryDatabase:
    return testing.MemoryDatabase()


@pytest.fixture
def store(db: testing.MemoryDatabase, server: fakeredis.FakeServer) -> Iterator[SupabaseStorage]:
    redis = fakeredis.FakeRedis(server=server)
    with SupabaseStorage(OPTIONS, database=db, redis_client=redis) as storage:
        yield storage


def test_entries_written_before_a_freeze_are_not_served_after_it(
    store: SupabaseStorage, db: testing.MemoryDatabase, server: fakeredis.FakeServer
) -> None:
    """Cached A and X; Redis unreachable with its data kept; B saved over A, X deleted
    (both committed, their cache writes failed); Redis back: the database answers for
    them (not the older entries), repairs them, and then the cache serves B again."""
    first, gone = sample(), sample()
    store.save_vcon(first)
    store.save_vcon(gone)
    server.connected = False
    later = {**first, "subject": "saved while Redis was unreachable"}
    assert store.save_vcon(later) == 2
    assert store.delete_vcon(gone["uuid"]) is True
    server.connected = True
    assert store.exists(gone["uuid"]) is False
    assert store.get_vcon(gone["uuid"]) is None
    assert store.get_vcon(first["uuid"]) == later
    assert store.stats()["suspect_keys"]["repaired"] == 2
    db.calls.clear()
    assert store.get_vcon(first["uuid"]) == later  # repaired: a hit again
    assert db.calls == []
    assert store.get_vcon(gone["uuid"]) is None


def test_past_the_limit_every_read_goes_to_the_database(
    db: testing.MemoryDatabase, server: fakeredis.FakeServer
) -> None:
    redis = fakeredis.FakeRedis(server=server)
    options = {**OPTIONS, "cache_suspect_limit": 1, "chain_lists": ["egress"]}
    with SupabaseStorage(options, database=db, redis_client=redis) as store:
        cached = sample()
        store.save_vcon(cached)
        server.connected = False
        for _ in range(2):
            with pytest.raises(ChainPushError):
                store.save_vcon(sample())
        server.connected = True
        db.calls.clear()
        assert store.get_vcon(cached["uuid"]) == cached
        assert db.calls == ["fetch"]  # not a hit, though nothing of it failed
        assert store.stats()["suspect_keys"]["distrusting_all"] is True


def test_a_journaled_save_of_a_suspect_vcon_has_no_base(
    store: SupabaseStorage, db: testing.MemoryDatabase, server: fakeredis.FakeServer
) -> None:
    """The version the cache records may be stale: the replay's fence falls back on time."""
    document = sample()
    store.save_vcon(document)
    server.connected = False
    store.save_vcon({**document, "subject": "committed, not cached"})
    server.connected = True
    db.fail = DatabaseUnavailableError("down", operation="save")
    with pytest.raises(DatabaseUnavailableError):
        store.save_vcon({**document, "subject": "journaled"})
    db.fail = None
    assert store.journal_entries()[0]["base"] is None
