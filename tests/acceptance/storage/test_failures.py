"""SupabaseStorage against a real PostgreSQL and real Redis when something fails: chain
pushes, Redis down or faulty, concurrent saves, batches the database refuses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from conserver_supabase import (
    CacheError,
    ChainPushError,
)
from conserver_supabase._database import Tenant

from ...support.counting import CountingDatabase, cached, storage, stored
from ...support.faults import FaultServer
from ...support.vcons import sample

pytestmark = pytest.mark.integration


class TestChainPushFailures:
    def test_a_broken_list_is_named_and_the_others_still_get_the_uuid(
        self, db: CountingDatabase, redis_url: str, r: Any, database_url: str
    ) -> None:
        r.set("broken", "someone else's string")
        document = sample()
        with (
            storage(db, redis_url, chain_lists=["egress", "broken"]) as store,
            pytest.raises(ChainPushError) as caught,
        ):
            store.save_vcon(document)
        assert caught.value.vcon_uuid == document["uuid"]
        assert caught.value.lists == ("broken",)
        assert "WRONGTYPE" in caught.value.reason
        assert stored(database_url, document["uuid"]) == document  # committed
        assert cached(r, document["uuid"]) == document
        assert r.lrange("egress", 0, -1) == [document["uuid"].encode()]

    def test_redis_down_with_chain_lists_is_an_error_after_the_commit(
        self, db: CountingDatabase, unreachable_redis_url: str, database_url: str
    ) -> None:
        document = sample()
        with (
            storage(db, unreachable_redis_url, chain_lists=["egress", "audit"]) as store,
            pytest.raises(ChainPushError) as caught,
        ):
            store.save_vcon(document)
        assert caught.value.lists == ("egress", "audit")
        assert "unavailable" in caught.value.reason
        assert stored(database_url, document["uuid"]) == document


class TestRedisDown:
    def test_saves_and_gets_go_on_and_the_incident_is_logged_once(
        self,
        db: CountingDatabase,
        unreachable_redis_url: str,
        database_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        documents = [sample() for _ in range(3)]
        caplog.set_level(logging.DEBUG, logger="conserver_supabase")
        with storage(db, unreachable_redis_url, redis_cooldown=0) as store:
            for document in documents:
                assert store.save_vcon(document) == 1
                assert store.get_vcon(document["uuid"]) == document
                assert store.delete_vcon(document["uuid"]) is True
        ours = [rec for rec in caplog.records if rec.name == "conserver_supabase.redis"]
        warnings = [rec for rec in ours if rec.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "is unavailable" in warnings[0].getMessage()
        assert "version 1" in warnings[0].getMessage()
        # save, fill, delete per vCon (the read does not ask Redis for an entry whose
        # write failed: it may be stale), the rest at DEBUG
        assert len(ours) == 3 * 3

    def test_the_end_of_an_incident_is_logged_once(
        self, db: CountingDatabase, redis_url: str, r: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        broken, healthy = sample(), sample()
        r.hset(f"vcon:{broken['uuid']}", "not", "a vcon")  # Redis answers with an error
        caplog.set_level(logging.INFO, logger="conserver_supabase")
        with storage(db, redis_url) as store:
            store.save_vcon(broken)
            store.save_vcon(broken)
            store.save_vcon(healthy)
            store.save_vcon(healthy)
        levels = [(rec.levelname, rec.getMessage()) for rec in caplog.records]
        assert [level for level, _ in levels] == ["WARNING", "INFO"]
        assert "WRONGTYPE" in levels[0][1]
        assert "after 2 failed cache operation(s)" in levels[1][1]

    def test_cache_errors_raise_says_the_database_has_it(
        self, db: CountingDatabase, unreachable_redis_url: str, database_url: str
    ) -> None:
        document = sample()
        with storage(db, unreachable_redis_url, cache_errors="raise") as store:
            with pytest.raises(CacheError, match=r"saved in the database \(version 1\)") as caught:
                store.save_vcon(document)
            assert caught.value.unavailable is True
            assert stored(database_url, document["uuid"]) == document
            # The read goes to the database (the entry may be stale); its fill fails.
            with pytest.raises(CacheError, match=r"cache overwrite .* read from the database"):
                store.get_vcon(document["uuid"])


class TestConcurrentSaves:
    def test_the_cache_keeps_the_last_commit_whatever_order_redis_sees(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        """Save A commits version 1, save B commits version 2 and reaches Redis first."""
        older = sample()
        newer = {**older, "subject": "the later save"}
        store = storage(db, redis_url)
        a_committed, b_cached = threading.Event(), threading.Event()
        inner_save = db.save

        def save(
            documents: Sequence[Mapping[str, Any]],
            tenants: Sequence[Tenant] | None,
            bases: Sequence[int | None] | None = None,
            texts: Sequence[str] | None = None,
        ) -> dict[str, int]:
            versions = inner_save(documents, tenants, bases, texts)
            if documents[0] is older:
                a_committed.set()
                assert b_cached.wait(10)  # hold A's cache write until B's is done
            return versions

        db.save = save  # type: ignore[method-assign]
        thread = threading.Thread(target=store.save_vcon, args=(older,))
        thread.start()
        assert a_committed.wait(10)
        assert store.save_vcon(newer) == 2
        b_cached.set()
        thread.join(10)
        assert cached(r, older["uuid"]) == newer
        assert store.get_vcon(older["uuid"]) == newer
        store.close()


class TestSaveManyFailures:
    def test_a_broken_list_holds_back_no_other_vcon(
        self, db: CountingDatabase, redis_url: str, r: Any
    ) -> None:
        documents = [sample() for _ in range(3)]
        r.set("broken", "x")
        with (
            storage(db, redis_url, chain_lists=["egress", "broken"]) as store,
            pytest.raises(ChainPushError) as caught,
        ):
            store.save_many(documents)
        uuids = [d["uuid"] for d in documents]
        assert caught.value.vcon_uuids == tuple(uuids)
        assert caught.value.lists == ("broken",)
        assert "3 vCons" in str(caught.value)
        for document in documents:
            assert cached(r, document["uuid"]) == document
        assert r.lrange("egress", 0, -1) == [u.encode() for u in uuids]


class TestFaultyRedis:
    def test_a_silent_redis_stops_being_called_once_the_circuit_opens(
        self, db: CountingDatabase
    ) -> None:
        """Three timeouts open the circuit: later calls do not wait on redis_timeout."""
        document = sample()
        with (
            FaultServer("silent") as server,
            storage(db, server.url, redis_timeout=0.2, redis_cooldown=30) as store,
        ):
            store.save_vcon(document)  # cache write times out (1)
            store.get_vcon(document["uuid"])  # fill (2): the entry may be stale, not read
            store.get_vcon(document["uuid"])  # fill (3): the circuit opens
            connections = server.connections
            started = time.monotonic()
            for _ in range(10):
                assert store.get_vcon(document["uuid"]) == document
            assert server.connections == connections
            assert time.monotonic() - started < 10 * 0.2  # not one of them waited a timeout

    @pytest.mark.parametrize("behaviour", ["silent", "closing"])
    def test_reads_fall_back_and_saves_commit(
        self, behaviour: str, db: CountingDatabase, database_url: str
    ) -> None:
        document = sample()
        with FaultServer(behaviour) as server, storage(db, server.url, redis_timeout=0.2) as store:
            assert store.save_vcon(document) == 1
            assert store.get_vcon(document["uuid"]) == document
        assert stored(database_url, document["uuid"]) == document
