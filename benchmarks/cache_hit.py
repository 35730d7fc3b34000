"""Cache-hit ``get_vcon`` against the floor: the bare redis-py call that fetches the
same document on the same connection.

    python benchmarks/cache_hit.py [--iterations 5000] [--json FILE]

Starts an embedded Redis with RedisJSON and an embedded PostgreSQL (a hit never
touches it), saves one standard vCon (2 parties, 3 dialogs, 3 analyses, 2
attachments), then times, interleaved call by call, ``get_vcon`` against the floor: the
bare redis-py call on the storage's own client (its connection pool and settings),
and the same call on a client made with redis-py's defaults (``Redis.from_url``):

* RedisJSON key: ``get_vcon`` vs ``JSON.GET`` + ``json.loads``;
* string key (``cache_format: string``): ``get_vcon`` vs ``GET`` + ``json.loads``;
* the RedisJSON case again without the OpenTelemetry instruments (their cost when the
  ``opentelemetry`` API is installed without an SDK).

Prints p50/p95/mean in microseconds and the ratios to the floor (issue 18's target: at
most 1.1x at p50 and p95). Quote the ratios, not the absolute times.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks._report import command_line  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis, make_vcon  # noqa: E402


def standard_vcon(seed: int = 1) -> dict[str, Any]:
    """2 parties, 3 dialogs, 3 analyses, 2 attachments."""
    document = make_vcon(seed=seed, dialogs=3)
    document["attachments"].append(
        {"type": "transcript-meta", "encoding": "json", "body": {"words": 812, "lang": "en"}}
    )
    return document


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - started) / 1000


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(ordered[len(ordered) // 2], 1),
        "p95_us": round(ordered[int(len(ordered) * 0.95)], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


def compare(
    ours: Callable[[], Any], floor: Callable[[], Any], default: Callable[[], Any], iterations: int
) -> dict[str, Any]:
    calls = {"ours": ours, "floor": floor, "default client": default}
    for _ in range(200):  # warm up every path (scripts loaded, connections open)
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(iterations):
        for name, call in calls.items():
            samples[name].append(timed(call))
    a, b, c = (summary(samples[name]) for name in calls)
    return {
        "ours": a,
        "floor": b,
        "floor, default client": c,
        "ratio_p50": round(a["p50_us"] / b["p50_us"], 2),
        "ratio_p95": round(a["p95_us"] / b["p95_us"], 2),
        "ratio_mean": round(a["mean_us"] / b["mean_us"], 2),
        "ratio_p50_default_client": round(a["p50_us"] / c["p50_us"], 2),
    }


def misses(database_url: str, redis_url: str, iterations: int) -> dict[str, Any]:
    """A cache miss (get_vcon of an uncached vCon: the probe, the database read, the
    fill) against our read without the fill: the same miss with the fill taken out
    ("miss, no fill": the probe and the database read), and ``use_cache=False`` ("read":
    the database read alone); and the miss with a fill it waits for (the path before
    issue 18). They take turns call by call; the key is removed, untimed, before each."""
    options = {"database_url": database_url, "redis_url": redis_url}
    with (
        SupabaseStorage(options) as store,
        SupabaseStorage(options) as waiting,
        SupabaseStorage(options) as unfilled,
    ):
        waiting._redis._fills = None  # every fill waits for Redis's answer
        unfilled._redis.fill = lambda *_args, **_kwargs: False  # type: ignore[method-assign]
        documents = [standard_vcon(seed) for seed in range(2, 202)]
        store.save_many(documents)
        client: Any = store._redis._connection.client
        calls: dict[str, Callable[..., Any]] = {
            "miss + fill": store.get_vcon,
            "fill waited for": waiting.get_vcon,
            "miss, no fill": unfilled.get_vcon,
            "read": functools.partial(store.get_vcon, use_cache=False),
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for turn in range(iterations + 100):  # the first 100: warming up
            vcon_uuid = documents[turn % len(documents)]["uuid"]
            for name, call in calls.items():
                client.delete(store._redis.cache_key(vcon_uuid))
                took = timed(functools.partial(call, vcon_uuid))
                if turn >= 100:
                    samples[name].append(took)
        assert store.cache_stats()["fills"] == iterations + 100
    result: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    for name in ("miss + fill", "fill waited for"):
        for base in ("miss, no fill", "read"):
            for q in ("p50", "p95"):
                result[f"{name}, x {base} {q}"] = round(
                    result[name][f"{q}_us"] / result[base][f"{q}_us"], 2
                )
    return result


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        migrations.apply(postgres.url)
        document = standard_vcon()
        vcon_uuid = document["uuid"]
        cases = {
            "RedisJSON key": ({}, "JSON.GET", True),
            "string key": ({"cache_format": "string", "cache_key_prefix": "bench:"}, "GET", True),
            # The same as the first, with the OpenTelemetry instruments switched off (as
            # when the package is not installed): what the no-op spans cost.
            "RedisJSON, no otel": ({}, "JSON.GET", False),
        }
        for name, (extra, command, otel) in cases.items():
            options = {"database_url": postgres.url, "redis_url": redis_server.url, **extra}
            with SupabaseStorage(options) as store:
                if not otel:
                    store._telemetry._otel = None
                store.save_vcon(document)
                own: Any = store._redis._connection.client
                default: Any = redis.Redis.from_url(redis_server.url)
                key = f"{store.config.cache_key_prefix}{vcon_uuid}"
                assert store.get_vcon(vcon_uuid) == document
                assert json.loads(own.execute_command(command, key)) == document

                def bare(client: Any, key: str = key, command: str = command) -> Any:
                    return json.loads(client.execute_command(command, key))

                def ours(store: SupabaseStorage = store) -> Any:
                    return store.get_vcon(vcon_uuid)

                results[name] = compare(
                    ours, functools.partial(bare, own), functools.partial(bare, default),
                    args.iterations,
                )  # fmt: skip
        missed = misses(postgres.url, redis_server.url, max(args.iterations // 10, 50))
    print(f"cache-hit get_vcon vs the floor, {args.iterations} interleaved calls each")
    print(
        f"{'case':<20}{'ours p50/p95 us':>18}{'floor p50/p95 us':>19}"
        f"{'x p50':>8}{'x p95':>8}{'x p50, default client':>23}"
    )
    for name, r in results.items():
        print(
            f"{name:<20}{r['ours']['p50_us']:>9}/{r['ours']['p95_us']:<8}"
            f"{r['floor']['p50_us']:>10}/{r['floor']['p95_us']:<8}"
            f"{r['ratio_p50']:>8}{r['ratio_p95']:>8}{r['ratio_p50_default_client']:>23}"
        )
    print("cache miss + fill vs our read without the fill: p50/p95 us; x p50, x p95 of each")
    print(f"{'case':<20}{'p50/p95 us':>18}{'x miss, no fill':>20}{'x read':>16}")
    for name in ("miss + fill", "fill waited for", "miss, no fill", "read"):
        line = f"{name:<20}{missed[name]['p50_us']:>9}/{missed[name]['p95_us']:<8}"
        if name in ("miss + fill", "fill waited for"):
            for base in ("miss, no fill", "read"):
                line += (
                    f"{missed[f'{name}, x {base} p50']:>10}/{missed[f'{name}, x {base} p95']:<6}"
                )
        print(line)
    if args.json:
        results["miss + fill"] = missed
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
