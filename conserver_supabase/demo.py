"""``conserver-supabase demo``: a short, timed session of the whole storage.

Saves generated vCons through :class:`SupabaseStorage` (database, then cache and a
chain list), reads them from the cache and after eviction from the database,
re-saves, saves the way the conserver does (from its RedisJSON working copy),
batches, and deletes; then prints per-operation timings and checks what it saw.
It touches only the vCons and the chain list it creates.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any, TextIO

from . import migrations
from .cache import connect
from .config import StorageConfig, redact_url
from .errors import ConserverSupabaseError
from .storage import SupabaseStorage
from .testing import make_vcon

__all__ = ["run_demo"]


def run_demo(config: StorageConfig, *, count: int, out: TextIO) -> dict[str, list[float]]:
    """Run the session, print a report to ``out``; return the timings (ms) per operation.

    ``config`` must name a ``database_url``; its ``chain_lists`` are replaced by one
    list private to this run, removed at the end.
    """
    assert config.database_url is not None
    url = config.database_url.reveal()
    print(f"database: {redact_url(url)} (schema {config.schema})", file=out)
    print(f"redis:    {redact_url(config.redis_url.reveal())}", file=out)
    applied = migrations.apply(url, config.schema)
    print(
        f"migrations: {len(applied)} applied, "
        f"{len(migrations.available()) - len(applied)} already there",
        file=out,
    )
    chain = f"conserver-supabase-demo:{uuid.uuid4()}"

    documents = [make_vcon(seed=i, vcon_uuid=str(uuid.uuid4())) for i in range(count)]
    timings: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    storage = SupabaseStorage(dataclasses.replace(config, chain_lists=(chain,)))
    redis = connect(config)
    try:
        for doc in documents:
            timed("save (new)", partial(storage.save_vcon, doc))
        hits = sum(timed("get (cache hit)", partial(storage.get_vcon, d["uuid"])) == d
                   for d in documents)  # fmt: skip
        misses = 0
        for doc in documents:
            redis.delete(f"vcon:{doc['uuid']}")  # evicted: the next get reads the database
            misses += timed("get (cache miss)", partial(storage.get_vcon, doc["uuid"])) == doc
        kinds = {redis.type(f"vcon:{d['uuid']}").decode() for d in documents}
        versions = []
        for doc in documents:
            doc["subject"] += " (updated)"
            doc["dialog"].pop()  # the vCon shrinks: its old dialog row must go
            versions.append(timed("save (again)", partial(storage.save_vcon, doc)))
        for doc in documents:  # the conserver's way: the vCon waits in Redis as RedisJSON
            _put_working_copy(redis, doc)
            timed("save (conserver)", partial(storage.save_working_copy, doc["uuid"]))
        batch = timed("save_many", partial(storage.save_many, documents))
        for doc in documents:
            redis.delete(f"vcon:{doc['uuid']}")
        found = timed(
            "get_many (misses)", partial(storage.get_many, [d["uuid"] for d in documents])
        )
        queued = redis.llen(chain)
        deleted = sum(timed("delete", partial(storage.delete_vcon, d["uuid"])) for d in documents)
        gone = storage.get_vcon(documents[0]["uuid"])
    except BaseException:
        with suppress(ConserverSupabaseError):  # keep the original error visible
            for doc in documents:  # interrupted: leave nothing behind
                storage.delete_vcon(doc["uuid"])
        raise
    finally:
        with suppress(Exception):
            redis.delete(chain)
        storage.close()
        redis.close()

    print(f"\n{count} generated vCons:\n", file=out)
    print(f"{'operation':<20}{'calls':>7}{'p50 ms':>10}{'p95 ms':>10}", file=out)
    for name, values in timings.items():
        print(
            f"{name:<20}{len(values):>7}{_pct(values, 50):>10.2f}{_pct(values, 95):>10.2f}",
            file=out,
        )
    hit, miss = _pct(timings["get (cache hit)"], 50), _pct(timings["get (cache miss)"], 50)
    print(f"\ncache miss vs hit (p50): a miss takes {miss / hit:.1f}x as long as a hit", file=out)
    print(
        f"identical after get: {hits}/{count} from the cache, {misses}/{count} from the "
        f"database; cache keys are {', '.join(sorted(kinds))}",
        file=out,
    )
    print(
        f"versions after re-save: {sorted(set(versions))}; after save_many: "
        f"{sorted(set(batch.values()))}",
        file=out,
    )
    print(
        f"chain list got {queued}/{4 * count} uuids; get_many found {len(found)}/{count}; "
        f"deleted {deleted}/{count}; get after delete: {gone}",
        file=out,
    )
    return timings


def _put_working_copy(redis: Any, document: dict[str, Any]) -> None:
    """Store the vCon the way the conserver's VconRedis does (JSON.SET, else SET)."""
    import json

    key = f"vcon:{document['uuid']}"
    try:
        redis.json().set(key, "$", document)
    except Exception:  # no RedisJSON: a JSON string is what the storage reads then
        redis.set(key, json.dumps(document))


def _pct(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
