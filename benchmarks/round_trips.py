"""Database round trips and latency per operation: this storage against the access
pattern of the original example design, side by side in one run, over both transports.

    python benchmarks/round_trips.py [--latency 0.02] [--transport both|psycopg|postgrest]
                                     [--repeat 15] [--json FILE]

Everything talks to the same embedded PostgreSQL (migrations applied) and the same
embedded Redis with RedisJSON. Each request to the database is delayed by
``--latency`` seconds and counted (a round trip):

* psycopg transport: through a TCP proxy that counts every request a client sends
  (psycopg sends one statement per request) and delays each;
* PostgREST transport: through the PostgREST stand-in (``tests/support/postgrest_standin.py``,
  PostgREST itself cannot be installed here), which counts and delays every HTTP
  request. Our storage uses supabase-py; the baseline speaks PostgREST's table API with
  httpx, as the example does with supabase-py.

The baseline re-implements the example's access pattern (vcon-mcp's
``examples/conserver-supabase-storage.py``) as a measurement device, not product code:
save = one upsert per row (vcons, then each party, dialog, analysis and attachment)
and ``SETEX`` of a JSON string; get miss = five selects (the vCon and each child
table) and ``SETEX``; get hit = ``GET`` + ``json.loads``; search = one select of the
matching uuids (subject ``ILIKE``, newest first, 20 at most), then one read (five
selects) per hit; delete = one delete (the children go by ``ON DELETE CASCADE``). Over
psycopg these are SQL statements on the same tables, one request each, which is the
same number of round trips as the example's PostgREST requests; over PostgREST they
are those requests (``POST /rest/v1/<table>?on_conflict=...`` with ``Prefer:
resolution=merge-duplicates``, ``GET ...?vcon_id=eq.<uuid>&order=...``, ``DELETE``).
The vcons upsert conflicts on ``uuid`` (the example: ``id``, which it sets to the uuid;
rows written by this storage keep their own ``id``).

The vCon is the standard one: 2 parties, 3 dialogs, 3 analyses, 2 attachments. Search
returns 20 hits. Quote the ratios: absolute times depend on the machine.

The JSON (``--json``): ``latency_ms``; ``operations`` (the psycopg transport, when
run); ``postgrest`` = ``{"operations": ...}`` (when run). Each ``operations`` maps an
operation to ``{"ours", "baseline"}`` (each ``round_trips``, ``p50_ms``, ``p95_ms``)
and ``latency_ratio_p50`` / ``latency_ratio_p95``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from tests.support.faults import CuttableProxy, postgres_upstream  # noqa: E402
from tests.support.postgrest_standin import PostgrestStandIn  # noqa: E402

SEARCH_HITS = 20
MARK = "bench-round-trips"
KEY = "bench-service-key"
TRANSPORTS = ("psycopg", "postgrest")
#: The child tables and their index column, in the order the example reads them.
CHILDREN = (("parties", "party_index"), ("dialog", "dialog_index"),
            ("analysis", "analysis_index"), ("attachments", "attachment_index"))  # fmt: skip


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
        vcon: dict[str, Any] = {"uuid": str(row[0]), "subject": row[1]}
        for table, index in CHILDREN:
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


class RestBaseline:
    """The example's access pattern as PostgREST requests: one upsert request per row,
    five GETs to read, one GET then five per hit to search, one DELETE."""

    def __init__(self, url: str, key: str, redis_client: Any) -> None:
        headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        self.http = httpx.Client(base_url=f"{url}/rest/v1", headers=headers, timeout=30)
        self.redis = redis_client

    def _upsert(self, table: str, key: str, row: dict[str, Any]) -> None:
        response = self.http.post(
            f"/{table}",
            params={"on_conflict": key},
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
            json=row,
        )
        response.raise_for_status()

    def _get(self, table: str, **params: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/{table}", params=params)
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows

    def _child(self, table: str, index: str, u: str, i: int, **row: Any) -> None:
        self._upsert(table, f"vcon_id,{index}", {"vcon_id": u, index: i, **row})

    def save(self, vcon: dict[str, Any]) -> None:
        u = vcon["uuid"]
        now = datetime.now(UTC).isoformat()
        row = {"uuid": u, "subject": vcon.get("subject"), "created_at": vcon["created_at"]}
        self._upsert("vcons", "uuid", {**row, "updated_at": now})
        for i, p in enumerate(vcon.get("parties", [])):
            self._child("parties", "party_index", u, i,
                        tel=p.get("tel"), mailto=p.get("mailto"), name=p.get("name"))  # fmt: skip
        for i, d in enumerate(vcon.get("dialog", [])):
            self._child("dialog", "dialog_index", u, i, type=d["type"],
                        start_time=d.get("start"), parties=d.get("parties"),
                        body=d.get("body"), encoding=d.get("encoding"))  # fmt: skip
        for i, a in enumerate(vcon.get("analysis", [])):
            self._child("analysis", "analysis_index", u, i, type=a["type"],
                        vendor=a.get("vendor", ""), body=json.dumps(a.get("body")),
                        encoding=a.get("encoding"))  # fmt: skip
        for i, t in enumerate(vcon.get("attachments", [])):
            self._child("attachments", "attachment_index", u, i, type=t.get("type"),
                        body=json.dumps(t.get("body")), encoding=t.get("encoding"))  # fmt: skip
        self.redis.set(f"baseline:{u}", json.dumps(vcon), ex=3600)

    def read(self, u: str) -> dict[str, Any] | None:
        rows = self._get("vcons", select="uuid,subject,created_at", uuid=f"eq.{u}")
        if not rows:
            return None
        vcon: dict[str, Any] = dict(rows[0])
        for table, index in CHILDREN:
            vcon[table] = self._get(table, select="*", vcon_id=f"eq.{u}", order=f"{index}.asc")
        return vcon

    def get(self, u: str) -> Any:
        cached = self.redis.get(f"baseline:{u}")
        if cached is not None:
            return json.loads(cached)
        vcon = self.read(u)
        if vcon is not None:
            self.redis.set(f"baseline:{u}", json.dumps(vcon), ex=3600)
        return vcon

    def search(self, text: str) -> list[Any]:
        rows = self._get("vcons", select="uuid", subject=f"ilike.*{text}*",
                         order="created_at.desc", limit=str(SEARCH_HITS))  # fmt: skip
        return [self.read(row["uuid"]) for row in rows]

    def delete(self, u: str) -> None:
        self.http.delete("/vcons", params={"uuid": f"eq.{u}"}).raise_for_status()
        self.redis.delete(f"baseline:{u}")

    def close(self) -> None:
        self.http.close()


def measure(count: Callable[[], int], call: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Round trips of one call (the median of ``count()`` deltas) and its latency."""
    trips: list[int] = []
    times: list[float] = []
    for _ in range(repeat):
        before = count()
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        trips.append(count() - before)
    ordered = sorted(times)
    return {
        "round_trips": statistics.median(trips),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
    }


