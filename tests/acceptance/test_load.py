"""Load and thread safety: 8 threads x 5,000 mixed operations through one storage on
real PostgreSQL and Redis; no errors, no leaked connections, bounded memory."""

from __future__ import annotations

import random
import threading
import time
import tracemalloc

import psycopg
import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase.testing import make_vcon

from ..support.services import redis_client

pytestmark = [pytest.mark.integration, pytest.mark.one_database]
THREADS = 8
OPERATIONS = 5_000


def connections(database_url: str, redis_url: str) -> tuple[int, int]:
    """(PostgreSQL backends, Redis clients) opened by this package, on this test's
    database (a server may be shared with other test processes) and Redis."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pg = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conserver-supabase'"
            " AND datname = current_database()"
        ).fetchone()[0]
    clients = redis_client(redis_url).client_list()
    return pg, sum(1 for c in clients if c.get("name") == "conserver-supabase")


def test_eight_threads_of_mixed_operations(database_url: str, redis_json_url: str) -> None:
    uuids = [make_vcon(seed=i)["uuid"] for i in range(200)]  # a small set: contention
    options = {"database_url": database_url, "redis_url": redis_json_url, "pool_size": 4}
    errors: list[BaseException] = []
    counts = {"save": 0, "get": 0, "delete": 0, "search": 0, "exists": 0}
    lock = threading.Lock()
    before = connections(database_url, redis_json_url)
    tracemalloc.start()
    store = SupabaseStorage(options)

    def worker(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - a load mix, not cryptography
        done = dict.fromkeys(counts, 0)
        try:
            for _ in range(OPERATIONS):
                index = rng.randrange(len(uuids))
                roll = rng.random()
                if roll < 0.35:
                    store.save_vcon(make_vcon(seed=index, vcon_uuid=uuids[index]))
                    done["save"] += 1
                elif roll < 0.80:
                    store.get_vcon(uuids[index])
                    done["get"] += 1
                elif roll < 0.90:
                    store.delete_vcon(uuids[index])
                    done["delete"] += 1
                elif roll < 0.95:
                    store.exists(uuids[index])
                    done["exists"] += 1
                else:
                    store.search(tel=make_vcon(seed=index)["parties"][0]["tel"], limit=5)
                    done["search"] += 1
        except BaseException as exc:  # every error is a failure of this test
            errors.append(exc)
        with lock:
            for name, value in done.items():
                counts[name] += value

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    during = connections(database_url, redis_json_url)
    store.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    deadline = time.monotonic() + 10  # backends exit asynchronously after a close
    while (after := connections(database_url, redis_json_url)) != before:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert errors == []
    assert sum(counts.values()) == THREADS * OPERATIONS
    assert during[0] <= before[0] + 4  # the pool never grows past pool_size
    assert after == before  # closing the storage leaves nothing open
    assert peak < 64 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
