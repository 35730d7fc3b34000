"""The Redis hot tier against real Redis servers, with and without RedisJSON: the shared
behaviour suite (tests/behaviour/cache.py, also run on the unit suite's fake) and what
only a real server shows (RedisJSON keys, timeouts, permissions, LRU, hash slots)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conserver_supabase import CacheError
from conserver_supabase._redis._cache import LEFT, WRITTEN, Entry
from conserver_supabase._redis._journal import JournalEntry

from ..behaviour.cache import (  # the shared suite, run here on real Redis
    TestChainLists,
    TestKeysOfOtherTypes,
    TestModes,
    TestNewKeyFormat,
    TestReadsAndDeletes,
    TestTouch,
    TestVersionRule,
    client,
)
from ..support.cache_api import Cache
from ..support.faults import FaultServer
from ..support.redis_kinds import RedisUnderTest, real
from ..support.services import closing_later, redis_client
from ..support.vcons import new_uuid

pytestmark = pytest.mark.integration
# The shared suite's classes and fixture, collected in this module.
__all__ = [
    "TestChainLists",
    "TestKeysOfOtherTypes",
    "TestModes",
    "TestNewKeyFormat",
    "TestReadsAndDeletes",
    "TestTouch",
    "TestVersionRule",
    "client",
]
DOC = json.dumps({"vcon": "0.3.0", "uuid": "x", "subject": "ünïcode ✓"}, ensure_ascii=False)


@pytest.fixture
def redis_kind(redis_url: str, _redis_servers: dict[str, str]) -> RedisUnderTest:
    """The real Redis of ``redis_url`` for the shared suite (tests/behaviour/cache.py)."""
    kind = next(name for name, url in _redis_servers.items() if url == redis_url)
    return real(kind, redis_url)


def make_cache(url: str, **options: Any) -> Cache:
    cache = Cache.from_options({"redis_url": url, **options})
    return closing_later(cache)


def kind(client: Any, key: str) -> str:
    return str(client.type(key).decode())


class TestNewKeys:
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


class TestExistingKeys:
    def test_a_string_key_becomes_redisjson_on_a_json_server(self, redis_json_url: str) -> None:
        """vcon-mcp's SETEX string at vcon:{uuid}: the conserver's JSON.GET works again."""
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        client.set(f"vcon:{vcon_uuid}", '{"old": true}', ex=3600)
        make_cache(redis_json_url, cache_ttl=120).write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"vcon:{vcon_uuid}") == "ReJSON-RL"
        assert client.json().get(f"vcon:{vcon_uuid}") == json.loads(DOC)
        assert 115 <= client.ttl(f"vcon:{vcon_uuid}") <= 120

    def test_a_string_key_stays_a_string_without_the_module(self, redis_plain_url: str) -> None:
        client = redis_client(redis_plain_url)
        vcon_uuid = new_uuid()
        client.set(f"vcon:{vcon_uuid}", '{"old": true}')
        make_cache(redis_plain_url).write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"vcon:{vcon_uuid}") == "string"
        assert json.loads(client.get(f"vcon:{vcon_uuid}")) == json.loads(DOC)

    def test_a_string_key_stays_a_string_when_string_is_forced(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        client.set(f"app:{vcon_uuid}", '{"old": true}')
        cache = make_cache(redis_json_url, cache_format="string", cache_key_prefix="app:")
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"app:{vcon_uuid}") == "string"
        assert json.loads(client.get(f"app:{vcon_uuid}")) == json.loads(DOC)

    def test_a_json_key_stays_json_when_string_is_forced(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        client.json().set(f"app:{vcon_uuid}", "$", {"old": True})
        cache = make_cache(redis_json_url, cache_format="string", cache_key_prefix="app:")
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert kind(client, f"app:{vcon_uuid}") == "ReJSON-RL"
        assert client.json().get(f"app:{vcon_uuid}") == json.loads(DOC)


class TestReadAndDelete:
    def test_read_either_type_and_absent(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        cache = make_cache(redis_json_url)
        client.json().set("vcon:j", "$", {"a": [1, "ü"]})
        client.set("vcon:s", '{"b": null}')
        assert cache.read("vcon:j", "j") == {"a": [1, "ü"]}
        assert cache.read("vcon:s", "s") == {"b": None}
        assert cache.read("vcon:none", "none") is None


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
    def test_reading_keeps_the_version_key_warm(self, redis_url: str, client: Any) -> None:
        """LRU eviction must not drop the version key, cold, before its document."""
        cache = make_cache(redis_url)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1)
        time.sleep(1.1)
        cache.read(f"vcon:{vcon_uuid}", vcon_uuid)
        assert client.object("idletime", cache.version_key(vcon_uuid)) == 0


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
        # a write runs a script (a hit does not: plain commands, issue 18)
        with pytest.raises(CacheError, match="lacks a permission") as caught:
            make_cache(limited).write("x", '{"v": 1}', mode="overwrite", version=1)
        assert caught.value.unavailable is False
        assert "limited-pw" not in str(caught.value)
    finally:
        client.acl_deluser("limited")


#: Commands on one key, or on none (SCAN, SCRIPT LOAD, INFO).
_SINGLE_KEY = {"GET", "SET", "RPUSH", "LLEN", "TTL", "STRLEN", "LRANGE", "LREM", "TYPE", "EXISTS",
               "MEMORY USAGE", "JSON.GET", "JSON.SET", "EXPIRE", "SCAN", "INFO",
               "SCRIPT LOAD", "DEL", "UNLINK"}  # fmt: skip


def _check_slots(args: tuple[Any, ...], seen: list[tuple[str, int]]) -> None:
    """Fail a command a real cluster refuses: keys of two hash slots."""
    from redis.cluster import key_slot  # type: ignore[attr-defined]

    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        keys = args[3 : 3 + int(args[2])]
    elif name in ("DEL", "UNLINK", "EXISTS", "MGET"):
        keys = args[1:]
    else:
        assert name in _SINGLE_KEY, f"{name} is not a single-key command"
        keys = args[1:2] if name not in ("SCAN", "INFO", "SCRIPT LOAD") else ()
    slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}
    assert len(slots) <= 1, f"{name} spans slots {sorted(slots)}: {keys}"
    seen.append((name, len(keys)))


class _SlotCheckingPipeline:
    def __init__(self, server: Any, seen: list[tuple[str, int]]) -> None:
        self.server, self.seen = server, seen
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> None:
        _check_slots(args, self.seen)
        self.commands.append(args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        pipe = self.server.pipeline(transaction=False)
        for args in self.commands:
            pipe.execute_command(*args)
        return list(pipe.execute(raise_on_error=raise_on_error))


class SlotCheckingCluster:
    """A ``RedisCluster`` to the cache (``isinstance`` says so) that sends every command
    to one real Redis, after checking what a real cluster would refuse: keys of two
    hash slots in one command (a script's KEYS included) and transactions."""

    def __new__(cls, url: str) -> Any:
        import redis
        from redis.cluster import RedisCluster, key_slot  # type: ignore[attr-defined]

        server = closing_later(redis.Redis.from_url(url))
        seen: list[tuple[str, int]] = []

        class Checking(RedisCluster):
            def __init__(self) -> None:  # no cluster to discover
                self.seen = seen
                self.encoder = server.get_encoder()

            def execute_command(self, *args: Any, **kwargs: Any) -> Any:
                _check_slots(args, seen)
                return server.execute_command(*args, **kwargs)

            def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
                assert not transaction, "a transaction spans the slots of its keys"
                return _SlotCheckingPipeline(server, seen)

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

    from ..support.vcons import sample

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
        journal = store.config.journal_list
        cache.journal(journal, [JournalEntry(one["uuid"], cache.key(one["uuid"]), None)])
        cache.journal(journal, [JournalEntry(batch[1]["uuid"], None, json.dumps(batch[1]))])
        assert store.replay_journal().replayed == 2
        client.execute_command("DEL", cache.key(batch[2]["uuid"]))
        known = [Entry(d["uuid"], json.dumps(d), "known", 1) for d in batch[2:]]
        # a read replica's answers: the evicted one written back, the cached ones left
        assert cache.tier.fill_known(known) == [WRITTEN, LEFT, LEFT]
        assert store.cache_usage().keys == 5
        assert store.flush_cache() == (5, 0)
        assert store.warm_cache({}) == (5, 5)
        assert store.requeue("slot_requeue", since=datetime.now(UTC) - timedelta(hours=1)) == 5
        with pytest.raises(ValueError, match="push the uuid after the write"):
            cache.write(one["uuid"], "{}", mode="overwrite", lists=lists)
    assert ("EVALSHA", 2) in client.seen  # the scripts ran, on a vCon's two keys
    server = redis_client(redis_json_url)
    assert [u.decode() for u in server.lrange("slot_a", 0, 1)] == [one["uuid"], batch[0]["uuid"]]


class TestPlainHits:
    """A cache hit is one round trip of plain commands (``JSON.GET`` or ``GET``, and
    ``MGET`` of the version and head keys), not a script (issue 18)."""

    def test_a_hit_needs_no_script(self, redis_json_url: str) -> None:
        client = redis_client(redis_json_url)
        vcon_uuid = new_uuid()
        make_cache(redis_json_url).write(vcon_uuid, DOC, mode="overwrite", version=1)
        client.acl_setuser(
            "noscripts", enabled=True, passwords=["+noscripts-pw"], keys=["*"],
            commands=["+@all", "-eval", "-evalsha"],
        )  # fmt: skip
        try:
            limited = make_cache(
                redis_json_url.replace("redis://", "redis://noscripts:noscripts-pw@")
            )
            assert limited.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)
            client.set(limited.hot.head_key(vcon_uuid), 2)  # the database changed it since
            assert limited.read(f"vcon:{vcon_uuid}", vcon_uuid) is None
        finally:
            client.acl_deluser("noscripts")

    def test_replies_stay_in_step_after_an_error_reply(self, redis_json_url: str) -> None:
        """A key of the other type answers the first command with an error: its second
        reply is still read, so the next call on the same connection gets its own."""
        cache, client = make_cache(redis_json_url), redis_client(redis_json_url)
        as_json, as_string = new_uuid(), new_uuid()
        cache.write(as_json, json.dumps({"uuid": as_json}), mode="overwrite", version=1)
        client.set(f"vcon:{as_string}", json.dumps({"uuid": as_string}))
        for _ in range(3):
            for vcon_uuid in (as_string, as_json):
                assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"uuid": vcon_uuid}
        assert cache.read(f"vcon:{new_uuid()}", "absent") is None
