"""Fault-injection runs on real services, with a per-scenario count of what happened to
every save: used by ``tests/acceptance/test_faults.py`` (which asserts the counts) and by
``scripts/reliability_report.py`` (which prints the table in docs/reliability.md).

A run: ``threads`` workers save new vCons (some through the conserver's path: a
RedisJSON working copy, then ``save_working_copy``) and read back saved ones for
``duration`` seconds; a fault is injected at ``fault_at`` and healed at ``heal_at``.
Then every attempted save is reconciled against the database and the failed-save
journal, the journal is replayed, and reconciled again:

* ``succeeded``: the save returned (the vCon is committed);
* ``journaled``: it raised ``DatabaseError`` saying the vCon is on the journal;
* ``refused``: it raised saying the vCon could NOT be journaled (the caller was told
  and still holds it: only when Redis is down too);
* ``unpushed``: it committed but raised ``ChainPushError`` (a chain list missed it);
* ``lost``: the package answered success or "journaled" and the vCon is neither in the
  database (with exactly that document) nor on the journal. Must be 0;
* ``after replay``: vCons in the database once the journal was replayed, of those
  that succeeded, were journaled or were unpushed.

``process killed mid-save`` is separate (:func:`run_kill`): a child process saving in a
loop is killed with SIGKILL at random moments; every vCon it started must be either
entirely in the database or not at all, and every save it reported done must be there.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from conserver_supabase import (
    ChainPushError,
    DatabaseError,
    SupabaseStorage,
)
from conserver_supabase.testing import make_vcon

ROOT = Path(__file__).resolve().parents[2]
CHAIN = "egress"
JOURNAL = "conserver_supabase:journal"

#: Bounds of every call in the runs (small, so a run takes seconds).
OPTIONS: dict[str, Any] = {
    "retry_deadline": 0.5,
    "timeout": 0.5,
    "redis_timeout": 0.25,
    "redis_cooldown": 0.5,
    "cache_ttl": 600,
    "chain_lists": [CHAIN],
}


@dataclasses.dataclass
class FaultReport:
    scenario: str
    attempted: int = 0
    succeeded: int = 0
    journaled: int = 0
    refused: int = 0
    unpushed: int = 0
    unexpected: int = 0  # any other exception (a bug): must be 0
    lost: int = 0
    after_replay: int = 0  # in the database after the replay
    reads: int = 0
    reads_failed: int = 0
    reads_wrong: int = 0  # a read of a saved vCon that returned nothing or another document
    slowest: float = 0.0  # seconds, the longest single call
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def kept(self) -> int:
        """Saves the package answered for: committed, journaled or committed-unpushed."""
        return self.succeeded + self.journaled + self.unpushed


@dataclasses.dataclass
class Services:
    """What the scenarios can break. ``redis`` is an EmbeddedRedis (kill/restart/pid),
    ``proxy`` a CuttableProxy in front of PostgreSQL, ``stand_in`` a PostgrestStandIn."""

    database_url: str
    proxied_url: str  # the same database through ``proxy``
    redis: Any
    proxy: Any
    stand_in: Any
    key: str


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    transport: str  # postgres (through the proxy) | postgrest (the stand-in)
    inject: Callable[[Services], None]
    heal: Callable[[Services], None]
    conserver_share: float = 0.5  # saves through the conserver's working copy


def _noop(_: Services) -> None:
    pass


def _sticky(fault: str | None) -> Callable[[Services], None]:
    def apply(services: Services) -> None:
        services.stand_in.sticky = fault

    return apply


def _slow(latency: float) -> Callable[[Services], None]:
    def apply(services: Services) -> None:
        services.stand_in.latency = latency

    return apply


def _both_down(services: Services) -> None:
    services.proxy.cut()
    services.redis.kill()


def _both_up(services: Services) -> None:
    services.redis.restart()
    services.proxy.restore()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("no fault", "postgres", _noop, _noop),
    Scenario(
        "Redis killed, then restarted",
        "postgres",
        lambda s: s.redis.kill(),
        lambda s: s.redis.restart(),
        conserver_share=0.0,
    ),
    Scenario(
        "Redis frozen (SIGSTOP), then thawed",
        "postgres",
        lambda s: os.kill(s.redis.pid, signal.SIGSTOP),
        lambda s: os.kill(s.redis.pid, signal.SIGCONT),
        conserver_share=0.0,
    ),
    Scenario(
        "database unreachable (connections cut, refused)",
        "postgres",
        lambda s: s.proxy.cut(),
        lambda s: s.proxy.restore(),
    ),
    Scenario("PostgREST answers 503", "postgrest", _sticky("503"), _sticky(None)),
    Scenario("PostgREST hangs (no answer)", "postgrest", _sticky("hang"), _sticky(None)),
    Scenario("PostgREST resets connections", "postgrest", _sticky("reset"), _sticky(None)),
    Scenario(
        "PostgREST commits, then the answer is lost",
        "postgrest",
        _sticky("commit-then-reset"),
        _sticky(None),
    ),
    Scenario("PostgREST slow (+300 ms per request)", "postgrest", _slow(0.3), _slow(0.0)),
    Scenario(
        "database and Redis down together",
        "postgres",
        _both_down,
        _both_up,
        conserver_share=0.0,
    ),
)


def run_scenario(
    scenario: Scenario,
    services: Services,
    *,
    threads: int = 4,
    duration: float = 2.5,
    fault_at: float = 0.6,
    heal_at: float = 1.8,
    seed: int = 1,
) -> FaultReport:
    """Run one scenario and return its counts. Bounded: ``duration`` plus the calls in
    flight at its end (each bounded by the retry deadline and the timeouts)."""
    run = _ScenarioRun(scenario, services, duration=duration, seed=seed)
    workers = [threading.Thread(target=run.worker, args=(i,)) for i in range(threads)]
    controller = threading.Thread(target=run.timeline, args=(fault_at, heal_at))
    controller.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    controller.join()
    run.store.close()
    return run.reconcile()


class _ScenarioRun:
    """One scenario's traffic (saves through the conserver hook or save_vcon, reads) and
    what each save answered, then reconciled with the database and the journal."""

    def __init__(self, scenario: Scenario, services: Services, *, duration: float, seed: int):
        import redis

        self.scenario, self.services, self.seed = scenario, services, seed
        self.options: dict[str, Any] = {**OPTIONS, "redis_url": services.redis.url}
        if scenario.transport == "postgres":
            self.options["database_url"] = services.proxied_url
        else:
            self.options.update(url=services.stand_in.url, key=services.key)
        self.report = FaultReport(scenario.name)
        self.lock = threading.Lock()
        self.outcome: dict[str, str] = {}  # uuid -> succeeded | journaled | refused | ...
        self.documents: dict[str, dict[str, Any]] = {}
        self.saved: list[str] = []
        self.store = SupabaseStorage(self.options)
        self.helper = redis.Redis.from_url(services.redis.url, socket_timeout=0.25)
        self.start = time.monotonic()
        self.end = self.start + duration

    def worker(self, index: int) -> None:
        rng = random.Random(self.seed * 101 + index)  # noqa: S311 - a schedule
        while time.monotonic() < self.end:
            if self.saved and rng.random() < 0.4:
                self.read(rng.choice(self.saved))
            else:
                self.save(rng)

    def read(self, vcon_uuid: str) -> None:
        began = time.monotonic()
        wrong = 0
        try:
            wrong = int(self.store.get_vcon(vcon_uuid) != self.documents[vcon_uuid])
            failed = 0
        except DatabaseError:
            failed = 1
        took = time.monotonic() - began
        with self.lock:
            self.report.reads += 1
            self.report.reads_failed += failed
            self.report.reads_wrong += wrong
            self.report.slowest = max(self.report.slowest, took)

    def save(self, rng: random.Random) -> None:
        import redis

        document = make_vcon(
            seed=rng.randrange(10**6), vcon_uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4))
        )
        vcon_uuid = document["uuid"]
        through_conserver = rng.random() < self.scenario.conserver_share
        if through_conserver:
            try:  # the conserver holds its vCon in Redis first; if it cannot, no save
                self.helper.json().set(f"vcon:{vcon_uuid}", "$", document)
                self.helper.expire(f"vcon:{vcon_uuid}", 600)
            except redis.RedisError:
                return
        with self.lock:
            self.report.attempted += 1
            self.documents[vcon_uuid] = document
        began = time.monotonic()
        result = self._saved(document, through_conserver)
        took = time.monotonic() - began
        with self.lock:
            self.outcome[vcon_uuid] = result
            self.report.slowest = max(self.report.slowest, took)
            if result in ("succeeded", "unpushed"):
                self.saved.append(vcon_uuid)

    def _saved(self, document: dict[str, Any], through_conserver: bool) -> str:
        try:
            if through_conserver:
                self.store.save_working_copy(document["uuid"])
            else:
                self.store.save_vcon(document)
            return "succeeded"
        except ChainPushError:
            return "unpushed"
        except DatabaseError as exc:
            return "journaled" if exc.journaled else "refused"
        except Exception as exc:  # a bug: counted and shown
            with self.lock:
                if len(self.report.examples) < 5:
                    self.report.examples.append(f"{type(exc).__name__}: {exc}")
            return "unexpected"

    def timeline(self, fault_at: float, heal_at: float) -> None:
        time.sleep(max(0.0, self.start + fault_at - time.monotonic()))
        self.scenario.inject(self.services)
        time.sleep(max(0.0, self.start + heal_at - time.monotonic()))
        self.scenario.heal(self.services)

    def reconcile(self) -> FaultReport:
        """Count the outcomes; every save answered as done or journaled must be in the
        database or on the journal (else lost); replay, then count what is saved."""
        report, helper = self.report, self.helper
        for result in self.outcome.values():
            setattr(report, result, getattr(report, result) + 1)
        answered = {
            u for u, r in self.outcome.items() if r in ("succeeded", "unpushed", "journaled")
        }
        in_database = _documents(self.services.database_url)
        journal = {u.decode() for u in helper.lrange(JOURNAL, 0, -1)}
        for vcon_uuid in answered:
            held = in_database.get(vcon_uuid) == self.documents[vcon_uuid]
            if not held and not (vcon_uuid in journal and _journal_has(helper, vcon_uuid)):
                report.lost += 1
                if len(report.examples) < 5:
                    report.examples.append(f"lost {vcon_uuid} ({self.outcome[vcon_uuid]})")
        with SupabaseStorage({**self.options, "redis_cooldown": 0}) as replayer:
            replayer.replay_journal()
        in_database = _documents(self.services.database_url)
        report.after_replay = sum(1 for u in answered if in_database.get(u) == self.documents[u])
        helper.close()
        return report


def _journal_has(client: Any, vcon_uuid: str) -> bool:
    return bool(client.exists(f"{JOURNAL}:vcon:{vcon_uuid}", f"vcon:{vcon_uuid}"))


def _documents(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT uuid::text, document FROM conserver_vcon_documents")
        return dict(rows.fetchall())


# --- the process killed mid-save ------------------------------------------------------


@dataclasses.dataclass
class KillReport:
    rounds: int = 0
    started: int = 0  # saves the child began
    reported_done: int = 0  # saves the child saw return
    in_flight: int = 0  # begun, not seen to return when the child died
    in_flight_committed: int = 0  # of those, committed anyway (whole)
    half_written: int = 0  # rows without their document, or counts that differ: must be 0
    lost: int = 0  # reported done but not in the database: must be 0
    cached_without_row: int = 0  # a cache key or chain entry for a vCon not committed
    examples: list[str] = dataclasses.field(default_factory=list)


#: Big enough that a save's transaction takes a few milliseconds, so kills land inside.
_KILL_DIALOGS = 60


def _kill_document(seed: int, index: int) -> dict[str, Any]:
    return make_vcon(seed=seed * 100_000 + index, dialogs=_KILL_DIALOGS)


def child(database_url: str, redis_url: str, seed: int) -> None:
    """The process that gets killed: saves vCons in a loop, saying when each starts and ends."""
    options = {**OPTIONS, "database_url": database_url, "redis_url": redis_url}
    with SupabaseStorage(options) as store:
        print("ready", flush=True)
        for index in range(10**6):
            document = _kill_document(seed, index)
            print("start", index, document["uuid"], flush=True)
            store.save_vcon(document)
            print("done", index, flush=True)


def run_kill(database_url: str, redis_url: str, *, rounds: int = 10, seed: int = 1) -> KillReport:
    """Kill a saving child process ``rounds`` times at random moments; check every vCon."""
    import redis

    report = KillReport()
    rng = random.Random(seed)  # noqa: S311 - a schedule
    started: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    in_flight: set[str] = set()
    for round_index in range(rounds):
        round_seed = seed * 1000 + round_index
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fault_scenarios",
                "child",
                database_url,
                redis_url,
                str(round_seed),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(process.stdout,))
        reader.start()
        deadline = time.monotonic() + 30
        while "ready\n" not in lines and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)
        process.stdout.close()
        report.rounds += 1
        pending: dict[int, str] = {}
        for line in lines:
            if not line.endswith("\n"):
                continue  # cut by the kill while printed: that save had not begun
            parts = line.split()
            if parts[:1] == ["start"]:
                index, vcon_uuid = int(parts[1]), parts[2]
                pending[index] = vcon_uuid
                started[vcon_uuid] = _kill_document(round_seed, index)
                report.started += 1
            elif parts[:1] == ["done"]:
                done.add(pending.pop(int(parts[1])))
                report.reported_done += 1
        report.in_flight += len(pending)
        in_flight.update(pending.values())
    client = redis.Redis.from_url(redis_url)
    chain = {u.decode() for u in client.lrange(CHAIN, 0, -1)}
    with psycopg.connect(database_url) as conn:
        for vcon_uuid, document in started.items():
            state = _whole(conn, vcon_uuid, document, report)
            if vcon_uuid in in_flight and state == "whole":
                report.in_flight_committed += 1
            if vcon_uuid in done and state != "whole":
                report.lost += 1
            if state != "whole" and (client.exists(f"vcon:{vcon_uuid}") or vcon_uuid in chain):
                report.cached_without_row += 1
    client.close()
    return report


def _whole(conn: Any, vcon_uuid: str, document: dict[str, Any], report: KillReport) -> str:
    """``whole`` (every row and the document), ``absent`` (nothing), else counts a
    half-written vCon and returns ``half``."""
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM vcons WHERE uuid = %(u)s),"
        " (SELECT count(*) FROM conserver_vcon_documents WHERE uuid = %(u)s),"
        " (SELECT count(*) FROM parties WHERE vcon_id = %(u)s),"
        " (SELECT count(*) FROM dialog WHERE vcon_id = %(u)s),"
        " (SELECT count(*) FROM analysis WHERE vcon_id = %(u)s),"
        " (SELECT count(*) FROM attachments WHERE vcon_id = %(u)s)",
        {"u": vcon_uuid},
    ).fetchone()
    expected = (
        1,
        1,
        len(document["parties"]),
        len(document["dialog"]),
        len(document.get("analysis", [])),
        len(document.get("attachments", [])),
    )
    if tuple(counts) == (0, 0, 0, 0, 0, 0):
        return "absent"
    stored = conn.execute(
        "SELECT document FROM conserver_vcon_documents WHERE uuid = %s", [vcon_uuid]
    ).fetchone()
    if tuple(counts) == expected and stored is not None and stored[0] == document:
        return "whole"
    report.half_written += 1
    if len(report.examples) < 5:
        report.examples.append(f"{vcon_uuid}: rows {tuple(counts)}, expected {expected}")
    return "half"


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(
            "usage: python -m tests.support.fault_scenarios child DATABASE_URL REDIS_URL SEED"
        )
