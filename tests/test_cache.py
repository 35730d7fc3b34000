"""The Redis hot tier against real Redis servers, with and without RedisJSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conserver_supabase import CacheError
from conserver_supabase._redis import Entry

from .cache_api import Cache
from .conftest import closing_later, redis_client, redis_has_json
from .faults import FaultServer
from .vcons import new_uuid

pytestmark = pytest.mark.integration
DOC = json.dumps({"vcon": "0.3.0", "uuid": "x", "subject": "ünïcode ✓"}, ensure_ascii=False)


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    connection = redis_client(redis_url)
    yield connection
    connection.close()


def make_cache(url: str, **options: Any) -> Cache:
    cache = Cache.from_options({"redis_url": url, **options})
    return closing_later(cache)


def kind(client: Any, key: str) -> str:
    return str(client.type(key).decode())


class TestNewKeys:
    def test_auto_writes_redisjson_when_the_module_is_there_else_a_string(
        self, redis_url: str, client: Any
    ) -> None:
        cache = make_cache(redis_url, cache_ttl=120)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="overwrite") is True
        expected = "ReJSON-RL" if redis_has_json(redis_url) else "string"
        assert kind(client, f"vcon:{vcon_uuid}") == expected
        assert 115 <= client.ttl(f"vcon:{vcon_uuid}") <= 120
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)
        assert cache.has_json_module() is redis_has_json(redis_url)

    def test_string_format_is_honoured_on_a_json_server(
        self, redis_json_url: str, client: Any
    ) -> None:
        cache = make_cache(redis_json_url, cache_format="string", cache_key_prefix="app:")
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert kind(redis_client(redis_json_url), f"app:{vcon_uuid}") == "string"

    def test_json_format_without_the_module_is_an_error_and_writes_nothing(
        self, redis_plain_url: str
    ) -> None:
        cache = make_cache(redis_plain_url, cache_format="json")
        vcon_uuid = new_uuid()
        with pytest.raises(CacheError, match="lacks RedisJSON") as caught:
            cache.write(vcon_uuid, DOC, mode="overwrite", lists=["chain"])
        assert caught.value.unavailable is False
        assert "set cache_format to auto or string" in str(caught.value)
        plain = redis_client(redis_plain_url)
        assert plain.exists(f"vcon:{vcon_uuid}", "chain") == 0


class TestExistingKeysKeepTheirType:
    def test_a_string_key_stays_a_string_on_a_json_server(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        client.set(f"vcon:{vcon_uuid}", '{"old": true}')
        make_cache(redis_json_url).write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"vcon:{vcon_uuid}") == "string"
        assert json.loads(client.get(f"vcon:{vcon_uuid}")) == json.loads(DOC)

    def test_a_json_key_stays_json_when_string_is_forced(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        client.json().set(f"app:{vcon_uuid}", "$", {"old": True})
        cache = make_cache(redis_json_url, cache_format="string", cache_key_prefix="app:")
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"app:{vcon_uuid}") == "ReJSON-RL"
        assert client.json().get(f"app:{vcon_uuid}") == json.loads(DOC)

    def test_a_key_of_another_type_is_refused_untouched(self, redis_url: str, client: Any) -> None:
        vcon_uuid = new_uuid()
        client.hset(f"vcon:{vcon_uuid}", "field", "value")
        with pytest.raises(CacheError, match="WRONGTYPE") as caught:
            make_cache(redis_url).write(vcon_uuid, DOC, mode="overwrite")
        assert "cache_key_prefix" in str(caught.value)  # the hint says what to change
        assert client.hgetall(f"vcon:{vcon_uuid}") == {b"field": b"value"}
        assert client.ttl(f"vcon:{vcon_uuid}") == -1


class TestModes:
    def test_fill_never_overwrites_and_leaves_the_ttl(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url, cache_ttl=100)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"newer": 1}', mode="overwrite")
        client.expire(f"vcon:{vcon_uuid}", 50)
        assert cache.write(vcon_uuid, '{"older": 1}', mode="fill") is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"newer": 1}
        assert client.ttl(f"vcon:{vcon_uuid}") <= 50

    def test_fill_writes_an_absent_key_with_the_ttl(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url, cache_ttl=100)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="fill") is True
        assert 95 <= client.ttl(f"vcon:{vcon_uuid}") <= 100

    def test_touch_renews_the_ttl_without_rewriting(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url, cache_ttl=100)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"current": 1}', mode="overwrite")
        client.persist(f"vcon:{vcon_uuid}")
        assert cache.write(vcon_uuid, '{"stale": 1}', mode="touch") is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"current": 1}
        assert 95 <= client.ttl(f"vcon:{vcon_uuid}") <= 100

    def test_touch_writes_when_the_key_vanished(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="touch") is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)


class TestChainLists:
    def test_uuids_reach_every_list_in_fifo_order(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url)
        first, second = new_uuid(), new_uuid()
        cache.write(first, DOC, mode="overwrite", lists=["ingress_a", "ingress_b"])
        cache.write(second, DOC, mode="fill", lists=["ingress_a", "ingress_b"])
        for name in ("ingress_a", "ingress_b"):  # the conserver pops with BLPOP
            assert client.lpop(name).decode() == first
            assert client.lpop(name).decode() == second

    def test_a_wrong_type_list_fails_before_anything_is_written(
        self, redis_url: str, client: Any
    ) -> None:
        client.set("broken", "not a list")
        vcon_uuid = new_uuid()
        with pytest.raises(CacheError, match="WRONGTYPE chain list broken"):
            make_cache(redis_url).write(vcon_uuid, DOC, mode="overwrite", lists=["good", "broken"])
        assert client.exists(f"vcon:{vcon_uuid}", "good") == 0

    def test_push_reports_each_failed_list(self, redis_url: str, client: Any) -> None:
        client.set("broken", "not a list")
        vcon_uuid = new_uuid()
        failed = make_cache(redis_url).push(vcon_uuid, ["good", "broken"])
        assert list(failed) == ["broken"]
        assert "WRONGTYPE" in failed["broken"]
        assert client.lrange("good", 0, -1) == [vcon_uuid.encode()]


class TestReadAndDelete:
    def test_read_either_type_and_absent(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        cache = make_cache(redis_json_url)
        client.json().set("vcon:j", "$", {"a": [1, "ü"]})
        client.set("vcon:s", '{"b": null}')
        assert cache.read("vcon:j", "j") == {"a": [1, "ü"]}
        assert cache.read("vcon:s", "s") == {"b": None}
        assert cache.read("vcon:none", "none") is None

    def test_a_value_that_is_not_json_is_a_cache_error(self, redis_url: str, client: Any) -> None:
        client.set("vcon:garbage", "{not json")
        with pytest.raises(CacheError, match="vcon:garbage does not hold JSON"):
            make_cache(redis_url).read("vcon:garbage", "garbage")

    def test_delete_says_whether_the_key_existed(self, redis_url: str) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert cache.delete(vcon_uuid) is True
        assert cache.delete(vcon_uuid) is False


def test_an_unreachable_redis_is_an_unavailable_cache_error(unreachable_redis_url: str) -> None:
    cache = make_cache(unreachable_redis_url + "?password=hunter2", redis_timeout=1)
    with pytest.raises(CacheError) as caught:
        cache.read("vcon:x", "x")
    assert caught.value.unavailable is True
    assert "is unavailable" in str(caught.value)
    assert "hunter2" not in str(caught.value)


class TestTimeoutsAndRetries:
    def test_a_command_that_times_out_is_not_retried(self) -> None:
        """The write script pushes onto lists: a slow reply must not make it run twice."""
        with FaultServer("silent") as server:
            cache = make_cache(server.url, redis_timeout=0.3)
            with pytest.raises(CacheError) as caught:
                cache.write(new_uuid(), DOC, mode="overwrite", lists=["egress"])
            assert caught.value.unavailable is True
            assert "Timeout" in str(caught.value)
            assert server.connections == 1

    def test_a_broken_connection_is_retried_once_then_reported(self) -> None:
        """No recursion, no endless reconnects (redis-py 4.6 recursed with health checks)."""
        with FaultServer("closing") as server:
            cache = make_cache(server.url, redis_timeout=0.3)
            with pytest.raises(CacheError) as caught:
                cache.read("vcon:x", "x")
            assert caught.value.unavailable is True
            assert server.connections == 2


class TestVersionGuard:
    def test_an_older_save_never_replaces_a_newer_one(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, '{"v": 2}', mode="overwrite", version=2) is True
        assert cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1) is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 2}
        assert cache.write(vcon_uuid, '{"v": 3}', mode="overwrite", version=3) is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 3}
        assert client.ttl(cache.version_key(vcon_uuid)) > 0
        assert client.keys("vcon:*") == [f"vcon:{vcon_uuid}".encode()]  # nothing else there

    def test_a_stale_save_still_reaches_the_chain_lists(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 2}', mode="overwrite", version=2)
        cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1, lists=["egress"])
        assert client.lrange("egress", 0, -1) == [vcon_uuid.encode()]

    def test_a_delete_leaves_a_tombstone_no_late_save_or_fill_gets_past(
        self, redis_url: str, client: Any
    ) -> None:
        """A save that committed before the delete (version 6 < the delete's 7) but
        reaches Redis after it, or a read from before the delete, must not bring the
        vCon back; a save committed after the delete (8) is cached at once."""
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        assert cache.delete(vcon_uuid, 7) is True
        assert cache.delete(vcon_uuid, 7) is False
        assert client.get(cache.version_key(vcon_uuid)) == b"-7"
        assert 60 < client.ttl(cache.version_key(vcon_uuid)) <= 3600  # the TTL, not a minute
        assert cache.write(vcon_uuid, '{"v": 6}', mode="overwrite", version=6) is False
        assert cache.write(vcon_uuid, '{"v": 7}', mode="overwrite", version=7) is False
        assert cache.write(vcon_uuid, '{"v": 6}', mode="fill", version=6) is False
        assert cache.write(vcon_uuid, '{"v": 5}', mode="fill") is False
        assert client.exists(f"vcon:{vcon_uuid}") == 0
        assert cache.holds_saved(vcon_uuid) is False
        assert cache.write(vcon_uuid, '{"v": 8}', mode="overwrite", version=8) is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 8}
        assert cache.holds_saved(vcon_uuid) is True

    def test_a_late_delete_does_not_remove_a_newer_save(self, redis_url: str, client: Any) -> None:
        """The delete (version 7) reaches Redis after a save committed after it (8)."""
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 8}', mode="overwrite", version=8)
        assert cache.delete(vcon_uuid, 7) is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 8}
        assert client.get(cache.version_key(vcon_uuid)) == b"8"

    def test_a_delete_of_a_vcon_not_in_the_database_keeps_the_version_on_record(
        self, redis_url: str, client: Any
    ) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        assert cache.delete(vcon_uuid) is True
        assert client.exists(f"vcon:{vcon_uuid}") == 0
        assert client.get(cache.version_key(vcon_uuid)) == b"5"
        assert cache.write(vcon_uuid, '{"v": 4}', mode="overwrite", version=4) is False

    def test_a_fill_never_writes_while_a_version_is_on_record(
        self, redis_url: str, client: Any
    ) -> None:
        """The document was evicted but a save's version is still known: a read that may
        predate that save does not fill."""
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        client.delete(f"vcon:{vcon_uuid}")
        assert cache.write(vcon_uuid, '{"v": 4}', mode="fill") is False
        assert cache.write(vcon_uuid, '{"v": 6}', mode="overwrite", version=6) is True

    def test_a_fill_with_its_version_refills_an_evicted_key_but_not_an_older_one(
        self, redis_url: str, client: Any
    ) -> None:
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        client.delete(f"vcon:{vcon_uuid}")  # evicted; the version key stays
        assert cache.write(vcon_uuid, '{"v": 4}', mode="fill", version=4) is False
        assert cache.write(vcon_uuid, '{"v": 5}', mode="fill", version=5) is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 5}

    def test_reading_keeps_the_version_key_warm(self, redis_url: str, client: Any) -> None:
        """LRU eviction must not drop the version key, cold, before its document."""
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1)
        time.sleep(1.1)
        cache.read(f"vcon:{vcon_uuid}", vcon_uuid)
        assert client.object("idletime", cache.version_key(vcon_uuid)) == 0

    def test_only_a_saved_vcon_counts_as_held(self, redis_url: str, client: Any) -> None:
        cache = make_cache(redis_url)
        saved, filled, working, other = new_uuid(), new_uuid(), new_uuid(), new_uuid()
        cache.write(saved, DOC, mode="overwrite", version=1)
        cache.write(filled, DOC, mode="fill")
        client.set(f"vcon:{working}", DOC)  # the conserver's working copy
        client.hset(f"vcon:{other}", "a", "b")
        held = [cache.holds_saved(u) for u in (saved, filled, working, other)]
        assert held == [True, False, False, False]
        cache.delete(saved, 2)
        assert cache.holds_saved(saved) is False


def test_a_missing_permission_names_what_is_needed(redis_url: str, client: Any) -> None:
    client.acl_setuser(
        "limited",
        enabled=True,
        passwords=["+limited-pw"],
        keys=["*"],
        commands=["+@all", "-eval", "-evalsha"],
    )
    try:
        limited = redis_url.replace("redis://", "redis://limited:limited-pw@")
        with pytest.raises(CacheError, match="lacks a permission") as caught:
            make_cache(limited).read("vcon:x", "x")
        assert caught.value.unavailable is False
        assert "limited-pw" not in str(caught.value)
    finally:
        client.acl_deluser("limited")


class SlotCheckingCluster:
    """A ``RedisCluster`` to the cache (``isinstance`` says so) that sends every command
    to one real Redis, after checking what a real cluster would refuse: keys of two
    hash slots in one command (a script's KEYS included) and transactions."""

    def __new__(cls, url: str) -> Any:
        import redis
        from redis.cluster import RedisCluster, key_slot

        #: commands on one key, or on none (SCAN, SCRIPT LOAD, INFO)
        single_key = {"GET", "SET", "RPUSH", "PERSIST", "LRANGE", "LREM", "TYPE", "EXISTS",
                      "MEMORY USAGE", "JSON.GET", "JSON.SET", "EXPIRE", "SCAN", "INFO",
                      "SCRIPT LOAD", "DEL", "UNLINK"}  # fmt: skip
        server = closing_later(redis.Redis.from_url(url))
        seen: list[tuple[str, int]] = []

        def check(args: tuple[Any, ...]) -> None:
            name = str(args[0]).upper()
            if name in ("EVAL", "EVALSHA"):
                keys = args[3 : 3 + int(args[2])]
            else:
                assert name in single_key, f"{name} is not a single-key command"
                keys = args[1:2] if name not in ("SCAN", "INFO", "SCRIPT LOAD") else ()
            if name in ("DEL", "UNLINK", "EXISTS"):
                keys = args[1:]
            slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}
            assert len(slots) <= 1, f"{name} spans slots {sorted(slots)}: {keys}"
            seen.append((name, len(keys)))

        class Pipeline:
            def __init__(self) -> None:
                self.commands: list[tuple[Any, ...]] = []

            def execute_command(self, *args: Any, **kwargs: Any) -> None:
                check(args)
                self.commands.append(args)

            def execute(self, raise_on_error: bool = True) -> list[Any]:
                pipe = server.pipeline(transaction=False)
                for args in self.commands:
                    pipe.execute_command(*args)
                return list(pipe.execute(raise_on_error=raise_on_error))

        class Checking(RedisCluster):  # type: ignore[misc]
            def __init__(self) -> None:  # no cluster to discover
                self.seen = seen
                self.encoder = server.get_encoder()

            def execute_command(self, *args: Any, **kwargs: Any) -> Any:
                check(args)
                return server.execute_command(*args, **kwargs)

            def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
                assert not transaction, "a transaction spans the slots of its keys"
                return Pipeline()

            def get_encoder(self) -> Any:
                return server.get_encoder()

            def delete(self, *keys: Any) -> Any:  # redis-py splits it by slot
                return self.execute_command("DEL", *keys)

            def keyslot(self, key: str) -> int:
                return int(key_slot(key.encode()))

            def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
                seen.append(("SCAN", 0))
                return server.scan_iter(*args, **kwargs)

            def info(self, *args: Any, **kwargs: Any) -> Any:
                kwargs.pop("target_nodes", None)
                return {"node:1": server.info(*args, **kwargs)}

            def close(self) -> None:
                pass

            def __del__(self) -> None:
                pass

        return Checking()


def test_in_cluster_mode_no_command_spans_two_hash_slots(
    redis_json_url: str, database_url: str
) -> None:
    """Every storage operation, with the cache in cluster mode, on a client that fails
    any command whose keys (a script's KEYS included) map to two hash slots, and any
    transaction. A real cluster refuses them (CROSSSLOT); this catches a regression
    without one."""
    from datetime import UTC, datetime, timedelta

    from conserver_supabase import SupabaseStorage

    from .vcons import sample

    client = SlotCheckingCluster(redis_json_url)
    lists = ["slot_a", "slot_b"]
    options = {"database_url": database_url, "redis_url": redis_json_url, "chain_lists": lists}
    with SupabaseStorage(options, redis_client=client) as store:
        cache = Cache(store.config, client)
        assert cache.cluster
        assert not cache.pushes_in_write
        one, batch = sample(), [sample() for _ in range(5)]
        store.save_vcon(one)
        store.save_many(batch)
        assert store.get_vcon(one["uuid"]) == one
        client.execute_command("DEL", cache.key(one["uuid"]))
        assert store.get_vcon(one["uuid"]) == one  # a miss, filled
        assert store.exists(one["uuid"])
        assert store.get_many([d["uuid"] for d in batch]) == {d["uuid"]: d for d in batch}
        store.delete_vcon(batch[0]["uuid"])
        cache.journal(store.config.journal_list, [(one["uuid"], cache.key(one["uuid"]), None)])
        cache.journal(store.config.journal_list, [(batch[1]["uuid"], None, json.dumps(batch[1]))])
        assert store.replay_journal().replayed == 2
        known = [Entry(d["uuid"], json.dumps(d), "known", 1) for d in batch[2:]]
        assert cache.tier.fill_known(known) is not None  # a read replica's answers
        assert store.cache_usage().keys == 5
        assert store.flush_cache() == (5, 0)
        assert store.warm_cache({}) == (5, 5)
        assert store.requeue("slot_requeue", since=datetime.now(UTC) - timedelta(hours=1)) == 5
        with pytest.raises(ValueError, match="push the uuid after the write"):
            cache.write(one["uuid"], "{}", mode="overwrite", lists=lists)
    assert ("EVALSHA", 2) in client.seen  # the scripts ran, on a vCon's two keys
    server = redis_client(redis_json_url)
    assert [u.decode() for u in server.lrange("slot_a", 0, 1)] == [one["uuid"], batch[0]["uuid"]]
