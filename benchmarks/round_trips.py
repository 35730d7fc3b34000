"""Database round trips and latency per operation: this storage against the access
pattern of the original example design, side by side in one run.

    python benchmarks/round_trips.py [--latency 0.02] [--json FILE]

Both talk to the same embedded PostgreSQL (migrations applied) through the same TCP
proxy, which counts every request a client sends (a round trip: psycopg sends one
statement per request) and delays each by ``--latency`` seconds, and to the same
embedded Redis with RedisJSON.

The baseline re-implements the example's access pattern (vcon-mcp's
``examples/conserver-supabase-storage.py``) as a measurement device, not product code:
save = one upsert per row (vcons, then each party, dialog, analysis and attachment)
and ``SETEX`` of a JSON string; get miss = five selects (the vCon and each child
table) and ``SETEX``; get hit = ``GET`` + ``json.loads``; search = one select of the
matching uuids, then one read (five selects) per hit. The example sends these as
PostgREST requests; here they are SQL statements on the same tables, one request
each, which is the same number of round trips.

The vCon is the standard one: 2 parties, 3 dialogs, 3 analyses, 2 attachments. Search
returns 20 hits. Quote the ratios: absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import SupabaseStorage, migrations  # noqa: E402
from conserver_supabase.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from tests.faults import CuttableProxy, postgres_upstream  # noqa: E402

SEARCH_HITS = 20
MARK = "bench-round-trips"


class Baseline:
    """The example's access pattern: one request per row, five to read, N+1 to search."""

    def __init__(self, database_url: str, redis_client: Any) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
        self.redis = redis_client

    def save(self, vcon: dict[str, Any]) -> None:
        u = vcon["uuid"]
        self.conn.execute(
            "INSERT INTO vcons (uuid, subject, created_at, updated_at) VALUES (%s, %s, %s, now())"
            " ON CONFLICT (uuid) DO UPDATE SET subject = EXCLUDED.subject,"
            " updated_at = now()",
            [u, vcon.get("subject"), vcon["created_at"]],
        )
        for i, p in enumerate(vcon.get("parties", [])):
            self.conn.execute(
                "INSERT INTO parties (vcon_id, party_index, tel, mailto, name)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (vcon_id, party_index) DO UPDATE"
                " SET tel = EXCLUDED.tel, mailto = EXCLUDED.mailto, name = EXCLUDED.name",
                [u, i, p.get("tel"), p.get("mailto"), p.get("name")],
            )
        for i, d in enumerate(vcon.get("dialog", [])):
            self.conn.execute(
                "INSERT INTO dialog (vcon_id, dialog_index, type, start_time, parties, body,"
                " encoding) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (vcon_id, dialog_index) DO UPDATE SET type = EXCLUDED.type,"
                " body = EXCLUDED.body",
                [u, i, d["type"], d.get("start"), d.get("parties"), d.get("body"),
                 d.get("encoding")],
            )  # fmt: skip
        for i, a in enumerate(vcon.get("analysis", [])):
            self.conn.execute(
                "INSERT INTO analysis (vcon_id, analysis_index, type, vendor, body, encoding)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (vcon_id, analysis_index)"
                " DO UPDATE SET body = EXCLUDED.body",
                [u, i, a["type"], a.get("vendor", ""), json.dumps(a.get("body")),
                 a.get("encoding")],
            )  # fmt: skip
        for i, t in enumerate(vcon.get("attachments", [])):
            self.conn.execute(
                "INSERT INTO attachments (vcon_id, attachment_index, type, body, encoding)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (vcon_id, attachment_index)"
                " DO UPDATE SET body = EXCLUDED.body",
                [u, i, t.get("type"), json.dumps(t.get("body")), t.get("encoding")],
            )
        self.redis.set(f"baseline:{u}", json.dumps(vcon), ex=3600)

    def read(self, u: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT uuid, subject, created_at FROM vcons WHERE uuid = %s", [u]
        ).fetchone()
        if row is None:
            return None
        tables = (("parties", "party_index"), ("dialog", "dialog_index"),
                  ("analysis", "analysis_index"), ("attachments", "attachment_index"))  # fmt: skip
        vcon: dict[str, Any] = {"uuid": str(row[0]), "subject": row[1]}
        for table, index in tables:
            vcon[table] = self.conn.execute(
                f"SELECT * FROM {table} WHERE vcon_id = %s ORDER BY {index}",  # noqa: S608
                [u],
            ).fetchall()
        return vcon

    def get(self, u: str) -> Any:
        cached = self.redis.get(f"baseline:{u}")
        if cached is not None:
            return json.loads(cached)
        vcon = self.read(u)
        if vcon is not None:
            self.redis.set(f"baseline:{u}", json.dumps(vcon, default=str), ex=3600)
        return vcon

    def search(self, text: str) -> list[Any]:
        uuids = self.conn.execute(
            "SELECT uuid FROM vcons WHERE subject ILIKE %s ORDER BY created_at DESC LIMIT %s",
            [f"%{text}%", SEARCH_HITS],
        ).fetchall()
        return [self.read(str(u)) for (u,) in uuids]

    def delete(self, u: str) -> None:
        self.conn.execute("DELETE FROM vcons WHERE uuid = %s", [u])
        self.redis.delete(f"baseline:{u}")


