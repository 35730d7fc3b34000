"""Redis Sentinel (or Cluster) failover under load: how long saves wait, and what they lose.

    python benchmarks/failover.py [--cluster] [--rounds 3] [--json FILE]

Each round starts a real deployment on 127.0.0.1 (a master and a replica with
RedisJSON, three sentinels with ``down-after-milliseconds 1000``, quorum 2), saves new
vCons in two threads through ``SupabaseStorage`` (embedded PostgreSQL, one chain list),
SIGKILLs the master after 0.5 s and keeps saving for 1 s after the sentinels promote
the replica. It runs twice per round, side by side:

* ``redis_failover_timeout: 8``: calls in the failover wait for the new master;
* ``redis_failover_timeout: 0``: no waiting, as with a plain ``redis://`` URL: calls in
  the failover fail (the vCon is saved in the database, the chain push is reported as
  ``ChainPushError``).

Reported per case: the promotion time (SIGKILL until the sentinels name the replica),
the slowest save, saves that raised, and saved uuids missing from the new master's
chain list or cache. The promotion time is the sentinels' (``down-after-milliseconds``
plus the election), not ours: a stock sentinel.conf says 30 s, not 1.

With ``--cluster`` the deployment is a Redis Cluster instead (three masters with a
replica each, RedisJSON, ``cluster-node-timeout 1000``; ``redis+cluster://``), and the
master killed is the one serving the chain list's slot (and a third of the cache
keys). The promotion time is then the cluster's: the replica noticing its master is
gone (``cluster-node-timeout``), its election, and the slots moving to it (a stock
redis.conf says 15000 ms).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import command_line, report  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres  # noqa: E402
from tests.support.cluster_deployment import ClusterDeployment  # noqa: E402
from tests.support.sentinel_deployment import SentinelDeployment, save_through_failover  # noqa: E402

TIMEOUTS = (8.0, 0.0)


def one(database_url: str, failover_timeout: float, cluster: bool = False) -> dict[str, Any]:
    with ClusterDeployment() if cluster else SentinelDeployment() as deployment:
        options = {
            "database_url": database_url,
            "redis_url": deployment.url,
            "redis_timeout": 0.5,
            "redis_failover_timeout": failover_timeout,
            "redis_cooldown": 1.0,
            "chain_lists": ["bench_failover"],
        }
        run = save_through_failover(deployment, options)
    return {
        "promoted_after_s": round(run.promoted_after, 2),
        "slowest_save_s": round(run.slowest_save, 2),
        "saves": len(run.saved) + len(run.failures),
        "saves_that_raised": len(run.failures),
        "saved_not_pushed": len([u for u in run.saved if u not in run.pushed]),
        "saved_not_cached": len([u for u in run.saved if u not in run.cached]),
        "errors": sorted({type(f).__name__ for f in run.failures}),
    }


def run(database_url: str, rounds: int, cluster: bool = False) -> dict[str, Any]:
    cases: dict[str, list[dict[str, Any]]] = {f"redis_failover_timeout {t:g}": [] for t in TIMEOUTS}
    for _ in range(rounds):
        for timeout in TIMEOUTS:  # interleaved: both cases see the same machine
            cases[f"redis_failover_timeout {timeout:g}"].append(one(database_url, timeout, cluster))
    summary = {
        name: {
            "median_promoted_after_s": statistics.median(r["promoted_after_s"] for r in runs),
            "max_slowest_save_s": max(r["slowest_save_s"] for r in runs),
            "saves_that_raised": sum(r["saves_that_raised"] for r in runs),
            "saves": sum(r["saves"] for r in runs),
            "saved_not_pushed": sum(r["saved_not_pushed"] for r in runs),
            "saved_not_cached": sum(r["saved_not_cached"] for r in runs),
        }
        for name, runs in cases.items()
    }
    deployment = "cluster" if cluster else "sentinel"
    results = {"deployment": deployment, "rounds": rounds, "cases": cases, "summary": summary}
    results["node_timeout_ms" if cluster else "down_after_ms"] = 1000
    return results


def render(results: dict[str, Any]) -> str:
    if results.get("deployment") == "cluster":
        title = f"cluster-node-timeout {results['node_timeout_ms']}"
        title = f"Redis Cluster failover under load, {results['rounds']} rounds per case ({title})"
    else:
        title = f"down-after-milliseconds {results['down_after_ms']}"
        title = f"Sentinel failover under load, {results['rounds']} rounds per case ({title})"
    lines = [
        title,
        f"{'case':<28}{'promoted s':>11}{'slowest save s':>16}{'raised':>8}"
        f"{'saves':>7}{'not pushed':>12}{'not cached':>12}",
    ]
    for name, s in results["summary"].items():
        lines.append(
            f"{name:<28}{s['median_promoted_after_s']:>11}{s['max_slowest_save_s']:>16}"
            f"{s['saves_that_raised']:>8}{s['saves']:>7}{s['saved_not_pushed']:>12}"
            f"{s['saved_not_cached']:>12}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cluster", action="store_true", help="a Redis Cluster instead of Sentinel"
    )
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres:
        migrations.apply(postgres.url)
        results = run(postgres.url, args.rounds, args.cluster)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
