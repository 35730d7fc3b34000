"""The storage's cache behaviour, one suite for the unit suite's fakes (the in-memory
database, fake Redis) and for the real services (both transports, Redis with and
without RedisJSON): hits are served by Redis alone and counted, misses fill, deletes
fence off late writes, batches cache every vCon, chain lists get every uuid.

A test module runs it by importing these classes and defining the ``redis_kind``
(:class:`~tests.support.redis_kinds.RedisUnderTest`) and ``database`` fixtures (a
database seam that lists the calls it got in ``calls``).
"""

from __future__ import annotations

from typing import Any

from ..support.redis_kinds import RedisUnderTest
from ..support.vcons import new_uuid, sample


def _reads(database: Any) -> int:
    return sum(name.startswith("fetch") for name in database.calls)


class TestCacheHitsAndMisses:
    def test_a_saved_vcon_is_served_by_redis_alone(
        self, redis_kind: RedisUnderTest, database: Any
    ) -> None:
        store = redis_kind.storage(database)
        document = sample()
        store.save_vcon(document)
        database.calls.clear()
        assert store.get_vcon(document["uuid"]) == document
        assert store.get_vcon(document["uuid"]) == document
        assert _reads(database) == 0
        assert store.cache_stats() == {"hits": 2, "misses": 0, "fills": 0, "errors": 0}

    def test_a_miss_reads_the_database_once_and_fills_the_cache(
        self, redis_kind: RedisUnderTest, database: Any
    ) -> None:
        store = redis_kind.storage(database, cache_ttl=90)
        document = sample()
        store.save_vcon(document)
        client = redis_kind.client
        client.delete(f"vcon:{document['uuid']}")  # evicted
        database.calls.clear()
        assert store.get_vcon(document["uuid"]) == document  # a miss, filled
        assert store.get_vcon(document["uuid"]) == document  # a hit
        assert _reads(database) == 1
        assert 85 <= client.ttl(f"vcon:{document['uuid']}") <= 90
        assert store.cache_stats() == {"hits": 1, "misses": 1, "fills": 1, "errors": 0}

    def test_exists_answers_from_the_cache_for_a_saved_vcon(
        self, redis_kind: RedisUnderTest, database: Any
    ) -> None:
        store = redis_kind.storage(database)
        document = sample()
        store.save_vcon(document)
        database.calls.clear()
        assert store.exists(document["uuid"]) is True
        assert store.exists(new_uuid()) is False
        assert database.calls == ["exists"]  # only the unknown uuid asked the database

    def test_a_batch_is_cached_whole(self, redis_kind: RedisUnderTest, database: Any) -> None:
        store = redis_kind.storage(database, chain_lists=["egress"])
        documents = [sample() for _ in range(3)]
        store.save_many(documents)
        database.calls.clear()
        found = store.get_many([d["uuid"] for d in documents])
        assert found == {d["uuid"]: d for d in documents}
        assert _reads(database) == 0
        assert store.cache_stats()["hits"] == 3
        assert redis_kind.client.lrange("egress", 0, -1) == [d["uuid"].encode() for d in documents]


class TestDeletesAndTheVersionRule:
    def test_a_deleted_vcon_is_gone_and_a_read_from_before_cannot_bring_it_back(
        self, redis_kind: RedisUnderTest, database: Any
    ) -> None:
        store = redis_kind.storage(database)
        document = sample()
        store.save_vcon(document)
        assert store.delete_vcon(document["uuid"]) is True
        assert store.get_vcon(document["uuid"]) is None
        # a read that began before the delete (version 1) reaches Redis after it
        assert store._redis.fill(document["uuid"], "{}", 1) is False
        assert store.get_vcon(document["uuid"]) is None
        assert store.cache_stats()["errors"] == 0

    def test_a_save_after_the_delete_is_cached_again(
        self, redis_kind: RedisUnderTest, database: Any
    ) -> None:
        store = redis_kind.storage(database)
        document = sample()
        store.save_vcon(document)
        store.delete_vcon(document["uuid"])
        again = {**document, "subject": "saved again"}
        assert store.save_vcon(again) == 3  # after the delete's version 2
        database.calls.clear()
        assert store.get_vcon(document["uuid"]) == again
        assert _reads(database) == 0
