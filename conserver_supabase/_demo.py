"""``conserver-supabase demo``: a short, timed session of the whole storage.

Drives generated vCons through the conserver interface (the working copy placed in
Redis as RedisJSON, ``save``, ``get`` from the cache and after eviction from the
database, a re-save, ``delete``) and through ``SupabaseStorage`` as a custom link
would (``save_vcon``, ``save_many``, ``get_many``), with a chain list filling; then
prints per-operation timings, cache statistics and checks of what it saw. It
touches only the vCons and the chain list it creates.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any, TextIO

from . import _migrations as migrations
from ._config import StorageConfig, redact_url
from ._errors import ConserverSupabaseError
from ._storage import SupabaseStorage
from .testing import chain_length, drop_chain, evict, key_type, make_vcon, put_working_copy

__all__ = ["run_demo"]


def run_demo(config: StorageConfig, *, count: int, out: TextIO) -> dict[str, list[float]]:
    """Run the session, print a report to ``out``; return the timings (ms) per operation.

    ``config`` names the database (``database_url``, or ``url`` and ``key``) and Redis.
    Its ``chain_lists`` are replaced by one list private to this run, removed at the end.
    """
    opts = _setup(config, out)
    chain = opts["chain_lists"][0]
    documents = [make_vcon(seed=i, vcon_uuid=str(uuid.uuid4())) for i in range(count)]
    session = _Session(opts)
    storage = SupabaseStorage.for_options(opts)  # the instance the hooks share
    try:
        seen = session.run(storage, documents, chain)
    except BaseException:
        with suppress(ConserverSupabaseError):  # keep the original error visible
            for doc in documents:  # interrupted: leave nothing behind
                storage.delete_vcon(doc["uuid"])
        raise
    finally:
        with suppress(ConserverSupabaseError):
            drop_chain(storage, chain)
        storage.close()
    _report(session.timings, seen, count, out)
    return session.timings


def _setup(config: StorageConfig, out: TextIO) -> dict[str, Any]:
    """Migrate (with a connection string), say where everything is; return what a
    conserver hands the hooks: the options: block of config.yml, with a private list."""
    config.require_database()
    if config.database_url is not None:
        url = config.database_url.reveal()
        print(f"database: {redact_url(url)} (schema {config.schema})", file=out)
        applied = migrations.apply(url, config.schema)
        print(
            f"migrations: {len(applied)} applied, "
            f"{len(migrations.available()) - len(applied)} already there",
            file=out,
        )
    else:
        print(f"database: {config.url} through PostgREST (schema {config.schema})", file=out)
        print("migrations: not applied by the demo (run `migrate --print` first)", file=out)
    print(f"redis:    {redact_url(config.redis_url.reveal())}", file=out)
    opts: dict[str, Any] = {
        "schema": config.schema,
        "redis_url": config.redis_url.reveal(),
        "cache_ttl": config.cache_ttl,
        "chain_lists": [f"conserver-supabase-demo:{uuid.uuid4()}"],
    }
    if config.database_url is not None:
        opts["database_url"] = config.database_url.reveal()
    else:
        assert config.key is not None
        opts.update(url=config.url, key=config.key.reveal())
    return opts


class _Session:
    """The conserver's way (hooks, working copies) and a custom link's (SupabaseStorage),
    each call timed."""

    def __init__(self, opts: dict[str, Any]) -> None:
        import conserver_supabase as hooks  # the module-level functions a conserver calls

        self.hooks = hooks
        self.opts = opts
        self.timings: dict[str, list[float]] = {}

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        self.timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    def run(
        self, storage: SupabaseStorage, documents: list[dict[str, Any]], chain: str
    ) -> dict[str, Any]:
        hooks, opts, timed = self.hooks, self.opts, self.timed
        seen: dict[str, Any] = {}
        for doc in documents:  # the conserver's way: the vCon waits in Redis as RedisJSON
            put_working_copy(storage, doc)
            timed("save (hook)", partial(hooks.save, doc["uuid"], opts))
        seen["hits"] = sum(
            timed("get (cache hit)", partial(hooks.get, d["uuid"], opts)) == d for d in documents
        )
        seen["misses"] = 0
        for doc in documents:
            evict(storage, doc["uuid"])  # evicted: the next get reads the database
            seen["misses"] += (
                timed("get (cache miss)", partial(hooks.get, doc["uuid"], opts)) == doc
            )
        seen["kinds"] = {key_type(storage, d["uuid"]) for d in documents}
        seen["versions"] = []
        for doc in documents:
            doc["subject"] += " (updated)"
            doc["dialog"].pop()  # the vCon shrinks: its old dialog row must go
            put_working_copy(storage, doc)
            again = partial(storage.save_working_copy, doc["uuid"])
            seen["versions"].append(timed("save (hook, again)", again))
        for doc in documents:  # a custom link's way: the REST write path
            timed("save_vcon (link)", partial(storage.save_vcon, doc))
        seen["batch"] = timed("save_many", partial(storage.save_many, documents))
        for doc in documents:
            evict(storage, doc["uuid"])
        uuids = [d["uuid"] for d in documents]
        seen["found"] = timed("get_many (misses)", partial(storage.get_many, uuids))
        seen["queued"] = chain_length(storage, chain)
        seen["stats"] = storage.cache_stats()
        seen["deleted"] = sum(timed("delete (hook)", partial(hooks.delete, u, opts)) for u in uuids)
        seen["gone"] = hooks.get(uuids[0], opts)
        return seen


def _report(timings: dict[str, list[float]], seen: dict[str, Any], count: int, out: TextIO) -> None:
    print(f"\n{count} generated vCons:\n", file=out)
    print(f"{'operation':<22}{'calls':>7}{'p50 ms':>10}{'p95 ms':>10}", file=out)
    for name, values in timings.items():
        print(
            f"{name:<22}{len(values):>7}{_pct(values, 50):>10.2f}{_pct(values, 95):>10.2f}",
            file=out,
        )
    hit, miss = _pct(timings["get (cache hit)"], 50), _pct(timings["get (cache miss)"], 50)
    stats = seen["stats"]
    print(f"\ncache miss vs hit (p50): a miss takes {miss / hit:.1f}x as long as a hit", file=out)
    print(
        f"cache: {stats['hits']} hits, {stats['misses']} misses, {stats['fills']} fills, "
        f"{stats['errors']} errors; keys are {', '.join(sorted(seen['kinds']))}",
        file=out,
    )
    print(
        f"identical after get: {seen['hits']}/{count} from the cache, {seen['misses']}/{count} "
        f"from the database; get_many found {len(seen['found'])}/{count}",
        file=out,
    )
    print(
        f"versions after re-save: {sorted(set(seen['versions']))}; after save_many: "
        f"{sorted(set(seen['batch'].values()))}",
        file=out,
    )
    print(
        f"chain list got {seen['queued']}/{4 * count} uuids; deleted {seen['deleted']}/{count}; "
        f"get after delete: {seen['gone']}",
        file=out,
    )


def _pct(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
