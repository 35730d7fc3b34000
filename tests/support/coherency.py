"""The randomized coherency run: threads saving, reading and deleting a few vCons
through one storage, with delays injected where a race can hurt, and a checker that
turns the recorded history into counts of violations.

Delays (random, up to ``max_delay`` seconds) are injected after the database call
returns and before the cache is touched: between a save's commit and its cache write,
between a read's database fetch and its cache fill, between a delete's commit and its
cache delete. A sampler thread also reads the cache keys directly all along.

The checks use the database versions. Every save writes a unique write id (in
``subject``) and records the version it got; every delete records the version it
deleted; every operation records when it started and returned. Versions of one vCon
grow in commit order, deletes included, so a value written by the
save of version v is stale when a save or delete of a version above v had returned
before the read began. ``None`` from a get is stale when the newest save returned
before the get began outranks every delete that started before the get ended. This
is the issue's "no get returns a version older than the newest save that completed
before that get began", and for the cache samples "no deleted vCon reappears".

Used by ``tests/acceptance/test_coherency.py`` (asserts the counts are zero) and by
``scripts/reliability_report.py`` (prints them for docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from typing import Any

from conserver_supabase import SupabaseStorage
from conserver_supabase._config import StorageConfig
from conserver_supabase._database import open_database
from conserver_supabase.testing import make_vcon


@dataclasses.dataclass(frozen=True)
class Op:
    kind: str  # save | delete | get
    vcon_uuid: str
    start: float
    end: float
    write: str | None  # save: the write id it wrote; get: the write id it returned
    version: int = 0  # save: its version; delete: the version it deleted (0: none)


@dataclasses.dataclass
class CoherencyReport:
    threads: int
    uuids: int
    operations: dict[str, int]
    cache_hits: int
    cache_misses: int
    cache_fills: int
    cache_samples: int  # direct reads of the cache keys by the sampler (non-empty ones)
    cache_errors: int = 0  # Redis errors the storage logged (none expected)
    stale_gets: int = 0  # a get older than a save/delete completed before it began
    stale_cache: int = 0  # a cached vCon superseded by a save completed before it was seen
    reappeared: int = 0  # a cached vCon removed by a delete completed before it was seen
    final_mismatches: int = 0  # after quiescence: cache neither empty nor equal to the DB
    final_get_mismatches: int = 0  # after quiescence: get differs from the database
    errors: list[str] = dataclasses.field(default_factory=list)
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def violations(self) -> int:
        return (
            self.stale_gets
            + self.stale_cache
            + self.reappeared
            + self.final_mismatches
            + self.final_get_mismatches
            + self.cache_errors
            + len(self.errors)
        )


class DelayedDatabase:
    """Wraps a real database transport: sleeps after each save, fetch and delete return,
    so the cache step that follows races the other threads."""

    def __init__(self, inner: Any, max_delay: float, seed: int) -> None:
        self._inner = inner
        self._max_delay = max_delay
        self._rng = random.Random(seed)  # noqa: S311 - a schedule, not cryptography
        self._lock = threading.Lock()
        self.deleted = threading.local()

    def _pause(self) -> None:
        with self._lock:
            delay = self._rng.uniform(0, self._max_delay)
        time.sleep(delay)

    def save(self, documents: Any, tenants: Any) -> dict[str, int]:
        versions: dict[str, int] = self._inner.save(documents, tenants)
        self._pause()  # between the commit and the cache write
        return versions

    def fetch(self, vcon_uuids: Any) -> Any:
        found = self._inner.fetch(vcon_uuids)
        self._pause()  # between the database read and the cache fill
        return found

    def delete(self, vcon_uuid: str) -> int:
        version: int = self._inner.delete(vcon_uuid)
        self.deleted.version = abs(version)  # for the history of this thread
        self._pause()  # between the delete and the cache delete
        return version

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Workload:
    """What the threads of one run share: the storage, its vCons and what they recorded."""

    def __init__(
        self, store: SupabaseStorage, database: DelayedDatabase, subjects: list[str]
    ) -> None:
        self.store = store
        self.database = database
        self.subjects = subjects
        self.write_ids = itertools.count(1)
        self.history: list[Op] = []
        self.samples: list[tuple[str, float, str]] = []  # (uuid, read start, write id)
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def worker(self, rng: random.Random, operations: int) -> None:
        for _ in range(operations):
            vcon_uuid = rng.choice(self.subjects)
            try:
                op = self._one(rng, vcon_uuid)
            except Exception as exc:  # every failure is counted, none is expected
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                self.history.append(op)

    def _one(self, rng: random.Random, vcon_uuid: str) -> Op:
        roll = rng.random()
        if roll < 0.40:
            with self.lock:
                write = f"w{next(self.write_ids)}"
            document = make_vcon(seed=rng.randrange(1000), vcon_uuid=vcon_uuid)
            document["subject"] = write
            start = time.monotonic()
            version = self.store.save_vcon(document)
            return Op("save", vcon_uuid, start, time.monotonic(), write, version)
        if roll < 0.90:
            start = time.monotonic()
            got = self.store.get_vcon(vcon_uuid)
            return Op("get", vcon_uuid, start, time.monotonic(), _write_of(got))
        start = time.monotonic()
        self.store.delete_vcon(vcon_uuid)
        deleted = self.database.deleted.version
        return Op("delete", vcon_uuid, start, time.monotonic(), None, deleted)

    def sampler(self) -> None:
        cache = self.store._redis._cache
        while not self.stop.is_set():
            for vcon_uuid in self.subjects:
                start = time.monotonic()
                write = _write_of(cache.read(cache.key(vcon_uuid), vcon_uuid))
                if write is not None:
                    with self.lock:
                        self.samples.append((vcon_uuid, start, write))
            time.sleep(0.001)


def run_coherency(
    options: dict[str, Any],
    *,
    threads: int = 8,
    uuids: int = 4,
    operations: int = 250,
    max_delay: float = 0.004,
    seed: int = 1,
) -> CoherencyReport:
    """Run the mixed workload and return the counts (``operations`` per thread)."""
    config = StorageConfig.from_options(options)
    database = DelayedDatabase(open_database(config), max_delay, seed)
    store = SupabaseStorage(config, database=database)
    subjects = [make_vcon(seed=seed * 1000 + i)["uuid"] for i in range(uuids)]
    run = _Workload(store, database, subjects)
    workers = [
        threading.Thread(
            target=run.worker,
            args=(random.Random(seed * 7919 + i), operations),  # noqa: S311 - a schedule
        )
        for i in range(threads)
    ]
    watcher = threading.Thread(target=run.sampler)
    watcher.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    run.stop.set()
    watcher.join()

    stats = store.cache_stats()
    counts = {
        kind: sum(1 for op in run.history if op.kind == kind) for kind in ("save", "get", "delete")
    }
    report = CoherencyReport(
        threads=threads,
        uuids=uuids,
        operations=counts,
        cache_hits=stats["hits"],
        cache_misses=stats["misses"],
        cache_fills=stats["fills"],
        cache_samples=len(run.samples),
        cache_errors=stats["errors"],
        errors=run.errors,
    )
    _check_history(run.history, run.samples, report)
    _check_quiescent(store, database, subjects, report)
    store.close()
    return report


def _write_of(document: Any) -> str | None:
    if document is None:
        return None
    subject = document.get("subject")
    return subject if isinstance(subject, str) and subject.startswith("w") else "(unknown)"


def _newer(version: int, ops: list[Op], before: float) -> Op | None:
    """A save or delete of a higher version that returned before ``before``.

    Versions of one vCon grow in commit order, deletes included, so such
    an operation certainly committed after the one that wrote ``version``.
    """
    for other in ops:
        if other.end < before and other.version > version:
            return other
    return None


def _check_history(
    history: list[Op], samples: list[tuple[str, float, str]], report: CoherencyReport
) -> None:
    by_uuid: dict[str, list[Op]] = {}
    saves: dict[str, Op] = {}
    for op in history:
        if op.kind != "get":
            by_uuid.setdefault(op.vcon_uuid, []).append(op)
        if op.kind == "save" and op.write is not None:
            saves[op.write] = op
    for op in history:
        if op.kind != "get":
            continue
        writes = by_uuid.get(op.vcon_uuid, [])
        if op.write is None:
            # Nothing is fine unless the newest completed save outranks every delete
            # that may have happened before the get ended.
            newest = max((w.version for w in writes if w.kind == "save" and w.end < op.start),
                         default=0)  # fmt: skip
            deleted = max((w.version for w in writes if w.kind == "delete" and w.start < op.end),
                          default=0)  # fmt: skip
            if newest > deleted:
                report.stale_gets += 1
                _example(report, f"get of {op.vcon_uuid} returned nothing after a save")
            continue
        source = saves.get(op.write)
        if source is None:
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned an unknown write {op.write}")
            continue
        newer = _newer(source.version, writes, op.start)
        if newer is not None:
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned {op.write} after a {newer.kind}")
    for vcon_uuid, start, write in samples:
        source = saves.get(write)
        if source is None:
            # A save that raised is not in the history; errors are counted apart.
            continue
        newer = _newer(source.version, by_uuid.get(vcon_uuid, []), start)
        if newer is None:
            continue
        if newer.kind == "delete":
            report.reappeared += 1
            _example(report, f"cache held {write} of {vcon_uuid} after a delete")
        else:
            report.stale_cache += 1
            _example(report, f"cache held {write} of {vcon_uuid} after a newer save")


def _check_quiescent(
    store: SupabaseStorage, database: DelayedDatabase, subjects: list[str], report: CoherencyReport
) -> None:
    for vcon_uuid in subjects:
        found = database._inner.fetch([vcon_uuid]).get(vcon_uuid)
        in_database = found[0] if found is not None else None
        cached = store._redis._cache.read(store._redis._cache.key(vcon_uuid), vcon_uuid)
        if cached is not None and cached != in_database:
            report.final_mismatches += 1
            _example(report, f"after quiescence the cache of {vcon_uuid} differs from the DB")
        if store.get_vcon(vcon_uuid) != in_database:
            report.final_get_mismatches += 1
            _example(report, f"after quiescence get({vcon_uuid}) differs from the DB")


def _example(report: CoherencyReport, text: str) -> None:
    if len(report.examples) < 10:
        report.examples.append(text)
