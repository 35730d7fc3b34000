"""The promise under faults: nothing lost, nothing stale, nothing reverted, every call
within its bound. Each scenario plays one fault the issue tracker measured, counts what
broke the promise, and returns a :class:`PromiseRow`; scripts/reliability_report.py
prints them as the second table of docs/reliability.md, and
tests/acceptance/test_promise.py runs each on real services and expects zeros.

A scenario gets :class:`~tests.support.fault_scenarios.Services` (the PostgREST stand-in
plays the database outage with HTTP 503) and a vCon count; every run is bounded.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis

import conserver_supabase
from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    SupabaseStorage,
    testing,
)

from .fault_scenarios import Services

JOURNAL = "conserver_supabase:journal"


@dataclasses.dataclass
class PromiseRow:
    scenario: str
    operations: int = 0
    lost: int = 0  # acknowledged (or journaled) writes the database does not hold
    stale: int = 0  # reads that returned a document older than the database's
    reverted: int = 0  # acknowledged writes undone (a delete undone, an older document back)
    slowest: float = 0.0  # seconds, the longest single call
    bound: float = 0.0  # seconds every call had to stay within
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def broken(self) -> bool:
        return bool(self.lost or self.stale or self.reverted or self.slowest > self.bound)


class _Clock:
    """Times every call made through :meth:`call`."""

    def __init__(self, row: PromiseRow) -> None:
        self.row = row

    def call[R](self, function: Callable[..., R], *args: Any) -> R:
        began = time.monotonic()
        try:
            self.row.operations += 1
            return function(*args)
        finally:
            self.row.slowest = max(self.row.slowest, time.monotonic() - began)


def _options(services: Services, **extra: Any) -> dict[str, Any]:
    return {
        "url": services.stand_in.url,
        "key": services.key,
        "redis_url": services.redis.url,
        "retry_deadline": 0.5,
        "timeout": 0.5,
        "redis_timeout": 0.25,
        "cache_ttl": 600,
        **extra,
    }


def _in_database(services: Services, vcon_uuid: str) -> Any:
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()
    return None if row is None else row[0]


def _journal_during_outage(
    services: Services, store: SupabaseStorage, clock: _Clock, documents: list[Any]
) -> None:
    """Each save fails while the database answers 503: each is journaled."""
    services.stand_in.sticky = "503"
    try:
        for document in documents:
            try:
                clock.call(store.save_vcon, document)
            except DatabaseUnavailableError as exc:
                if not exc.journaled:
                    raise
    finally:
        services.stand_in.sticky = None


def replay_after_later_writes(services: Services, count: int = 30) -> PromiseRow:
    """Saved; a save of each fails and is journaled; then, with the database back, a
    third is saved again (acknowledged), a third deleted (half by this storage, half by
    another writer in SQL, which leaves this journal alone), a third left alone; then
    replay. Reverted: a later save or a delete undone. Lost: an untouched vCon without
    its journaled document."""
    row = PromiseRow("replay after a later save and after a delete", bound=1.5)
    clock = _Clock(row)
    documents = [testing.make_vcon() for _ in range(count)]
    with SupabaseStorage(_options(services)) as store:
        for document in documents:
            clock.call(store.save_vcon, document)
        failed = [{**d, "subject": f"journaled {d['uuid']}"} for d in documents]
        _journal_during_outage(services, store, clock, failed)
        expected: dict[str, Any] = {}
        for index, document in enumerate(failed):
            vcon_uuid = document["uuid"]
            if index % 3 == 0:
                later = {**document, "subject": "acknowledged later"}
                clock.call(store.save_vcon, later)
                expected[vcon_uuid] = later
            elif index % 3 == 1:
                if index % 2:
                    clock.call(store.delete_vcon, vcon_uuid)
                else:
                    with psycopg.connect(services.database_url, autocommit=True) as conn:
                        conn.execute("SELECT conserver_vcon_remove(%s)", [vcon_uuid])
                expected[vcon_uuid] = None
            else:
                expected[vcon_uuid] = document
        clock.call(store.replay_journal)
        for index, (vcon_uuid, wanted) in enumerate(expected.items()):
            _judge(row, vcon_uuid, wanted, _in_database(services, vcon_uuid))
            if index % 3 == 1 and index % 2 == 0:
                continue  # another writer's delete: its invalidation is the change feed's
            served = clock.call(store.get_vcon, vcon_uuid)
            if served != wanted:
                row.stale += 1
                row.examples.append(f"get {vcon_uuid}: {_subject(served)}, not {_subject(wanted)}")
    return row


def _judge(row: PromiseRow, vcon_uuid: str, wanted: Any, stored: Any) -> None:
    if stored == wanted:
        return
    if wanted is not None and wanted["subject"].startswith("journaled"):
        row.lost += 1
    else:
        row.reverted += 1
    row.examples.append(f"{vcon_uuid}: database holds {_subject(stored)}, not {_subject(wanted)}")


def _subject(document: Any) -> str:
    return "nothing" if document is None else repr(document.get("subject"))


def replay_across_tenants(services: Services, count: int = 10) -> PromiseRow:
    """Tenant B's vCons; tenant A's storage saves them: refused (not journaled); in an
    outage its saves are journaled; a replay from a storage without tenant options must
    leave every B vCon as B saved it."""
    row = PromiseRow("replay across tenants", bound=1.5)
    clock = _Clock(row)
    owned = [testing.make_vcon() for _ in range(count)]
    with SupabaseStorage(_options(services, tenant_id="tenant-b")) as tenant_b:
        for document in owned:
            clock.call(tenant_b.save_vcon, document)
    theirs = [{**d, "subject": "tenant A's document"} for d in owned]
    with SupabaseStorage(_options(services, tenant_id="tenant-a")) as tenant_a:
        for document in theirs:
            try:
                clock.call(tenant_a.save_vcon, document)
                row.reverted += 1  # taken over
            except DatabaseRejectedError as exc:
                if exc.journaled:
                    row.examples.append(f"refused but journaled: {exc}")
                    row.reverted += 1
        _journal_during_outage(services, tenant_a, clock, theirs)
    with SupabaseStorage(_options(services)) as environment:
        clock.call(environment.replay_journal)
        for document in owned:
            stored = _in_database(services, document["uuid"])
            if stored != document:
                row.reverted += 1
                row.examples.append(f"{document['uuid']}: holds {_subject(stored)}")
            served = clock.call(environment.get_vcon, document["uuid"])
            row.stale += served != document
    return row


def breaker_recovery_through_the_hook(services: Services, count: int = 40) -> PromiseRow:
    """The conserver's save hook (a RedisJSON working copy, then ``save``) before, while
    and after Redis is killed and restarted: once Redis is back and the cool-down has
    passed, every hook save must succeed (lost: one that raised) and every vCon read
    back as saved (stale). Needs ``services.redis`` to be killable (EmbeddedRedis)."""
    row = PromiseRow("breaker recovery through the hook", bound=1.5)
    clock = _Clock(row)
    cooldown = 0.5
    opts = {"database_url": services.database_url, "redis_url": services.redis.url,
            "redis_cooldown": cooldown, "redis_timeout": 0.25, "retry_deadline": 0.5}  # fmt: skip
    saved: dict[str, Any] = {}
    with SupabaseStorage(opts) as store:

        def hook_save(document: Any) -> None:
            key = f"vcon:{document['uuid']}"
            redis.Redis.from_url(services.redis.url).json().set(key, "$", document)
            clock.call(conserver_supabase.save, document["uuid"], opts)
            saved[document["uuid"]] = document

        for _ in range(count // 2):
            hook_save(testing.make_vcon())
        services.redis.kill()
        for vcon_uuid, document in list(saved.items())[: count // 4]:
            changed = {**document, "subject": "saved while Redis was down"}
            clock.call(store.save_vcon, changed)  # commits; the cache write is skipped
            saved[vcon_uuid] = changed
        services.redis.restart()
        time.sleep(cooldown + 0.1)
        for _ in range(count // 2):
            try:
                hook_save(testing.make_vcon())
            except Exception as exc:
                row.lost += 1
                row.examples.append(f"hook save after the recovery: {exc}")
        for vcon_uuid, document in saved.items():
            if clock.call(store.get_vcon, vcon_uuid) != document:
                row.stale += 1
                row.examples.append(f"get {vcon_uuid} after the recovery")
    return row


def redis_frozen_with_data(services: Services, count: int = 40) -> PromiseRow:
    """Threads save, delete and read their own vCons (each the only writer of its
    uuids, so every read has one right answer: the last acknowledged write): a phase
    with Redis up, one with Redis frozen (SIGSTOP: its calls time out, then the circuit
    opens and they are skipped), one after it thawed with its data (SIGCONT) and the
    cool-down passed. Stale: a read that returned anything else. Needs
    ``services.redis.pid``."""
    row = PromiseRow("Redis frozen (SIGSTOP) with data, then thawed", bound=1.5)
    clock = _Clock(row)
    cooldown = 0.3
    opts = {"database_url": services.database_url, "redis_url": services.redis.url,
            "redis_cooldown": cooldown, "redis_timeout": 0.25, "retry_deadline": 0.5,
            "pool_size": 8}  # fmt: skip
    threads = 4
    barrier = threading.Barrier(threads + 1, timeout=120)
    phases = (count, count, 2 * count)
    raised: list[BaseException] = []
    with SupabaseStorage(opts) as store:
        workers = [
            threading.Thread(
                target=_own_vcons, args=(store, clock, row, seed, phases, barrier, raised)
            )
            for seed in range(threads)
        ]
        for worker in workers:
            worker.start()
        try:
            barrier.wait()  # Redis up: done
            os.kill(services.redis.pid, signal.SIGSTOP)
            try:
                barrier.wait()  # frozen: go
                barrier.wait()  # frozen: done
            finally:
                os.kill(services.redis.pid, signal.SIGCONT)
            time.sleep(cooldown + 0.1)
            barrier.wait()  # thawed: go
        except threading.BrokenBarrierError:
            if not raised:  # a phase took longer than the barrier's timeout
                raise
        for worker in workers:
            worker.join(timeout=120)
    if raised:  # a call raised what the package must not raise here
        raise raised[0]
    return row


def _own_vcons(
    store: SupabaseStorage,
    clock: _Clock,
    row: PromiseRow,
    seed: int,
    phases: tuple[int, ...],
    barrier: threading.Barrier,
    raised: list[BaseException],
) -> None:
    """One thread: saves, deletes and reads of its own vCons in ``phases`` (waiting on
    ``barrier`` between them), checking each read against the last acknowledged write
    (``None`` after a delete). Anything else raised is kept in ``raised`` and breaks the
    barrier, so that the scenario stops and reports it."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    acknowledged: dict[str, Any] = {}
    documents = [testing.make_vcon() for _ in range(4)]
    step = 0
    try:
        for index, steps in enumerate(phases):
            if index:
                barrier.wait()
            for _ in range(steps):
                step += 1
                _one_step(store, clock, row, rng, documents[step % 4], step, acknowledged)
            if index < len(phases) - 1:
                barrier.wait()
    except threading.BrokenBarrierError:
        pass  # another thread raised, or a phase outlasted the barrier's timeout
    except Exception as exc:  # reported by the scenario
        raised.append(exc)
        barrier.abort()