def measure(proxy: CuttableProxy, call: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Round trips of one call (the same every time, checked) and its latency."""
    trips: list[int] = []
    times: list[float] = []
    for _ in range(repeat):
        before = proxy.requests
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        trips.append(proxy.requests - before)
    ordered = sorted(times)
    return {
        "round_trips": statistics.median(trips),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
    }


def run(database_url: str, redis_url: str, latency: float, repeat: int) -> dict[str, Any]:
    import redis

    connect, template = postgres_upstream(database_url)
    results: dict[str, Any] = {"latency_ms": latency * 1000, "operations": {}}
    with CuttableProxy(connect) as proxy:
        proxied = template.format(port=proxy.port)
        client = redis.Redis.from_url(redis_url)
        baseline = Baseline(proxied, client)
        options = {"database_url": proxied, "redis_url": redis_url, "pool_size": 1}
        with SupabaseStorage(options) as store:
            corpus = [standard_vcon(seed=1000 + i) for i in range(SEARCH_HITS)]
            for vcon in corpus:
                vcon["subject"] = f"{MARK} {vcon['subject']}"
            store.save_many(corpus)  # search corpus (the baseline reads the same rows)
            store.get_vcon(corpus[0]["uuid"])  # open the pool before counting
            proxy.latency = latency

            def fresh() -> dict[str, Any]:
                vcon = standard_vcon(seed=7)
                vcon["uuid"] = str(uuid.uuid4())
                return vcon

            ours: dict[str, Any] = {}
            base: dict[str, Any] = {}
            ours["save"] = measure(proxy, lambda: store.save_vcon(fresh()), repeat)
            base["save"] = measure(proxy, lambda: baseline.save(fresh()), repeat)

            misses = [fresh() for _ in range(repeat)]
            store.save_many(misses)
            for vcon in misses:
                baseline.save(vcon)
                client.delete(f"vcon:{vcon['uuid']}", f"baseline:{vcon['uuid']}")
            it = iter(misses)
            ours["get miss"] = measure(proxy, lambda: store.get_vcon(next(it)["uuid"]), repeat)
            it = iter(misses)
            base["get miss"] = measure(proxy, lambda: baseline.get(next(it)["uuid"]), repeat)
            hot = misses[0]["uuid"]
            ours["get hit"] = measure(proxy, lambda: store.get_vcon(hot), repeat * 3)
            base["get hit"] = measure(proxy, lambda: baseline.get(hot), repeat * 3)

            def our_search() -> None:
                page = store.search(text=MARK, limit=SEARCH_HITS, include_vcons=True)
                assert len(page) == SEARCH_HITS

            def base_search() -> None:
                assert len(baseline.search(MARK)) == SEARCH_HITS

            searches = max(3, repeat // 3)
            ours["search, 20 hits"] = measure(proxy, our_search, searches)
            base["search, 20 hits"] = measure(proxy, base_search, searches)
            victims = [fresh() for _ in range(repeat)]
            store.save_many(victims)
            it = iter(victims)
            ours["delete"] = measure(proxy, lambda: store.delete_vcon(next(it)["uuid"]), repeat)
            for vcon in victims:
                baseline.save(vcon)
            it = iter(victims)
            base["delete"] = measure(proxy, lambda: baseline.delete(next(it)["uuid"]), repeat)
            proxy.latency = 0.0
        baseline.conn.close()
        client.close()
    for name in ours:
        o, b = ours[name], base[name]
        results["operations"][name] = {
            "ours": o,
            "baseline": b,
            "latency_ratio_p50": round(o["p50_ms"] / b["p50_ms"], 3) if b["p50_ms"] else None,
        }
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"database round trips and latency per operation, {results['latency_ms']:g} ms "
        "added per request",
        f"{'operation':<18}{'trips ours':>11}{'baseline':>10}"
        f"{'ours p50/p95 ms':>20}{'baseline p50/p95 ms':>22}{'x p50':>8}",
    ]
    for name, r in results["operations"].items():
        o, b = r["ours"], r["baseline"]
        ratio = r["latency_ratio_p50"]
        lines.append(
            f"{name:<18}{o['round_trips']:>11g}{b['round_trips']:>10g}"
            f"{o['p50_ms']:>11}/{o['p95_ms']:<8}{b['p50_ms']:>12}/{b['p95_ms']:<9}"
            f"{ratio if ratio is not None else '-':>8}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        migrations.apply(postgres.url)
        results = run(postgres.url, redis_server.url, args.latency, args.repeat)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
