"""SupabaseStorage policy against a real PostgreSQL and real Redis (with and without
RedisJSON): write order, cache-first reads, fills, chain lists, failing Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from conserver_supabase import (
    ConfigurationError,
    InvalidVconError,
    SupabaseStorage,
)
from conserver_supabase._database import Tenant

from ...behaviour.storage import (  # the shared suite, run here on the real services
    TestCacheHitsAndMisses,
    TestDeletesAndTheVersionRule,
)
from ...support.counting import CountingDatabase, cached, storage, stored
from ...support.services import redis_has_json
from ...support.vcons import new_uuid, rich_vcon, sample

pytestmark = pytest.mark.integration
# The shared suite's classes, collected in this module.
__all__ = ["TestCacheHitsAndMisses", "TestDeletesAndTheVersionRule"]


class TestSave:
    def test_database_then_cache_with_ttl_then_chain_lists(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        document = rich_vcon()
        with storage(db, redis_url, cache_ttl=300, chain_lists=["egress", "audit"]) as store:
            assert store.save_vcon(document) == 1
            assert store.save_vcon(document) == 2
        key = f"vcon:{document['uuid']}"
        assert stored(database_url, document["uuid"]) == document
        assert cached(r, document["uuid"]) == document
        assert r.type(key) == (b"ReJSON-RL" if redis_has_json(redis_url) else b"string")
        assert 295 <= r.ttl(key) <= 300
        for name in ("egress", "audit"):
            assert r.lrange(name, 0, -1) == [document["uuid"].encode()] * 2

    @pytest.mark.parametrize("form", ["json text", "bytes", "to_dict object", "mapping"])
    def test_accepts_json_text_and_vcon_objects(
        self, form: str, db: CountingDatabase, redis_url: str, database_url: str
    ) -> None:
        document = sample()

        class VconLike:
            def to_dict(self) -> dict[str, Any]:
                return document

        given: Any = {
            "json text": json.dumps(document),
            "bytes": json.dumps(document).encode(),
            "to_dict object": VconLike(),
            "mapping": _ReadOnly(document),
        }[form]
        with storage(db, redis_url) as store:
            store.save_vcon(given)
        assert stored(database_url, document["uuid"]) == document

    @pytest.mark.parametrize(
        ("given", "reason"),
        [
            ("{not json", "is not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            (42, "must be a dict, JSON text or an object with to_dict()"),
        ],
    )
    def test_unusable_input_is_an_invalid_vcon_error(
        self, given: Any, reason: str, db: CountingDatabase, redis_url: str
    ) -> None:
        with storage(db, redis_url) as store, pytest.raises(InvalidVconError) as caught:
            store.save_vcon(given)
        assert caught.value.field == "(document)"
        assert reason in str(caught.value)
        assert db.calls == []

    def test_an_invalid_vcon_is_written_nowhere(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        document = sample()
        document["dialog"][0]["encoding"] = "rot13"
        with (
            storage(db, redis_url, chain_lists=["egress"]) as store,
            pytest.raises(InvalidVconError) as caught,
        ):
            store.save_vcon(document)
        assert caught.value.vcon_uuid == document["uuid"]
        assert caught.value.field == "dialog[0].encoding"
        assert db.calls == []
        assert stored(database_url, document["uuid"]) is None
        assert r.keys("*") == []

    def test_the_callers_dict_is_not_modified(self, db: CountingDatabase, redis_url: str) -> None:
        document = sample()
        before = json.dumps(document, sort_keys=True)
        with storage(db, redis_url) as store:
            store.save_vcon(document)
        assert json.dumps(document, sort_keys=True) == before


class _ReadOnly(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class TestGet:
    def test_a_hit_is_served_by_redis_alone(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        document = sample()
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            db.calls.clear()
            assert store.get_vcon(document["uuid"].upper()) == document
        assert db.calls == []

    def test_a_miss_reads_the_database_and_fills_the_cache(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        document = sample()
        with storage(db, redis_url, cache_ttl=200) as store:
            store.save_vcon(document)
            r.delete(f"vcon:{document['uuid']}")
            db.calls.clear()
            assert store.get_vcon(document["uuid"]) == document
            assert db.calls == ["fetch"]
            assert cached(r, document["uuid"]) == document
            assert 195 <= r.ttl(f"vcon:{document['uuid']}") <= 200
            assert store.get_vcon(document["uuid"]) == document
        assert db.calls == ["fetch"]

    def test_a_fill_never_overwrites_a_concurrent_save(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        """get loads version 1; a save of version 2 lands in Redis before the fill."""
        document = sample()
        newer = {**document, "subject": "saved meanwhile"}
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            r.delete(f"vcon:{document['uuid']}")
            db.before_load = lambda _uuid: store.save_vcon(newer)
            assert store.get_vcon(document["uuid"]) == document  # what the database said
        assert cached(r, document["uuid"]) == newer

    def test_an_unknown_vcon_is_none_and_caches_nothing(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        with storage(db, redis_url) as store:
            assert store.get_vcon(new_uuid()) is None
        assert r.keys("*") == []

    def test_a_malformed_uuid_is_an_invalid_vcon_error(
        self, db: CountingDatabase, redis_url: str
    ) -> None:
        with storage(db, redis_url) as store, pytest.raises(InvalidVconError) as caught:
            store.get_vcon("not-a-uuid")
        assert caught.value.field == "uuid"
        assert db.calls == []

    def test_get_many_mixes_hits_misses_and_absent(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        hot, cold, absent = sample(), sample(), new_uuid()
        with storage(db, redis_url) as store:
            store.save_many([hot, cold])
            r.delete(f"vcon:{cold['uuid']}")
            db.calls.clear()
            found = store.get_many([hot["uuid"], cold["uuid"], absent, hot["uuid"]])
        assert found == {hot["uuid"]: hot, cold["uuid"]: cold}
        assert db.calls == ["fetch_many"]
        assert cached(r, cold["uuid"]) == cold


class TestSaveMany:
    def test_one_transaction_then_every_cache_and_chain(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        documents = [sample(), rich_vcon(), sample("04-teams-escalation-review")]
        with storage(db, redis_url, chain_lists=["egress"]) as store:
            versions = store.save_many(documents)
        assert versions == {d["uuid"]: 1 for d in documents}
        assert db.calls == ["save_many"]
        for document in documents:
            assert stored(database_url, document["uuid"]) == document
            assert cached(r, document["uuid"]) == document
        assert r.lrange("egress", 0, -1) == [d["uuid"].encode() for d in documents]

    def test_the_cache_is_refreshed_in_one_batch(
        self,
        db: CountingDatabase,
        redis_url: str,
        r: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """20 vCons: the client sends Redis one batch of commands (a pipeline), not 20,
        after the SCRIPT EXISTS that redis-py sends before a pipeline with scripts."""
        import redis

        sent: list[int] = []
        original = redis.connection.Connection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> None:
            sent.append(1)
            original(self, command, check_health)

        documents = [sample() for _ in range(21)]
        with storage(db, redis_url, chain_lists=["egress"]) as store:
            store.save_vcon(documents[0])  # connection open, scripts loaded
            monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
            store.save_many(documents[1:])
            monkeypatch.undo()
        assert len(sent) == 2
        assert all(cached(r, d["uuid"]) == d for d in documents)
        assert r.llen("egress") == 21

    def test_a_uuid_given_twice_caches_its_last_document_once(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        """The database keeps the last document (version 2); the cache must hold that
        one, never the first under the second's version, and the uuid is pushed once."""
        first = sample()
        second = {**first, "subject": "second"}
        with storage(db, redis_url, chain_lists=["egress"]) as store:
            assert store.save_many([first, second]) == {first["uuid"]: 2}
        assert stored(database_url, first["uuid"]) == second
        assert cached(r, first["uuid"]) == second
        assert r.get(f"conserver_supabase:version:{{vcon:{first['uuid']}}}") == b"2"
        assert r.lrange("egress", 0, -1) == [first["uuid"].encode()]

    def test_one_invalid_vcon_means_none_is_written(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        good, bad = sample(), sample()
        bad["parties"] = "everyone"
        with storage(db, redis_url) as store, pytest.raises(InvalidVconError, match="parties"):
            store.save_many([good, bad])
        assert db.calls == []
        assert r.keys("*") == []


class TestDelete:
    def test_database_first_then_the_cache(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        document = sample()
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            assert store.delete_vcon(document["uuid"]) is True
            assert stored(database_url, document["uuid"]) is None
            assert r.exists(f"vcon:{document['uuid']}") == 0
            assert store.delete_vcon(document["uuid"]) is False
            assert store.get_vcon(document["uuid"]) is None


class TestSharedInstances:
    def test_equal_options_share_one_instance_across_threads(
        self, database_url: str, redis_url: str
    ) -> None:
        options = {"database_url": database_url, "redis_url": redis_url}
        seen: list[SupabaseStorage] = []
        barrier = threading.Barrier(8)

        def worker() -> None:
            barrier.wait()
            seen.append(SupabaseStorage.for_options(dict(options)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first = seen[0]
        try:
            assert all(item is first for item in seen)
            assert SupabaseStorage.for_options({**options, "cache_ttl": 5}) is not first
        finally:
            SupabaseStorage.for_options({**options, "cache_ttl": 5}).close()
            first.close()
        assert SupabaseStorage.for_options(options) is not first  # close() forgot it
        SupabaseStorage.for_options(options).close()

    def test_leaving_a_with_block_keeps_a_shared_instance_open(
        self, database_url: str, redis_url: str
    ) -> None:
        options = {"database_url": database_url, "redis_url": redis_url}
        document = sample()
        with SupabaseStorage.for_options(options) as shared:
            shared.save_vcon(document)
        assert SupabaseStorage.for_options(options) is shared
        assert shared.get_vcon(document["uuid"]) == document  # pools still open
        shared.close()


class TestUuidObjects:
    def test_get_and_delete_take_uuid_objects(self, db: CountingDatabase, redis_url: str) -> None:
        """The conserver's HTTP API passes uuid.UUID, not str."""
        import uuid

        document = sample()
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            assert store.get_vcon(uuid.UUID(document["uuid"])) == document
            assert store.get_many([uuid.UUID(document["uuid"])]) == {document["uuid"]: document}
            assert store.delete_vcon(uuid.UUID(document["uuid"])) is True


class TestExistsStatsAndListOverride:
    def test_a_save_landing_after_a_delete_does_not_bring_the_vcon_back(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        document = sample()
        store = storage(db, redis_url)
        committed, deleted = threading.Event(), threading.Event()
        inner_save = db.save

        def save(
            documents: Sequence[Mapping[str, Any]],
            tenants: Sequence[Tenant] | None,
            bases: Sequence[int | None] | None = None,
            texts: Sequence[str] | None = None,
        ) -> dict[str, int]:
            versions = inner_save(documents, tenants, bases, texts)
            committed.set()
            assert deleted.wait(10)  # the delete runs between commit and cache write
            return versions

        db.save = save  # type: ignore[method-assign]
        thread = threading.Thread(target=store.save_vcon, args=(document,))
        thread.start()
        assert committed.wait(10)
        assert store.delete_vcon(document["uuid"]) is True
        deleted.set()
        thread.join(10)
        assert r.exists(f"vcon:{document['uuid']}") == 0
        assert store.get_vcon(document["uuid"]) is None
        store.close()

    def test_exists_asks_the_database_only_on_a_cache_miss(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        document = sample()
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            db.calls.clear()
            assert store.exists(document["uuid"]) is True
            assert db.calls == []
            r.delete(f"vcon:{document['uuid']}")
            assert store.exists(document["uuid"]) is True
            assert store.exists(new_uuid()) is False
            assert db.calls == ["exists", "exists"]
            assert r.exists(f"vcon:{document['uuid']}") == 0  # exists() does not fill
            working = sample()  # the conserver holds it, nobody saved it
            r.set(f"vcon:{working['uuid']}", json.dumps(working))
            assert store.exists(working["uuid"]) is False

    def test_chain_lists_can_be_replaced_per_call(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        first, second, third = sample(), sample(), sample()
        with storage(db, redis_url, chain_lists=["configured"]) as store:
            store.save_vcon(first, chain_lists=["analysis"])
            store.save_vcon(second, chain_lists=[])
            store.save_vcon(third, chain_lists="analysis")  # a name, not its letters
            with pytest.raises(ConfigurationError, match="chain_lists"):
                store.save_vcon(first, chain_lists=["", "x"])
        assert r.lrange("analysis", 0, -1) == [first["uuid"].encode(), third["uuid"].encode()]
        assert r.exists("configured") == 0
        assert r.keys("?") == []

    def test_cache_stats_count_hits_misses_fills_and_errors(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        document, other = sample(), sample()
        r.hset(f"vcon:{other['uuid']}", "not", "a vcon")
        with storage(db, redis_url) as store:
            store.save_vcon(document)
            store.get_vcon(document["uuid"])  # hit
            r.delete(f"vcon:{document['uuid']}")
            store.get_vcon(document["uuid"])  # miss, fill
            store.get_vcon(new_uuid())  # miss, nothing to fill
            store.get_vcon(other["uuid"])  # error (wrong type), then the database
            assert store.cache_stats() == {"hits": 1, "misses": 2, "fills": 1, "errors": 1}


def test_close_shared_closes_every_shared_instance(database_url: str, redis_url: str) -> None:
    first = SupabaseStorage.for_options({"database_url": database_url, "redis_url": redis_url})
    other = SupabaseStorage.for_options(
        {"database_url": database_url, "redis_url": redis_url, "cache_ttl": 9}
    )
    SupabaseStorage.close_shared()
    again = SupabaseStorage.for_options({"database_url": database_url, "redis_url": redis_url})
    assert again is not first
    assert again is not other
