"""Redis Cluster: URL parsing, and the storage on a real local cluster (three masters
with a replica each), through a resharding and a master failover under load."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conserver_supabase import (
    DatabaseUnavailableError,
    SupabaseStorage,
)
from conserver_supabase._backfill import RedisSource, run_backfill
from conserver_supabase._errors import ConserverSupabaseError

from ..support.cluster_deployment import ClusterDeployment
from ..support.postgrest_standin import PostgrestStandIn
from ..support.sentinel_deployment import save_through_failover
from ..support.vcons import sample

# Redis deployments: the PostgreSQL version does not matter here.
pytestmark = pytest.mark.one_database


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterDeployment]:
    """One cluster for the tests that leave it whole (the failover test makes its own)."""
    with ClusterDeployment() as running:
        yield running


def options(cluster: ClusterDeployment, database_url: str, **more: Any) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "redis_url": cluster.url,
        "redis_timeout": 1.0,
        "cache_errors": "raise",
        "cache_ttl": 300,
        **more,
    }


def in_database(database_url: str, vcon_uuid: str) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()[0]


@pytest.mark.integration
def test_the_storage_works_on_a_cluster(cluster: ClusterDeployment, database_url: str) -> None:
    """Saves cache the vCon as RedisJSON at vcon:{uuid} (what the conserver reads) and
    push it after; save_many, reads (hit, miss and fill), the version guard, deletes
    with their tombstone, requeue and the cache commands all work with every key on
    whichever master its slot is."""
    rc = cluster.cluster()
    lists = ["cluster_ingress", "cluster_audit"]
    with SupabaseStorage(options(cluster, database_url, chain_lists=lists)) as store:
        assert store._redis._connection.cluster
        assert not store._redis._cache.pushes_in_write
        one = sample()
        assert store.save_vcon(one) == 1
        key = f"vcon:{one['uuid']}"
        assert rc.json().get(key) == one  # JSON.GET, as the conserver reads it
        assert rc.get(store._redis._cache.version_key(one["uuid"])) == b"1"
        assert cluster.slot(key) == cluster.slot(store._redis._cache.version_key(one["uuid"]))
        batch = [sample() for _ in range(30)]
        versions = store.save_many(batch)
        assert set(versions.values()) == {1}
        uuids = [one["uuid"]] + [d["uuid"] for d in batch]
        for name in lists:
            assert [u.decode() for u in rc.lrange(name, 0, -1)] == uuids
        assert {cluster.owner(f"vcon:{u}") for u in uuids} == set(cluster.masters)
        assert all(rc.json().get(f"vcon:{d['uuid']}") == d for d in batch)

        assert store.get_vcon(one["uuid"]) == one  # a hit
        rc.delete(key)  # evicted: a miss reads the database and fills
        assert store.get_vcon(one["uuid"]) == one
        assert rc.json().get(key) == one
        assert store.get_many([d["uuid"] for d in batch[:5]]) == {d["uuid"]: d for d in batch[:5]}

        changed = {**one, "subject": "second version"}
        assert store.save_vcon(changed) == 2
        assert rc.json().get(key)["subject"] == "second version"
        assert store.delete_vcon(one["uuid"]) is True
        assert rc.exists(key) == 0
        assert rc.get(store._redis._cache.version_key(one["uuid"])) == b"-3"  # the tombstone
        assert store.get_vcon(one["uuid"]) is None

        usage = store.cache_usage()
        assert (usage.keys, usage.saved) == (30, 30)
        assert usage.server_memory_bytes > 0
        assert usage.server_hits > 0
        working = sample()
        rc.json().set(f"vcon:{working['uuid']}", "$", working)  # not saved: kept by flush
        assert store.flush_cache() == (30, 1)
        assert rc.exists(*[f"vcon:{d['uuid']}" for d in batch]) == 0
        assert store.warm_cache({}) == (30, 30)
        assert all(rc.json().get(f"vcon:{d['uuid']}") == d for d in batch)
        assert store.save_working_copy(working["uuid"]) == 1  # the conserver's save

        since = store_moment(database_url)
        assert store.requeue("cluster_requeue", since=since) == 30 + 1
        assert len(rc.lrange("cluster_requeue", 0, -1)) == 31


def store_moment(database_url: str) -> Any:
    """A moment before every save of this test's database."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT now() - interval '1 hour'").fetchone()[0]


