"""The randomized coherency run: threads saving, reading and deleting a few vCons
through one storage, with delays injected where a race can hurt, and a checker that
turns the recorded history into counts of violations.

Delays (random, up to ``max_delay`` seconds) are injected after the database call
returns and before the cache is touched: between a save's commit and its cache write,
between a read's database fetch and its cache fill, between a delete's commit and its
cache delete. A sampler thread also reads the cache keys directly all along.

The checks need no knowledge of the commit order. Every save writes a unique write id
(in ``subject``), every operation records when it started and returned. A value is
stale when some operation on the same vCon started after the value's save had
returned, and returned before the read began: that operation certainly committed after
the value's save, so the value was overwritten (by a save) or removed (by a delete)
before the read began. ``None`` from a get is stale when every save and delete it
could reflect is certainly superseded that way by a save (the vCon existed). This is
the issue's "no get returns a version older than the newest save that completed
before that get began", and for the cache samples "no deleted vCon reappears".

Used by ``tests/test_coherency.py`` (asserts the counts are zero) and by
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
from conserver_supabase.config import StorageConfig
from conserver_supabase.database import open_database
from conserver_supabase.testing import make_vcon

_NEVER = float("-inf")


@dataclasses.dataclass(frozen=True)
class Op:
    kind: str  # save | delete | get
    vcon_uuid: str
    start: float
    end: float
    write: str | None  # save: the write id it wrote; get: the write id it returned


@dataclasses.dataclass
class CoherencyReport:
    threads: int
    uuids: int
    operations: dict[str, int]
    cache_hits: int
    cache_misses: int
    cache_fills: int
    cache_samples: int  # direct reads of the cache keys by the sampler (non-empty ones)
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

    def _pause(self) -> None:
        with self._lock:
            delay = self._rng.uniform(0, self._max_delay)
        time.sleep(delay)

    def save(self, document: Any, vcon_uuid: str) -> int:
        version: int = self._inner.save(document, vcon_uuid)
        self._pause()  # between the commit and the cache write
        return version

    def fetch(self, vcon_uuid: str) -> Any:
        found = self._inner.fetch(vcon_uuid)
        self._pause()  # between the database read and the cache fill
        return found

    def delete(self, vcon_uuid: str) -> bool:
        existed: bool = self._inner.delete(vcon_uuid)
        self._pause()  # between the delete and the cache delete
        return existed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


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
    write_ids = itertools.count(1)
    history: list[Op] = []
    samples: list[tuple[str, float, str]] = []  # (uuid, read start, write id) of the cache
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(index: int) -> None:
        rng = random.Random(seed * 7919 + index)  # noqa: S311 - a schedule
        for _ in range(operations):
            vcon_uuid = rng.choice(subjects)
            roll = rng.random()
            try:
                if roll < 0.40:
                    with lock:
                        write = f"w{next(write_ids)}"
                    document = make_vcon(seed=rng.randrange(1000), vcon_uuid=vcon_uuid)
                    document["subject"] = write
                    start = time.monotonic()
                    store.save_vcon(document)
                    op = Op("save", vcon_uuid, start, time.monotonic(), write)
                elif roll < 0.90:
                    start = time.monotonic()
                    got = store.get_vcon(vcon_uuid)
                    op = Op("get", vcon_uuid, start, time.monotonic(), _write_of(got))
                else:
                    start = time.monotonic()
                    store.delete_vcon(vcon_uuid)
                    op = Op("delete", vcon_uuid, start, time.monotonic(), None)
            except Exception as exc:  # every failure is counted, none is expected
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                history.append(op)

    def sampler() -> None:
        while not stop.is_set():
            for vcon_uuid in subjects:
                start = time.monotonic()
                write = _write_of(store._cache.read(store._cache.key(vcon_uuid), vcon_uuid))
                if write is not None:
                    with lock:
                        samples.append((vcon_uuid, start, write))
            time.sleep(0.001)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    watcher = threading.Thread(target=sampler)
    watcher.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    watcher.join()

    stats = store.cache_stats()
    counts = {
        kind: sum(1 for op in history if op.kind == kind) for kind in ("save", "get", "delete")
    }
    report = CoherencyReport(
        threads=threads,
        uuids=uuids,
        operations=counts,
        cache_hits=stats["hits"],
        cache_misses=stats["misses"],
        cache_fills=stats["fills"],
        cache_samples=len(samples),
        errors=errors,
    )
    _check_history(history, samples, report)
    _check_quiescent(store, database, subjects, report)
    store.close()
    return report


def _write_of(document: Any) -> str | None:
    if document is None:
        return None
    subject = document.get("subject")
    return subject if isinstance(subject, str) and subject.startswith("w") else "(unknown)"


def _superseded(op: Op, completed: list[Op], before: float) -> Op | None:
    """An operation that certainly committed after ``op`` and returned before ``before``."""
    for other in completed:
        if other.end < before and other.start > op.end:
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
            # Fine if the vCon may not exist: never saved, or a delete (or the start)
            # is not certainly superseded by a save completed before the get began.
            starts = [Op("delete", op.vcon_uuid, _NEVER, _NEVER, None)]
            starts += [w for w in writes if w.kind == "delete"]
            later_saves = [w for w in writes if w.kind == "save"]
            if all(_superseded(d, later_saves, op.start) for d in starts):
                report.stale_gets += 1
                _example(report, f"get of {op.vcon_uuid} returned nothing after a save")
            continue
        source = saves.get(op.write)
        if source is None:
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned an unknown write {op.write}")
            continue
        newer = _superseded(source, writes, op.start)
        if newer is not None:
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned {op.write} after a {newer.kind}")
    for vcon_uuid, start, write in samples:
        source = saves.get(write)
        if source is None:
            # A save that raised is not in the history; errors are counted apart.
            continue
        newer = _superseded(source, by_uuid.get(vcon_uuid, []), start)
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
        found = database._inner.fetch(vcon_uuid)
        in_database = found[0] if found is not None else None
        cached = store._cache.read(store._cache.key(vcon_uuid), vcon_uuid)
        if cached is not None and cached != in_database:
            report.final_mismatches += 1
            _example(report, f"after quiescence the cache of {vcon_uuid} differs from the DB")
        if store.get_vcon(vcon_uuid) != in_database:
            report.final_get_mismatches += 1
            _example(report, f"after quiescence get({vcon_uuid}) differs from the DB")


def _example(report: CoherencyReport, text: str) -> None:
    if len(report.examples) < 10:
        report.examples.append(text)
