"""The randomized coherency run: threads saving (``save_vcon``, ``save_many`` and the
conserver's ``save`` hook), reading and deleting a few vCons through one storage, with
delays injected where a race can hurt, and a checker that turns the recorded history
into counts of violations.

A hook operation does what a conserver does: a link writes the working copy at
``vcon:{uuid}`` (a put, with a write id of its own), then the ``save`` hook saves what
it finds there, which may by then be another operation's document; the history records
the write id the hook actually saved (:class:`DelayedDatabase` notes it).

Delays (random, up to ``max_delay`` seconds) are injected after the database call
returns and before the cache is touched: between a save's commit and its cache write,
between a read's database fetch and its cache fill, between a delete's commit and its
cache delete. A sampler thread also reads the cache keys directly all along.

The checks use the database versions. Every save writes a write id (in ``subject``)
and records the version it got; every delete records the version it deleted; every
operation records when it started and returned. Versions of one vCon grow in commit
order, deletes included, so a value written by the save of version v is stale when a
save or delete of a version above v had returned before the read began (a write id the
hook saved again counts at its highest version saved before the read ended). A working
copy no save took is stale once a save or delete that began after its put returned
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

import pytest

from conserver_supabase import SupabaseStorage, VconNotFoundError
from conserver_supabase._config import StorageConfig
from conserver_supabase._database import open_database
from conserver_supabase._redis._cache import Entry, HotTier
from conserver_supabase.testing import make_vcon


@dataclasses.dataclass(frozen=True)
class Op:
    kind: str  # save | delete | get | put (a link's working copy)
    vcon_uuid: str
    start: float
    end: float
    write: str | None  # save: the write id it wrote; get: the write id it returned
    version: int = 0  # save: its version; delete: the version it deleted (0: none)
    hook: bool = False  # a save by the conserver's save hook


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the sampler read from a cache key directly."""

    vcon_uuid: str
    start: float
    end: float
    write: str


@dataclasses.dataclass
class CoherencyReport:
    threads: int
    uuids: int
    operations: dict[str, int]  # saves (all three kinds), gets, deletes, puts (hooks)
    cache_hits: int
    cache_misses: int
    cache_fills: int
    cache_samples: int  # direct reads of the cache keys by the sampler (non-empty ones)
    cache_errors: int = 0  # Redis errors the storage logged (none expected)
    hooks_missed: int = 0  # hook saves that found no working copy (a delete took it)
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
        self.saved = threading.local()

    def _pause(self) -> None:
        with self._lock:
            delay = self._rng.uniform(0, self._max_delay)
        time.sleep(delay)

    def save(
        self, documents: Any, tenants: Any, bases: Any = None, texts: Any = None
    ) -> dict[str, int]:
        versions: dict[str, int] = self._inner.save(documents, tenants, bases, texts)
        self.saved.subject = documents[-1].get("subject")  # what a hook found and saved
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
        self,
        store: SupabaseStorage,
        database: DelayedDatabase,
        subjects: list[str],
        hooks: bool = True,
    ) -> None:
        self.store = store
        self.database = database
        self.subjects = subjects
        self.write_ids = itertools.count(1)
        self.history: list[Op] = []
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.hooks_missed = 0
        #: Cumulative shares of save_vcon, save_many and hook operations (then gets to
        #: 0.90, deletes).
        self.mix = (0.25, 0.32, 0.45) if hooks else (0.40, 0.40, 0.40)
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def worker(self, rng: random.Random, operations: int) -> None:
        for _ in range(operations):
            vcon_uuid = rng.choice(self.subjects)
            try:
                ops = self._one(rng, vcon_uuid)
            except Exception as exc:  # every failure is counted, none is expected
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                self.history.extend(ops)

    def _write_id(self) -> str:
        with self.lock:
            return f"w{next(self.write_ids)}"

    def _document(self, rng: random.Random, vcon_uuid: str) -> dict[str, Any]:
        document = make_vcon(seed=rng.randrange(1000), vcon_uuid=vcon_uuid)
        document["subject"] = self._write_id()
        return document

    def _one(self, rng: random.Random, vcon_uuid: str) -> list[Op]:
        roll = rng.random()
        if roll < self.mix[0]:
            document = self._document(rng, vcon_uuid)
            start = time.monotonic()
            version = self.store.save_vcon(document)
            return [Op("save", vcon_uuid, start, time.monotonic(), document["subject"], version)]
        if roll < self.mix[1]:
            return self._save_many(rng, vcon_uuid)
        if roll < self.mix[2]:
            return self._hook(rng, vcon_uuid)
        if roll < 0.90:
            start = time.monotonic()
            got = self.store.get_vcon(vcon_uuid)
            return [Op("get", vcon_uuid, start, time.monotonic(), _write_of(got))]
        start = time.monotonic()
        self.store.delete_vcon(vcon_uuid)
        deleted = self.database.deleted.version
        return [Op("delete", vcon_uuid, start, time.monotonic(), None, deleted)]

    def _save_many(self, rng: random.Random, vcon_uuid: str) -> list[Op]:
        """Two vCons in one transaction (the other one picked at random)."""
        others = [u for u in self.subjects if u != vcon_uuid]
        documents = [self._document(rng, u) for u in (vcon_uuid, rng.choice(others))]
        start = time.monotonic()
        versions = self.store.save_many(documents)
        end = time.monotonic()
        return [
            Op("save", d["uuid"], start, end, d["subject"], versions[d["uuid"]]) for d in documents
        ]

    def _hook(self, rng: random.Random, vcon_uuid: str) -> list[Op]:
        """A link writes the working copy, then the conserver's save hook saves it."""
        document = self._document(rng, vcon_uuid)
        start = time.monotonic()
        self.store._redis.conserver.put(document)
        put = Op("put", vcon_uuid, start, time.monotonic(), document["subject"])
        self.database.saved.subject = None
        try:
            version = self.store.save_working_copy(vcon_uuid)
        except VconNotFoundError:  # a delete took the working copy first
            with self.lock:
                self.hooks_missed += 1
            return [put]
        saved = self.database.saved.subject
        return [put, Op("save", vcon_uuid, start, time.monotonic(), saved, version, hook=True)]

    def sampler(self) -> None:
        cache = self.store._redis._cache
        while not self.stop.is_set():
            for vcon_uuid in self.subjects:
                start = time.monotonic()
                write = _write_of(cache.read(cache.key(vcon_uuid), vcon_uuid))
                if write is not None:
                    with self.lock:
                        self.samples.append(Sample(vcon_uuid, start, time.monotonic(), write))
            time.sleep(0.001)