@pytest.mark.integration
def test_the_journal_works_on_a_cluster(cluster: ClusterDeployment, database_url: str) -> None:
    """With the database down, a save is journaled (document, then the list entry: no
    transaction spans their slots) and a conserver's working copy loses its TTL; the
    replay saves both once the database is back."""
    rc = cluster.cluster()
    journal = "cluster_journal"
    handed, working = sample(), sample()
    working_key = f"vcon:{working['uuid']}"
    rc.json().set(working_key, "$", working)
    rc.expire(working_key, 60)
    with PostgrestStandIn(database_url, key="k") as server:
        server.faults = ["503"] * 1000
        config = {
            "url": server.url,
            "key": "k",
            "redis_url": cluster.url,
            "journal_list": journal,
            "retry_deadline": 0.2,
            "cache_ttl": 300,
        }
        with SupabaseStorage(config) as store:
            for save in (
                lambda: store.save_vcon(handed),
                lambda: store.save_working_copy(working["uuid"]),
            ):
                with pytest.raises(DatabaseUnavailableError) as caught:
                    save()
                assert caught.value.journaled is True, caught.value
            assert rc.lrange(journal, 0, -1) == [handed["uuid"].encode(), working["uuid"].encode()]
            assert json.loads(rc.get(f"{journal}:vcon:{handed['uuid']}")) == handed
            assert rc.ttl(working_key) > 300  # kept for the retention
            server.faults = []
            report = store.replay_journal()
            assert (report.total, report.replayed, report.error) == (2, 2, None)
    assert in_database(database_url, handed["uuid"]) == handed
    assert in_database(database_url, working["uuid"]) == working
    assert rc.llen(journal) == 0
    assert 0 < rc.ttl(working_key) <= 300


@pytest.mark.integration
def test_a_slot_moves_while_reads_and_writes_run(
    cluster: ClusterDeployment, database_url: str
) -> None:
    """The slot of a cached vCon (its cache key, its version key and some neighbours)
    moves to another master, a few keys at a time (redis-cli's reshard), while a
    thread reads and saves that vCon. redis-py follows ASK and MOVED, a script whose
    two keys are briefly on two nodes is retried (TRYAGAIN): no call fails, every read
    is a cache hit, and the cache ends on the new master at the last saved version."""
    rc = cluster.cluster()
    with SupabaseStorage(options(cluster, database_url)) as store:
        document = sample()
        store.save_vcon(document)
        key = f"vcon:{document['uuid']}"
        for number in range(6):  # neighbours in the slot: the move takes several batches
            rc.set(f"{{{key}}}:neighbour:{number}", number)
        source = cluster.owner(key)
        target = next(p for p in cluster.masters if p != source)
        stop = threading.Event()
        failures: list[BaseException] = []
        counts = {"reads": 0, "misses": 0, "saves": 0}

        def work() -> None:
            while not stop.is_set():
                try:
                    cached = store._redis._cache.read(key, document["uuid"])
                    counts["reads"] += 1
                    counts["misses"] += cached is None
                    store.save_vcon({**document, "subject": f"save {counts['saves']}"})
                    counts["saves"] += 1
                except Exception as exc:  # every failure is reported
                    failures.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        try:
            time.sleep(0.2)
            moved = cluster.move_slot(cluster.slot(key), target, lambda: time.sleep(0.05))
            time.sleep(0.2)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert failures == [], [repr(f) for f in failures[:3]]
        assert moved == 8  # the vCon, its version key, six neighbours
        assert cluster.owner(key) == target
        assert counts["saves"] > 5, counts
        assert counts["misses"] == 0, counts
        last = counts["saves"]
        assert cluster.node(target).execute_command("JSON.GET", key) is not None
        assert json.loads(cluster.node(target).execute_command("JSON.GET", key))["subject"] == (
            f"save {last - 1}"
        )
        assert int(rc.get(store._redis._cache.version_key(document["uuid"]))) == last + 1