def _one_step(
    store: SupabaseStorage,
    clock: _Clock,
    row: PromiseRow,
    rng: random.Random,
    document: Any,
    step: int,
    acknowledged: dict[str, Any],
) -> None:
    vcon_uuid = document["uuid"]
    action = rng.choice(("save", "save", "get", "get", "delete"))
    try:
        if action == "save":
            changed = {**document, "subject": f"step {step}"}
            clock.call(store.save_vcon, changed)
            acknowledged[vcon_uuid] = changed
        elif action == "delete":
            clock.call(store.delete_vcon, vcon_uuid)
            acknowledged[vcon_uuid] = None
        elif vcon_uuid in acknowledged:
            wanted = acknowledged[vcon_uuid]
            for name, answer, right in (
                ("get", clock.call(store.get_vcon, vcon_uuid), wanted),
                ("exists", clock.call(store.exists, vcon_uuid), wanted is not None),
            ):
                if answer != right:
                    row.stale += 1
                    row.examples.append(f"{name} {vcon_uuid} at step {step}")
    except DatabaseUnavailableError:
        acknowledged.pop(vcon_uuid, None)  # not acknowledged: no right answer now


def hook_race(services: Services, count: int = 10, rounds: int = 6) -> PromiseRow:
    """The conserver's save hook racing ``save_vcon`` of the same uuid (issue 15). For
    each of ``count`` vCons, ``rounds`` times: a link leaves a working copy at
    ``vcon:{uuid}`` (``JSON.SET``), then the hook's save of it and a ``save_vcon`` of
    another document of that uuid start together, each pausing at random (up to 4 ms)
    between its commit and its cache write (tests/support/coherency.py's
    DelayedDatabase), so either may commit first and either cache step land first. Once
    both returned: stale, a ``get_vcon`` or the conserver's own read of the key
    (``JSON.GET``) answering anything but the database's document (an absent key is
    right); lost, a save that failed or the database holding neither document;
    reverted, it holding the one that committed first."""
    from conserver_supabase._config import StorageConfig
    from conserver_supabase._database import open_database

    from .coherency import DelayedDatabase

    row = PromiseRow("hook save racing save_vcon", bound=1.5)
    opts = {"database_url": services.database_url, "redis_url": services.redis.url,
            "retry_deadline": 0.5, "redis_timeout": 0.25, "pool_size": 4}  # fmt: skip
    config = StorageConfig.from_options(opts)
    database = DelayedDatabase(open_database(config), max_delay=0.004, seed=15)
    client = redis.Redis.from_url(services.redis.url)
    lock = threading.Lock()

    def timed(results: dict[str, Any], name: str, call: Callable[[], Any]) -> None:
        began = time.monotonic()
        try:
            results[name] = call()
            if name == "hook":  # what the hook found at vcon:{uuid} and saved
                results["hook saved"] = database.saved.subject
        except Exception as exc:  # counted as lost
            results[name] = exc
        with lock:
            row.operations += 1
            row.slowest = max(row.slowest, time.monotonic() - began)

    with SupabaseStorage(config, database=database) as store:
        for vcon_uuid in [testing.make_vcon()["uuid"] for _ in range(count)]:
            for turn in range(rounds):
                link, other = (
                    {**testing.make_vcon(seed=turn, vcon_uuid=vcon_uuid), "subject": subject}
                    for subject in (f"link {turn}", f"save_vcon {turn}")
                )
                client.json().set(f"vcon:{vcon_uuid}", "$", link)
                results: dict[str, Any] = {}
                calls = {
                    "hook": functools.partial(store.save_working_copy, vcon_uuid),
                    "save_vcon": functools.partial(store.save_vcon, other),
                }
                threads = [
                    threading.Thread(target=timed, args=(results, name, call))
                    for name, call in calls.items()
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                _judge_race(row, store, client, services, (link, other), results)
    return row


def _judge_race(
    row: PromiseRow,
    store: SupabaseStorage,
    client: Any,
    services: Services,
    documents: tuple[dict[str, Any], dict[str, Any]],
    results: dict[str, Any],
) -> None:
    """Count what one round of :func:`hook_race` broke, once both saves returned
    (``documents``: the link's working copy, save_vcon's document)."""
    failed = [f"{name}: {exc}" for name, exc in results.items() if isinstance(exc, Exception)]
    if failed:
        row.lost += len(failed)
        row.examples.extend(failed)
        return
    link, other = documents
    vcon_uuid = link["uuid"]
    # The hook saved what it found: the link's copy, or save_vcon's if it got there first.
    hook_saved = link if results["hook saved"] == link["subject"] else other
    earlier, later = sorted(
        [(results["hook"], hook_saved), (results["save_vcon"], other)], key=lambda s: s[0]
    )
    stored = _in_database(services, vcon_uuid)
    if stored != later[1]:
        row.reverted += stored == earlier[1]
        row.lost += stored != earlier[1]
        row.examples.append(f"{vcon_uuid}: the database holds {_subject(stored)}")
    cached = client.json().get(f"vcon:{vcon_uuid}")  # what the conserver reads
    if cached is not None and cached != stored:
        row.stale += 1
        row.examples.append(f"vcon:{vcon_uuid} holds {_subject(cached)}, not {_subject(stored)}")
    row.operations += 1
    served = store.get_vcon(vcon_uuid)
    if served != stored:
        row.stale += 1
        row.examples.append(f"get {vcon_uuid}: {_subject(served)}, not {_subject(stored)}")


#: Scenarios that kill or freeze Redis: they need a Redis of their own.
KILLS_REDIS = frozenset({"breaker_recovery_through_the_hook", "redis_frozen_with_data"})

from .promise_direct import DIRECT_SCENARIOS  # noqa: E402 - they use this module's helpers

#: Every scenario of this module (and of promise_direct), in the order of the table.
SCENARIOS: tuple[Callable[[Services], PromiseRow], ...] = (
    replay_after_later_writes,
    replay_across_tenants,
    breaker_recovery_through_the_hook,
    redis_frozen_with_data,
    hook_race,
    *DIRECT_SCENARIOS,
)