def compare(
    store: SupabaseStorage,
    baseline: Baseline | RestBaseline,
    client: Any,
    count: Callable[[], int],
    set_latency: Callable[[float], None],
    latency: float,
    repeat: int,
) -> dict[str, Any]:
    """Every operation, ours then the baseline's, with ``latency`` per request."""
    corpus = [standard_vcon(seed=1000 + i) for i in range(SEARCH_HITS)]
    for vcon in corpus:
        vcon["subject"] = f"{MARK} {vcon['subject']}"
    store.save_many(corpus)  # search corpus (the baseline reads the same rows)
    store.get_vcon(corpus[0]["uuid"])  # open the pool before counting
    baseline.get(corpus[0]["uuid"])
    set_latency(latency)

    def fresh() -> dict[str, Any]:
        vcon = standard_vcon(seed=7)
        vcon["uuid"] = str(uuid.uuid4())
        return vcon

    ours: dict[str, Any] = {}
    base: dict[str, Any] = {}
    ours["save"] = measure(count, lambda: store.save_vcon(fresh()), repeat)
    base["save"] = measure(count, lambda: baseline.save(fresh()), repeat)

    misses = [fresh() for _ in range(repeat)]
    store.save_many(misses)
    for vcon in misses:
        baseline.save(vcon)
        client.delete(f"vcon:{vcon['uuid']}", f"baseline:{vcon['uuid']}")
    it = iter(misses)
    ours["get miss"] = measure(count, lambda: store.get_vcon(next(it)["uuid"]), repeat)
    it = iter(misses)
    base["get miss"] = measure(count, lambda: baseline.get(next(it)["uuid"]), repeat)
    hot = misses[0]["uuid"]
    ours["get hit"] = measure(count, lambda: store.get_vcon(hot), repeat * 3)
    base["get hit"] = measure(count, lambda: baseline.get(hot), repeat * 3)

    def our_search() -> None:
        page = store.search(text=MARK, limit=SEARCH_HITS, include_vcons=True)
        assert len(page) == SEARCH_HITS

    def base_search() -> None:
        assert len(baseline.search(MARK)) == SEARCH_HITS

    searches = max(3, repeat // 3)
    ours["search, 20 hits"] = measure(count, our_search, searches)
    base["search, 20 hits"] = measure(count, base_search, searches)
    victims = [fresh() for _ in range(repeat)]
    store.save_many(victims)
    it = iter(victims)
    ours["delete"] = measure(count, lambda: store.delete_vcon(next(it)["uuid"]), repeat)
    for vcon in victims:
        baseline.save(vcon)
    it = iter(victims)
    base["delete"] = measure(count, lambda: baseline.delete(next(it)["uuid"]), repeat)
    set_latency(0.0)
    return {
        name: {
            "ours": ours[name],
            "baseline": base[name],
            "latency_ratio_p50": (
                round(ours[name]["p50_ms"] / base[name]["p50_ms"], 3)
                if base[name]["p50_ms"]
                else None
            ),
            "latency_ratio_p95": (
                round(ours[name]["p95_ms"] / base[name]["p95_ms"], 3)
                if base[name]["p95_ms"]
                else None
            ),
        }
        for name in ours
    }


def _over_psycopg(
    database_url: str, redis_url: str, client: Any, latency: float, repeat: int
) -> dict[str, Any]:
    connect, template = postgres_upstream(database_url)
    with CuttableProxy(connect) as proxy:
        proxied = template.format(port=proxy.port)
        baseline = Baseline(proxied, client)
        options = {"database_url": proxied, "redis_url": redis_url, "pool_size": 1}
        try:
            with SupabaseStorage(options) as store:

                def count() -> int:
                    return proxy.requests

                def set_latency(seconds: float) -> None:
                    proxy.latency = seconds

                return compare(store, baseline, client, count, set_latency, latency, repeat)
        finally:
            baseline.conn.close()


def _over_postgrest(
    database_url: str, redis_url: str, client: Any, latency: float, repeat: int
) -> dict[str, Any]:
    with PostgrestStandIn(database_url, key=KEY) as standin:
        baseline = RestBaseline(standin.url, KEY, client)
        options = {"url": standin.url, "key": KEY, "redis_url": redis_url}
        try:
            with SupabaseStorage(options) as store:

                def count() -> int:
                    return len(standin.requests)

                def set_latency(seconds: float) -> None:
                    standin.latency = seconds

                return compare(store, baseline, client, count, set_latency, latency, repeat)
        finally:
            baseline.close()


def run(
    database_url: str,
    redis_url: str,
    latency: float,
    repeat: int,
    transports: Sequence[str] = ("psycopg",),
) -> dict[str, Any]:
    """The comparison over each of ``transports`` (``psycopg``, ``postgrest``): the
    psycopg one under ``operations``, the PostgREST one under ``postgrest``."""
    import redis

    results: dict[str, Any] = {"latency_ms": latency * 1000}
    client = redis.Redis.from_url(redis_url)
    try:
        if "psycopg" in transports:
            results["operations"] = _over_psycopg(database_url, redis_url, client, latency, repeat)
        if "postgrest" in transports:
            results["postgrest"] = {
                "operations": _over_postgrest(database_url, redis_url, client, latency, repeat)
            }
    finally:
        client.close()
    return results


def _table(title: str, operations: dict[str, Any]) -> list[str]:
    lines = [
        title,
        f"{'operation':<18}{'trips ours':>11}{'baseline':>10}"
        f"{'ours p50/p95 ms':>20}{'baseline p50/p95 ms':>22}{'x p50':>8}",
    ]
    for name, r in operations.items():
        o, b = r["ours"], r["baseline"]
        ratio = r["latency_ratio_p50"]
        lines.append(
            f"{name:<18}{o['round_trips']:>11g}{b['round_trips']:>10g}"
            f"{o['p50_ms']:>11}/{o['p95_ms']:<8}{b['p50_ms']:>12}/{b['p95_ms']:<9}"
            f"{ratio if ratio is not None else '-':>8}"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    added = f"{results['latency_ms']:g} ms added per request"
    lines: list[str] = []
    if "operations" in results:
        lines += _table(
            f"database round trips and latency per operation, psycopg, {added}",
            results["operations"],
        )
    if "postgrest" in results:
        lines += [""] if lines else []
        lines += _table(
            f"HTTP requests and latency per operation, PostgREST (stand-in), {added}",
            results["postgrest"]["operations"],
        )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--transport", choices=(*TRANSPORTS, "both"), default="both")
    args = parser.parse_args()
    transports = TRANSPORTS if args.transport == "both" else (args.transport,)
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        migrations.apply(postgres.url)
        results = run(postgres.url, redis_server.url, args.latency, args.repeat, transports)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
