"""The journal's policy on fakes (testing.MemoryDatabase and fakeredis): what an entry
records, the replay's fence and tenant guard, dead letters, and what a delete or a
purge takes away. The same rules run on real services in
tests/acceptance/test_replay_fence.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    SupabaseStorage,
    testing,
)

from ..support.vcons import sample

JOURNAL = "conserver_supabase:journal"
OPTIONS = {
    "database_url": "postgresql://unused/x",
    "cache_format": "string",
    "cache_key_prefix": "app:",
    "retry_deadline": 0,
    "redis_cooldown": 0,
}
DOWN = DatabaseUnavailableError("down", operation="save")


@pytest.fixture
def redis() -> Any:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def db() -> testing.MemoryDatabase:
    return testing.MemoryDatabase()


@pytest.fixture
def store(db: testing.MemoryDatabase, redis: Any) -> Iterator[SupabaseStorage]:
    with SupabaseStorage(OPTIONS, database=db, redis_client=redis) as storage:
        yield storage


def failed_save(db: testing.MemoryDatabase, store: SupabaseStorage, document: Any) -> None:
    db.fail = DOWN
    with pytest.raises(DatabaseUnavailableError):
        store.save_vcon(document)
    db.fail = None


def meta(redis: Any, vcon_uuid: str) -> dict[str, Any]:
    return dict(json.loads(redis.get(f"{JOURNAL}:meta:{vcon_uuid}")))


def test_an_entry_records_the_version_the_cache_knew_and_the_tenant_guard(
    db: testing.MemoryDatabase, redis: Any
) -> None:
    document = sample()
    with SupabaseStorage({**OPTIONS, "tenant_id": "acme"}, database=db, redis_client=redis) as s:
        s.save_vcon(document)
        s.save_vcon(document)
        failed_save(db, s, document)
    recorded = meta(redis, document["uuid"])
    assert recorded["base"] == 2
    assert recorded["tenant"] == {"tenant_id": "acme", "exclusive": True}
    assert recorded["at"] > 0
    assert 7 * 86400 - 5 <= redis.ttl(f"{JOURNAL}:vcon:{document['uuid']}") <= 7 * 86400


def test_a_save_after_a_delete_is_fenced_on_its_time(
    db: testing.MemoryDatabase, store: SupabaseStorage, redis: Any
) -> None:
    """Deleted at 2; a re-creation fails: the tombstone (-2 on record) is no base (a -n
    may also be a link's newer working copy), so the time rule fences it: replayed, as
    nothing happened since; deleted again at 4, a failed save, then a save and a delete
    (6) after it: superseded."""
    document = sample()
    store.save_vcon(document)
    store.delete_vcon(document["uuid"])
    failed_save(db, store, document)
    recorded = meta(redis, document["uuid"])
    assert (recorded["base"], recorded["at"] > 0) == (None, True)
    db.delete(document["uuid"])  # nothing there: the tombstone stays at 2
    assert store.replay_journal().replayed == 1
    store.delete_vcon(document["uuid"])
    failed_save(db, store, document)
    assert meta(redis, document["uuid"])["base"] is None
    db.save([document], None)
    db.delete(document["uuid"])  # deleted again at 6, after the failed save
    report = store.replay_journal()
    assert (report.replayed, len(report.superseded)) == (0, 1)
    assert document["uuid"] not in db.documents


class LinkWritesDuringSave(testing.MemoryDatabase):
    """A link writes a newer working copy while a save is in the database (once, after
    ``link`` is set to the redis client, key and document)."""

    link: tuple[Any, str, dict[str, Any]] | None = None

    def save(
        self, documents: Any, tenants: Any, bases: Any = None, texts: Any = None
    ) -> dict[str, int]:
        versions = super().save(documents, tenants, bases, texts)
        if self.link is not None:
            (redis, key, document), self.link = self.link, None
            redis.set(key, json.dumps(document))  # no RedisJSON in fakeredis here
        return versions


def test_a_links_newer_working_copy_journaled_is_replayed(redis: Any) -> None:
    """The hook saved version 2 while a link wrote a newer working copy: the touch kept
    it and put -2 on record (lua/write.lua). That copy's own hook save fails: based on
    "deleted at 2" its replay would be dropped (the database holds 2) and the link's
    work lost; with no base the time rule lets it through."""
    document = sample()
    newer = {**document, "subject": "the link's newer working copy"}
    key = f"vcon:{document['uuid']}"
    db = LinkWritesDuringSave()
    options = {**OPTIONS, "cache_key_prefix": "vcon:", "cache_format": "auto"}
    with SupabaseStorage(options, database=db, redis_client=redis) as store:
        store.save_vcon(document)
        db.link = (redis, key, newer)
        assert store.save_working_copy(document["uuid"]) == 2
        assert int(redis.get(f"conserver_supabase:version:{{{key}}}")) == -2
        db.fail = DOWN
        with pytest.raises(DatabaseUnavailableError):
            store.save_working_copy(document["uuid"])
        db.fail = None
        assert meta(redis, document["uuid"])["base"] is None
        report = store.replay_journal()
        assert (report.replayed, report.superseded) == (1, [])
    assert db.documents[document["uuid"]] == newer


def test_a_later_save_supersedes_the_entry(
    db: testing.MemoryDatabase, store: SupabaseStorage
) -> None:
    document = sample()
    store.save_vcon(document)
    failed_save(db, store, {**document, "subject": "old"})
    store.save_vcon({**document, "subject": "new"})
    report = store.replay_journal()
    assert (report.total, report.replayed, len(report.superseded)) == (1, 0, 1)
    assert db.documents[document["uuid"]]["subject"] == "new"
    assert db.calls.count("replay") == 1  # one round trip decided it


def test_a_refusal_is_raised_and_not_journaled(
    db: testing.MemoryDatabase, store: SupabaseStorage, redis: Any
) -> None:
    db.fail = DatabaseRejectedError("no", operation="save", code="42501")
    with pytest.raises(DatabaseRejectedError) as caught:
        store.save_vcon(sample())
    assert caught.value.journaled is False
    assert redis.keys("*") == []


def test_a_delete_takes_the_entry_and_its_dead_letter_away(
    db: testing.MemoryDatabase, store: SupabaseStorage, redis: Any
) -> None:
    document, other = sample(), sample()
    db.tenants[other["uuid"]] = "someone else"
    db.documents[other["uuid"]], db.versions[other["uuid"]] = other, 1
    with SupabaseStorage({**OPTIONS, "tenant_id": "me"}, database=db, redis_client=redis) as s:
        failed_save(db, s, other)
    assert len(store.replay_journal().dead_lettered) == 1
    failed_save(db, store, document)
    for vcon_uuid in (document["uuid"], other["uuid"]):
        store.delete_vcon(vcon_uuid)
    assert redis.keys(f"{JOURNAL}*") == []


def test_purge_removes_entries_older_than_asked_and_expired_ones(
    db: testing.MemoryDatabase, store: SupabaseStorage, redis: Any
) -> None:
    kept, expired = sample(), sample()
    failed_save(db, store, kept)
    failed_save(db, store, expired)
    redis.delete(f"{JOURNAL}:vcon:{expired['uuid']}", f"{JOURNAL}:meta:{expired['uuid']}")
    seen: list[tuple[int, int]] = []
    assert store.purge_journal(progress=lambda done, total: seen.append((done, total))) == 1
    assert seen == [(1, 2), (2, 2)]
    assert [entry["uuid"] for entry in store.journal_entries()] == [kept["uuid"]]
    assert store.purge_journal(0) == 1
    assert redis.keys("*") == []
