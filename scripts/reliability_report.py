"""The fault table and coherency counts of docs/reliability.md, measured.

Run from the repository root (``make reliability``, which installs the ``test``
extra)::

    python scripts/reliability_report.py [--duration 10] [--kill-rounds 30] [--json FILE]

It starts an embedded PostgreSQL (migrations applied) and its own embedded Redis with
RedisJSON, then runs every scenario of ``tests/support/fault_scenarios.py`` (4 threads saving
and reading for ``--duration`` seconds, the fault from 30 % to 70 % of the run), the
process-kill rounds and the randomized coherency run of ``tests/support/coherency.py``, and
prints the tables as Markdown. The runs use short bounds so they finish quickly:
``retry_deadline`` 0.5 s, database ``timeout`` 0.5 s, ``redis_timeout`` 0.25 s,
``redis_cooldown`` 0.5 s. Exit code 1 when any vCon was lost or half-written, or any
coherency check failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from tests.support.coherency import run_coherency  # noqa: E402
from tests.support.fault_scenarios import SCENARIOS, Services, run_kill, run_scenario  # noqa: E402
from tests.support.faults import CuttableProxy, postgres_upstream  # noqa: E402
from tests.support.postgrest_standin import PostgrestStandIn  # noqa: E402
from tests.support.promise_scenarios import SCENARIOS as PROMISE  # noqa: E402

KEY = "reliability-report-key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--kill-rounds", type=int, default=30)
    parser.add_argument("--coherency-operations", type=int, default=1000, help="per thread")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    # The runs fail on purpose: keep the expected errors and warnings off the report.
    logging.disable(logging.CRITICAL)

    results: dict[str, object] = {
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "duration": args.duration,
    }
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        migrations.apply(postgres.url)
        connect, template = postgres_upstream(postgres.url)
        faults = []
        with CuttableProxy(connect) as proxy, PostgrestStandIn(postgres.url, KEY) as stand_in:
            stand_in.hang_seconds = 2.0
            services = Services(
                database_url=postgres.url,
                proxied_url=template.format(port=proxy.port),
                redis=redis_server,
                proxy=proxy,
                stand_in=stand_in,
                key=KEY,
            )
            for scenario in SCENARIOS:
                redis_server.restart()  # empty and running
                began = time.monotonic()
                report = run_scenario(
                    scenario,
                    services,
                    duration=args.duration,
                    fault_at=0.3 * args.duration,
                    heal_at=0.7 * args.duration,
                )
                print(f"{scenario.name}: {time.monotonic() - began:.1f} s", file=sys.stderr)
                faults.append(dataclasses.asdict(report))
            promise = []
            for promised in PROMISE:
                redis_server.restart()
                row = promised(services)
                print(f"{row.scenario}: {row.operations} calls", file=sys.stderr)
                promise.append(dataclasses.asdict(row))
        results["faults"] = faults
        results["promise"] = promise
        redis_server.restart()
        kill = run_kill(postgres.url, redis_server.url, rounds=args.kill_rounds)
        results["kill"] = dataclasses.asdict(kill)
        redis_server.restart()
        coherency = run_coherency(
            {"database_url": postgres.url, "redis_url": redis_server.url, "pool_size": 8},
            operations=args.coherency_operations,
        )
        results["coherency"] = dataclasses.asdict(coherency)

    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    bad = (
        any(f["lost"] or f["unexpected"] or f["reads_wrong"] for f in faults)
        or any(
            p["lost"] or p["stale"] or p["reverted"] or p["slowest"] > p["bound"] for p in promise
        )
        or kill.lost
        or kill.half_written
        or coherency.violations
    )
    return 1 if bad else 0


def render(results: dict[str, object]) -> str:
    faults = results["faults"]
    kill = results["kill"]
    coherency = results["coherency"]
    assert isinstance(faults, list)
    assert isinstance(kill, dict)
    assert isinstance(coherency, dict)
    lines = [
        f"Measured on {results['machine']}; {results['duration']:g} s per scenario, "
        "fault from 30 % to 70 % of it.",
        "",
        "| scenario | saves | succeeded | journaled | refused | unpushed | lost "
        "| in DB after replay | reads (failed, wrong) | slowest call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in faults:
        kept = f["succeeded"] + f["journaled"] + f["unpushed"]
        lines.append(
            f"| {f['scenario']} | {f['attempted']} | {f['succeeded']} | {f['journaled']} "
            f"| {f['refused']} | {f['unpushed']} | {f['lost']} | {f['after_replay']}/{kept} "
            f"| {f['reads']} ({f['reads_failed']}, {f['reads_wrong']}) | {f['slowest']:.2f} s |"
        )
    lines += ["", *render_promise(results["promise"])]
    lines += [
        "",
        "| process killed mid-save | rounds | saves started | reported done | in flight at "
        "the kill | of those committed (whole) | half-written | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| SIGKILL at a random moment | {kill['rounds']} | {kill['started']} "
        f"| {kill['reported_done']} | {kill['in_flight']} | {kill['in_flight_committed']} "
        f"| {kill['half_written']} | {kill['lost']} |",
        "",
        "| coherency run | saves | gets | deletes | cache hits / misses / fills | cache samples "
        "| stale gets | stale cache | reappeared | differs after quiescence |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {coherency['threads']} threads, {coherency['uuids']} vCons "
        f"| {coherency['operations']['save']} | {coherency['operations']['get']} "
        f"| {coherency['operations']['delete']} | {coherency['cache_hits']} / "
        f"{coherency['cache_misses']} / {coherency['cache_fills']} "
        f"| {coherency['cache_samples']} | {coherency['stale_gets']} "
        f"| {coherency['stale_cache']} | {coherency['reappeared']} "
        f"| {coherency['final_mismatches'] + coherency['final_get_mismatches']} |",
    ]
    return "\n".join(lines)


def render_promise(rows: object) -> list[str]:
    """The second table: the promise (nothing lost, stale or reverted; bounded calls)."""
    assert isinstance(rows, list)
    lines = [
        "| scenario | calls | lost | stale reads | reverted | slowest call | bound |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['operations']} | {r['lost']} | {r['stale']} "
            f"| {r['reverted']} | {r['slowest']:.2f} s | {r['bound']:.2f} s |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
