"""The hot tier's behaviour, one suite for the unit suite's fake Redis and for real Redis
(with and without RedisJSON): modes, chain lists, reads, deletes and the version rule.

A test module runs it by importing these classes and defining the ``redis_kind``
fixture (a :class:`~tests.support.redis_kinds.RedisUnderTest`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conserver_supabase import CacheError

from ..support.redis_kinds import RedisUnderTest
from ..support.vcons import new_uuid

DOC = json.dumps({"vcon": "0.3.0", "uuid": "x", "subject": "ünïcode ✓"}, ensure_ascii=False)


@pytest.fixture
def client(redis_kind: RedisUnderTest) -> Any:
    """A raw client of the Redis under test, for the assertions."""
    return redis_kind.client


def kind(client: Any, key: str) -> str:
    return str(client.type(key).decode())


class TestNewKeyFormat:
    def test_auto_writes_redisjson_when_the_module_is_there_else_a_string(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache(cache_ttl=120)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="overwrite") is True
        expected = "ReJSON-RL" if redis_kind.has_json else "string"
        assert kind(client, f"vcon:{vcon_uuid}") == expected
        assert 115 <= client.ttl(f"vcon:{vcon_uuid}") <= 120
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)
        assert cache.has_json_module() is redis_kind.has_json


class TestKeysOfOtherTypes:
    def test_a_key_of_another_type_is_refused_untouched(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        vcon_uuid = new_uuid()
        client.hset(f"vcon:{vcon_uuid}", "field", "value")
        with pytest.raises(CacheError, match="WRONGTYPE") as caught:
            redis_kind.cache().write(vcon_uuid, DOC, mode="overwrite")
        assert "cache_key_prefix" in str(caught.value)  # the hint says what to change
        assert client.hgetall(f"vcon:{vcon_uuid}") == {b"field": b"value"}
        assert client.ttl(f"vcon:{vcon_uuid}") == -1


class TestModes:
    def test_fill_never_overwrites_and_leaves_the_ttl(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache(cache_ttl=100)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"newer": 1}', mode="overwrite")
        client.expire(f"vcon:{vcon_uuid}", 50)
        assert cache.write(vcon_uuid, '{"older": 1}', mode="fill") is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"newer": 1}
        assert client.ttl(f"vcon:{vcon_uuid}") <= 50

    def test_fill_writes_an_absent_key_with_the_ttl(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache(cache_ttl=100)
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="fill") is True
        assert 95 <= client.ttl(f"vcon:{vcon_uuid}") <= 100

    def test_touch_renews_the_ttl_without_rewriting(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache(cache_ttl=100)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"current": 1}', mode="overwrite")
        client.persist(f"vcon:{vcon_uuid}")
        assert cache.write(vcon_uuid, '{"stale": 1}', mode="touch") is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"current": 1}
        assert 95 <= client.ttl(f"vcon:{vcon_uuid}") <= 100

    def test_touch_writes_when_the_key_vanished(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, DOC, mode="touch") is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)


class TestTouch:
    """The save hook's touch: never its version on a body it did not save."""

    def test_the_text_read_is_renewed_and_stamped(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache(cache_ttl=100)
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite", version=1)
        client.persist(f"vcon:{vcon_uuid}")
        text, version = cache.read_versioned(vcon_uuid)
        assert version == 1
        assert cache.write(vcon_uuid, text, mode="touch", version=2, read_version=1) is False
        assert cache.recorded(vcon_uuid) == 2
        assert 95 <= client.ttl(f"vcon:{vcon_uuid}") <= 100

    def test_a_body_a_save_wrote_after_the_read_is_replaced(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite", version=1)
        text, version = cache.read_versioned(vcon_uuid)
        cache.write(vcon_uuid, '{"older": 2}', mode="overwrite", version=2)  # landed late
        assert cache.write(vcon_uuid, text, mode="touch", version=3, read_version=version)
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)
        assert cache.recorded(vcon_uuid) == 3

    def test_a_links_write_after_the_read_is_kept_and_not_stamped(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite", version=1)
        text, version = cache.read_versioned(vcon_uuid)
        newer = {"newer": "not saved yet"}  # a link writes the working copy
        if redis_kind.has_json:
            client.json().set(f"vcon:{vcon_uuid}", "$", newer)
        else:
            client.set(f"vcon:{vcon_uuid}", json.dumps(newer))
        assert not cache.write(vcon_uuid, text, mode="touch", version=2, read_version=version)
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == newer
        assert cache.recorded(vcon_uuid) == -2  # nothing at or below 2 may land on it
        assert cache.write(vcon_uuid, '{"late": 2}', mode="overwrite", version=2) is False
        assert cache.write(vcon_uuid, '{"next": 3}', mode="overwrite", version=3) is True

    def test_what_was_read_goes_when_a_newer_version_is_recorded_apart(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        """-n on record (a later save found a link's copy here): the key no longer holds
        the database's vCon, and this save's body is older: removed."""
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite", version=1)
        text, version = cache.read_versioned(vcon_uuid)
        client.set(cache.version_key(vcon_uuid), -3)
        assert not cache.write(vcon_uuid, text, mode="touch", version=2, read_version=version)
        assert client.exists(f"vcon:{vcon_uuid}") == 0
        assert cache.recorded(vcon_uuid) == -3

    def test_a_late_cache_write_of_a_version_on_record_leaves_the_key(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        """A read filled version 2 before the save of version 2 reached Redis, a link
        wrote over it, the hook read that: the save's late write must not replace it
        (the hook's touch would take its body for a link's and keep it)."""
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, '{"filled": 2}', mode="fill", version=2)
        client.set(f"vcon:{vcon_uuid}", '{"link": "newer"}')
        assert cache.write(vcon_uuid, '{"filled": 2}', mode="overwrite", version=2) is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"link": "newer"}
        assert cache.write(vcon_uuid, '{"saved": 3}', mode="overwrite", version=3) is True

    def test_a_newer_save_keeps_its_body_when_it_wrote_the_same_text(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite", version=1)
        text, version = cache.read_versioned(vcon_uuid)
        cache.write(vcon_uuid, text, mode="touch", version=3, read_version=version)
        assert not cache.write(vcon_uuid, text, mode="touch", version=2, read_version=version)
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == json.loads(DOC)
        assert cache.recorded(vcon_uuid) == 3


class TestChainLists:
    def test_uuids_reach_every_list_in_fifo_order(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        first, second = new_uuid(), new_uuid()
        cache.write(first, DOC, mode="overwrite", lists=["ingress_a", "ingress_b"])
        cache.write(second, DOC, mode="fill", lists=["ingress_a", "ingress_b"])
        for name in ("ingress_a", "ingress_b"):  # the conserver pops with BLPOP
            assert client.lpop(name).decode() == first
            assert client.lpop(name).decode() == second

    def test_a_wrong_type_list_fails_before_anything_is_written(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        client.set("broken", "not a list")
        vcon_uuid = new_uuid()
        with pytest.raises(CacheError, match="WRONGTYPE chain list broken"):
            redis_kind.cache().write(vcon_uuid, DOC, mode="overwrite", lists=["good", "broken"])
        assert client.exists(f"vcon:{vcon_uuid}", "good") == 0

    def test_push_reports_each_failed_list(self, redis_kind: RedisUnderTest, client: Any) -> None:
        client.set("broken", "not a list")
        vcon_uuid = new_uuid()
        failed = redis_kind.cache().push(vcon_uuid, ["good", "broken"])
        assert list(failed) == ["broken"]
        assert "WRONGTYPE" in failed["broken"]
        assert client.lrange("good", 0, -1) == [vcon_uuid.encode()]


class TestReadsAndDeletes:
    def test_a_value_that_is_not_json_is_a_cache_error(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        client.set("vcon:garbage", "{not json")
        with pytest.raises(CacheError, match="vcon:garbage does not hold JSON"):
            redis_kind.cache().read("vcon:garbage", "garbage")

    def test_delete_says_whether_the_key_existed(self, redis_kind: RedisUnderTest) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, DOC, mode="overwrite")
        assert cache.delete(vcon_uuid) is True
        assert cache.delete(vcon_uuid) is False


class TestVersionRule:
    def test_an_older_save_never_replaces_a_newer_one(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        assert cache.write(vcon_uuid, '{"v": 2}', mode="overwrite", version=2) is True
        assert cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1) is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 2}
        assert cache.write(vcon_uuid, '{"v": 3}', mode="overwrite", version=3) is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 3}
        assert client.ttl(cache.version_key(vcon_uuid)) > 0
        assert client.keys("vcon:*") == [f"vcon:{vcon_uuid}".encode()]  # nothing else there

    def test_a_stale_save_still_reaches_the_chain_lists(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 2}', mode="overwrite", version=2)
        cache.write(vcon_uuid, '{"v": 1}', mode="overwrite", version=1, lists=["egress"])
        assert client.lrange("egress", 0, -1) == [vcon_uuid.encode()]

    def test_a_delete_leaves_a_tombstone_no_late_save_or_fill_gets_past(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        """A save that committed before the delete (version 6 < the delete's 7) but
        reaches Redis after it, or a read from before the delete, must not bring the
        vCon back; a save committed after the delete (8) is cached at once."""
        cache = redis_kind.cache()
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

    def test_a_late_delete_does_not_remove_a_newer_save(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        """The delete (version 7) reaches Redis after a save committed after it (8)."""
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 8}', mode="overwrite", version=8)
        assert cache.delete(vcon_uuid, 7) is False
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 8}
        assert client.get(cache.version_key(vcon_uuid)) == b"8"

    def test_a_delete_of_a_vcon_not_in_the_database_keeps_the_version_on_record(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        assert cache.delete(vcon_uuid) is True
        assert client.exists(f"vcon:{vcon_uuid}") == 0
        assert client.get(cache.version_key(vcon_uuid)) == b"5"
        assert cache.write(vcon_uuid, '{"v": 4}', mode="overwrite", version=4) is False

    def test_a_fill_never_writes_while_a_version_is_on_record(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        """The document was evicted but a save's version is still known: a read that may
        predate that save does not fill."""
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        client.delete(f"vcon:{vcon_uuid}")
        assert cache.write(vcon_uuid, '{"v": 4}', mode="fill") is False
        assert cache.write(vcon_uuid, '{"v": 6}', mode="overwrite", version=6) is True

    def test_a_fill_with_its_version_refills_an_evicted_key_but_not_an_older_one(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        vcon_uuid = new_uuid()
        cache.write(vcon_uuid, '{"v": 5}', mode="overwrite", version=5)
        client.delete(f"vcon:{vcon_uuid}")  # evicted; the version key stays
        assert cache.write(vcon_uuid, '{"v": 4}', mode="fill", version=4) is False
        assert cache.write(vcon_uuid, '{"v": 5}', mode="fill", version=5) is True
        assert cache.read(f"vcon:{vcon_uuid}", vcon_uuid) == {"v": 5}

    def test_only_a_saved_vcon_counts_as_held(
        self, redis_kind: RedisUnderTest, client: Any
    ) -> None:
        cache = redis_kind.cache()
        saved, filled, working, other = new_uuid(), new_uuid(), new_uuid(), new_uuid()
        cache.write(saved, DOC, mode="overwrite", version=1)
        cache.write(filled, DOC, mode="fill")
        client.set(f"vcon:{working}", DOC)  # the conserver's working copy
        client.hset(f"vcon:{other}", "a", "b")
        held = [cache.holds_saved(u) for u in (saved, filled, working, other)]
        assert held == [True, False, False, False]
        cache.delete(saved, 2)
        assert cache.holds_saved(saved) is False
