"""The change feed's lag: from another writer's commit to our cache no longer serving the
old vCon, under a stream of foreign edits.

    python benchmarks/feed_lag.py [--samples 200] [--rate 50] [--json FILE]

An embedded PostgreSQL and an embedded Redis with RedisJSON. ``--vcons`` standard vCons
are saved through the storage and cached (under ``cache:``, a prefix whose keys the
consumer removes). A background writer updates random vCons' subjects as another writer
would (vcon-mcp's updateVCon: one UPDATE of ``vcons`` in its own transaction) at
``--rate`` edits per second; meanwhile each sample edits one more vCon the same way,
at a random moment of the poll interval, takes the time its COMMIT returned, and watches
Redis (every 0.5 ms) until the cached key is gone: the lag. Two consumers, one after the
other, with the default ``feed_poll_interval`` (0.5 s):

* listen: the direct transport (``database_url``), woken by LISTEN/NOTIFY;
* poll: the PostgREST transport (the stand-in of tests/support/postgrest_standin.py in
  front of the same database), polling only, as on hosted Supabase through its API.

Reported: p50, p99 and max lag in ms, and how many foreign edits the consumer applied
meanwhile. The save path's cost of the log itself is benchmarks/change_feed.py.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from benchmarks._report import command_line  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

KEY = "bench-service-key"
#: The default feed_poll_interval.
POLL_INTERVAL = 0.5
PREFIX = "cache:"


class Stream:
    """Foreign edits of random vCons at ``rate`` per second, in a thread, until stopped."""

    def __init__(self, database_url: str, uuids: list[str], rate: float) -> None:
        self._url, self._uuids, self._rate = database_url, uuids, rate
        self._stop = threading.Event()
        self.edits = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pace = random.Random(7)  # noqa: S311 - a schedule
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(1 / self._rate):
                edit(conn, pace.choice(self._uuids))
                self.edits += 1


def edit(conn: Any, u: str) -> None:
    """vcon-mcp's updateVCon: subject and updated_at, one statement, its own transaction."""
    conn.execute(
        "UPDATE vcons SET subject = %s, updated_at = now() WHERE uuid = %s",
        [f"edited {uuid.uuid4()}", u],
    )


def measure(
    options: dict[str, Any], database_url: str, redis_url: str, samples: int, rate: float,
    vcons: int,
) -> dict[str, Any]:  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    with SupabaseStorage({**options, "redis_url": redis_url, "cache_key_prefix": PREFIX}) as store:
        documents = [standard_vcon(i) for i in range(vcons)]
        for document in documents:
            document["uuid"] = str(uuid.uuid4())
        store.save_many(documents)
        uuids = [d["uuid"] for d in documents]
        noise, measured = uuids[: vcons // 2], uuids[vcons // 2 :]
        feed = store.change_feed(f"bench-{uuid.uuid4()}")
        feed.poll()  # a new cursor catches up first
        feed.start()
        lags: list[float] = []
        try:
            with (
                Stream(database_url, noise, rate) as stream,
                psycopg.connect(database_url, autocommit=True) as conn,
            ):
                jitter = random.Random(11)  # noqa: S311 - a schedule
                for i in range(samples):
                    u = measured[i % len(measured)]
                    # at a random point of the poll interval, not just after a round
                    time.sleep(jitter.uniform(0, POLL_INTERVAL))
                    store.get_vcon(u)  # cached
                    if not client.exists(PREFIX + u):
                        continue  # a change of this vCon is still being applied
                    edit(conn, u)
                    committed = time.perf_counter()
                    while client.exists(PREFIX + u):
                        time.sleep(0.0005)
                    lags.append(time.perf_counter() - committed)
                edits = stream.edits
        finally:
            feed.stop()
    client.close()
    cuts = statistics.quantiles(lags, n=100, method="inclusive")
    return {
        "samples": len(lags),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(lags) * 1000, 1),
        "stream_edits": edits,
    }


def main() -> int:
    from tests.support.postgrest_standin import PostgrestStandIn

    parser = command_line(__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="foreign edits per second")
    parser.add_argument("--vcons", type=int, default=400)
    args = parser.parse_args()
    results: dict[str, Any] = {"rate": args.rate, "feed_poll_interval": POLL_INTERVAL}
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        migrations.apply(postgres.url)
        results["listen"] = measure(
            {"database_url": postgres.url}, postgres.url, redis_server.url, args.samples,
            args.rate, args.vcons,
        )  # fmt: skip
        with PostgrestStandIn(postgres.url, key=KEY) as api:
            results["poll"] = measure(
                {"url": api.url, "key": KEY}, postgres.url, redis_server.url,
                max(20, args.samples // 2), args.rate, args.vcons,
            )  # fmt: skip
    print(f"feed lag under {args.rate:.0f} foreign edits/s (feed_poll_interval 0.5 s)")
    print(f"{'consumer':<10}{'samples':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'stream':>9}")
    for name in ("listen", "poll"):
        r = results[name]
        print(f"{name:<10}{r['samples']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}"
              f"{r['stream_edits']:>9}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