def run_coherency(
    options: dict[str, Any],
    *,
    threads: int = 8,
    uuids: int = 4,
    operations: int = 250,
    max_delay: float = 0.004,
    seed: int = 1,
    hooks: bool = True,
) -> CoherencyReport:
    """Run the mixed workload and return the counts (``operations`` per thread).
    ``hooks=False``: only save_vcon, gets and deletes (the run before the hook path)."""
    config = StorageConfig.from_options(options)
    database = DelayedDatabase(open_database(config), max_delay, seed)
    store = SupabaseStorage(config, database=database)
    subjects = [make_vcon(seed=seed * 1000 + i)["uuid"] for i in range(uuids)]
    run = _Workload(store, database, subjects, hooks)
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
        kind: sum(1 for op in run.history if op.kind == kind)
        for kind in ("save", "get", "delete", "put")
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
        hooks_missed=run.hooks_missed,
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


class _History:
    """The recorded operations, indexed for the checks."""

    def __init__(self, history: list[Op]) -> None:
        self.by_uuid: dict[str, list[Op]] = {}
        self.saves: dict[str, list[Op]] = {}  # write id -> the saves that wrote it
        self.puts: dict[str, Op] = {}  # write id -> the working copy put with it
        for op in history:
            if op.kind in ("save", "delete"):
                self.by_uuid.setdefault(op.vcon_uuid, []).append(op)
            if op.kind == "save" and op.write is not None:
                self.saves.setdefault(op.write, []).append(op)
            if op.kind == "put" and op.write is not None:
                self.puts[op.write] = op

    def superseded(self, vcon_uuid: str, write: str, start: float, end: float) -> Op | None:
        """The save or delete, returned before ``start``, that makes ``write`` (read
        between ``start`` and ``end``) stale; ``None`` when it is not."""
        ops = self.by_uuid.get(vcon_uuid, [])
        put = self.puts.get(write)
        taken = [s for s in self.saves.get(write, []) if s.start < end]
        if taken:
            version = max(s.version for s in taken)
            own_end = max(s.end for s in taken)
            for other in ops:
                if other.end < start and other.version > version:
                    if other.hook and put is not None and put.end > other.start < start < own_end:
                        # A link's working copy written while that newer hook save ran
                        # (after its read): its touch keeps it, until the copy's own
                        # save, committed earlier, removes it (lua/write.lua, touch).
                        continue
                    return other
            return None
        if put is None:
            return None  # unknown: a save that raised (errors are counted apart)
        for other in ops:  # a working copy no save took, until the next write
            if other.start > put.end and other.end < start:
                return other
        return None

    def known(self, write: str) -> bool:
        return write in self.saves or write in self.puts


def _check_history(history: list[Op], samples: list[Sample], report: CoherencyReport) -> None:
    index = _History(history)
    for op in history:
        if op.kind != "get":
            continue
        writes = index.by_uuid.get(op.vcon_uuid, [])
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
        if not index.known(op.write):
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned an unknown write {op.write}")
            continue
        newer = index.superseded(op.vcon_uuid, op.write, op.start, op.end)
        if newer is not None:
            report.stale_gets += 1
            _example(report, f"get of {op.vcon_uuid} returned {op.write} after a {newer.kind}")
    for sample in samples:
        newer = index.superseded(sample.vcon_uuid, sample.write, sample.start, sample.end)
        if newer is None:
            continue
        if newer.kind == "delete":
            report.reappeared += 1
            _example(report, f"cache held {sample.write} of {sample.vcon_uuid} after a delete")
        else:
            report.stale_cache += 1
            _example(report, f"cache held {sample.write} of {sample.vcon_uuid} after a newer save")


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


def blind_touch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the save hook the old touch (0b9ddf4: renew the TTL and stamp the version on
    whatever the key holds), as a mutant the checks must catch: each touch is handed the
    key's current text and version as if the hook had read them, so it never sees the
    key change."""
    original = HotTier.write

    def blind(self: HotTier, entry: Entry, *args: Any, **kwargs: Any) -> int:
        if entry.mode == "touch":
            key = self.key(entry.vcon_uuid)
            _, text, version = self.read_versioned(key, entry.vcon_uuid)
            if text:
                entry = dataclasses.replace(entry, document=text, read_version=version)
        return original(self, entry, *args, **kwargs)

    monkeypatch.setattr(HotTier, "write", blind)