@pytest.mark.integration
def test_a_master_killed_under_load_fails_over_without_losing_a_save(database_url: str) -> None:
    """Saves run in two threads; the master serving the chain list (and a third of the
    cache keys) is SIGKILLed. Calls in the failover wait for its replica to take over
    (redis_failover_timeout) instead of failing: every save succeeds, every uuid is in
    the database, cached, and on the chain list, and the slowest save is bounded by
    the failover timeout."""
    with ClusterDeployment() as cluster:
        config = options(
            cluster,
            database_url,
            redis_timeout=0.5,
            redis_failover_timeout=8.0,
            redis_cooldown=1.0,
            chain_lists=["cluster_failover"],
        )
        run = save_through_failover(cluster, config)
        assert run.failures == [], [repr(f) for f in run.failures[:3]]
        assert run.saves_before_kill > 0
        assert len(run.saved) > run.saves_before_kill + 5, (run.saves_before_kill, len(run.saved))
        assert run.slowest_save < config["redis_failover_timeout"], run
        missing = [u for u in run.saved if u not in run.pushed]
        assert missing == [], f"{len(missing)} of {len(run.saved)} saved uuids not on the list"
        assert run.cached == set(run.saved)
        with psycopg.connect(database_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[])",
                [run.saved],
            ).fetchone()
        assert stored == (len(run.saved),)


@pytest.mark.integration
def test_a_backfill_from_redis_keys_scans_every_primary_and_resumes(
    cluster: ClusterDeployment, database_url: str, tmp_path: Path
) -> None:
    """`backfill --redis-pattern` on a cluster: every primary is scanned in turn, each
    with its own cursor, and a checkpoint in the middle resumes with nothing missed
    and nothing read twice."""
    rc = cluster.cluster()
    documents = {f"bfimport:{i:02d}": sample() for i in range(30)}
    for key, document in documents.items():
        rc.execute_command("JSON.SET", key, "$", json.dumps(document))
    holders = {rc.get_node_from_key(key).name for key in documents}
    assert len(holders) == 3  # the keys are spread over all three primaries

    with SupabaseStorage(options(cluster, database_url)) as store:
        source = RedisSource(store._redis, "bfimport:*", batch=4)
        items = list(source.items(None))
        labels = [item.label for item in items]
        assert sorted(labels) == sorted(documents)
        # Resuming at any recorded position reads exactly what came after it.
        marks = [(i, item.position) for i, item in enumerate(items) if item.position is not None]
        assert marks, "no safe place to resume in the whole scan"
        for index, position in marks:
            assert position[1] in {n.name for n in rc.get_primaries()}
            assert [item.label for item in source.items(position)] == labels[index + 1 :]
        # A checkpoint taken under another slot layout (a failover or a resharding since):
        # the scan starts over, so nothing the new layout put elsewhere is missed.
        index, position = marks[0]
        moved = ["0" * 16, *position[1:]]
        assert sorted(item.label for item in source.items(moved)) == sorted(documents)
        # The layout changing during the scan: it starts over too (what was read already
        # is read again), and gives up, saying why, if the layout never settles.
        scan = source._scan
        real = scan._layout
        calls = iter(range(1000))
        scan._layout = lambda: real() if next(calls) != 1 else "changed"  # type: ignore[method-assign]
        again = [item.label for item in source.items(None)]
        assert sorted(set(again)) == sorted(documents)
        assert len(again) > len(documents)
        scan._layout = lambda: str(next(calls))  # type: ignore[method-assign]
        with pytest.raises(ConserverSupabaseError, match="slot layout changed 11 times"):
            list(source.items(None))

        summary = run_backfill(
            store,
            RedisSource(store._redis, "bfimport:*", batch=4),
            checkpoint=tmp_path / "checkpoint.json",
            report=tmp_path / "failures.jsonl",
            batch=7,
        )
    assert (summary.saved, summary.failed) == (30, 0)
    for document in documents.values():
        assert in_database(database_url, document["uuid"]) == document
    rc.delete(*documents)
