"""Bulk ingest: vCons per second for ``save_many`` through each transport, one-by-one
saves, and the database floor, side by side in one run.

    python benchmarks/bulk_ingest.py [--count 10000] [--batch 500] [--json FILE]

Each case writes the same ``--count`` standard vCons (fresh uuids) into its own fresh
database (a copy of one migrated template) on one embedded PostgreSQL, with an
embedded Redis with RedisJSON for the cache:

* ``save_many``, psycopg: batches of ``--batch`` (one transaction and one round trip
  each; every vCon then refreshes the cache, as a caller's ``save_many`` does);
* ``save_many``, PostgREST: the same through supabase-py and the PostgREST stand-in;
* ``save_vcon`` one by one, psycopg;
* the floor: one statement per batch, ``INSERT ... SELECT`` over
  ``jsonb_array_elements`` of the same documents into the same tables (vcons and each
  child table, and the document table), set-based, without our per-vCon checks,
  locks, versions or cache (skipped by the change-feed triggers, as our writes are).

Quote the ratios to the floor: absolute rates depend on the machine.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from tests.support.postgrest_standin import PostgrestStandIn  # noqa: E402

FLOOR = """
WITH docs AS (SELECT e AS d, (e ->> 'uuid')::uuid AS u FROM jsonb_array_elements(%s) AS e),
v AS (
    INSERT INTO vcons (id, uuid, vcon_version, subject, created_at, updated_at)
    SELECT u, u, coalesce(d ->> 'vcon', '0.4.0'), d ->> 'subject',
           (d ->> 'created_at')::timestamptz, coalesce((d ->> 'updated_at')::timestamptz, now())
      FROM docs
    RETURNING uuid
),
p AS (
    INSERT INTO parties (vcon_id, party_index, tel, mailto, name)
    SELECT u, (o - 1)::integer, e ->> 'tel', e ->> 'mailto', e ->> 'name'
      FROM docs, jsonb_array_elements(d -> 'parties') WITH ORDINALITY AS t (e, o)
     WHERE u IN (SELECT uuid FROM v)
),
dl AS (
    INSERT INTO dialog (vcon_id, dialog_index, type, start_time, duration_seconds, parties,
                        originator, mediatype, body, encoding)
    SELECT u, (o - 1)::integer, e ->> 'type', (e ->> 'start')::timestamptz,
           (e ->> 'duration')::real, conserver_int_array(e -> 'parties'),
           (e ->> 'originator')::integer, e ->> 'mediatype',
           conserver_jsonb_text(e -> 'body'), e ->> 'encoding'
      FROM docs, jsonb_array_elements(d -> 'dialog') WITH ORDINALITY AS t (e, o)
     WHERE u IN (SELECT uuid FROM v)
),
a AS (
    INSERT INTO analysis (vcon_id, analysis_index, type, dialog_indices, vendor, product,
                          body, encoding)
    SELECT u, (o - 1)::integer, e ->> 'type', conserver_int_array(e -> 'dialog'),
           e ->> 'vendor', e ->> 'product', conserver_jsonb_text(e -> 'body'), e ->> 'encoding'
      FROM docs, jsonb_array_elements(d -> 'analysis') WITH ORDINALITY AS t (e, o)
     WHERE u IN (SELECT uuid FROM v)
),
t AS (
    INSERT INTO attachments (vcon_id, attachment_index, type, body, encoding)
    SELECT u, (o - 1)::integer, e ->> 'type', conserver_jsonb_text(e -> 'body'),
           e ->> 'encoding'
      FROM docs, jsonb_array_elements(d -> 'attachments') WITH ORDINALITY AS t (e, o)
     WHERE u IN (SELECT uuid FROM v)
)
INSERT INTO conserver_vcon_documents (uuid, document, version, content_hash)
SELECT u, d, 1, md5(d::text) FROM docs WHERE u IN (SELECT uuid FROM v)
"""


def documents(count: int) -> list[dict[str, Any]]:
    made = []
    for index in range(count):
        vcon = standard_vcon(seed=index)
        vcon["uuid"] = str(uuid.UUID(int=index + 1, version=4))
        made.append(vcon)
    return made


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def run(
    admin_url: str, redis_url: str, count: int, batch: int, redis_latency: float = 0.0
) -> dict[str, Any]:
    import socket

    import redis

    from tests.support.faults import CuttableProxy

    if redis_latency:  # Redis a network hop away: every request delayed
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        proxy = CuttableProxy(lambda: socket.create_connection(("127.0.0.1", port)))
        proxy.__enter__()
        proxy.latency = redis_latency
        redis_url = f"redis://127.0.0.1:{proxy.port}/0"

    from tests.support.services import with_database

    template = "bench_ingest_template"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
        conn.execute(f'CREATE DATABASE "{template}"')
    migrations.apply(with_database(admin_url, template))
    vcons = documents(count)
    client = redis.Redis.from_url(redis_url)

    def fresh(name: str) -> str:
        client.flushall()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return with_database(admin_url, name)

    rates: dict[str, float] = {}

    url = fresh("bench_ingest_psycopg")
    with SupabaseStorage({"database_url": url, "redis_url": redis_url}) as store:
        seconds = timed(lambda: [store.save_many(part) for part in batches(vcons, batch)])
    rates["save_many, psycopg"] = count / seconds

    url = fresh("bench_ingest_postgrest")
    with PostgrestStandIn(url, key="k") as server:
        options = {"url": server.url, "key": "k", "redis_url": redis_url}
        with SupabaseStorage(options) as store:
            seconds = timed(lambda: [store.save_many(part) for part in batches(vcons, batch)])
    rates["save_many, PostgREST"] = count / seconds

    url = fresh("bench_ingest_one_by_one")
    with SupabaseStorage({"database_url": url, "redis_url": redis_url}) as store:
        seconds = timed(lambda: [store.save_vcon(vcon) for vcon in vcons])
    rates["save_vcon one by one, psycopg"] = count / seconds

    url = fresh("bench_ingest_floor")
    # The floor writes the rows as our write does, so the change-feed triggers skip it as
    # they skip our write (without it they would count it as another writer's change).
    with psycopg.connect(url, autocommit=True, options="-c conserver_supabase.writing=on") as conn:
        seconds = timed(
            lambda: [conn.execute(FLOOR, [Jsonb(part)]) for part in batches(vcons, batch)]
        )
        stored = conn.execute("SELECT count(*) FROM conserver_vcon_documents").fetchone()
        assert stored == (count,), stored
    rates["floor: INSERT ... SELECT"] = count / seconds
    client.close()
    if redis_latency:
        proxy.__exit__(None, None, None)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in ("psycopg", "postgrest", "one_by_one", "floor"):
            conn.execute(f'DROP DATABASE IF EXISTS "bench_ingest_{name}" WITH (FORCE)')
        conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')

    floor = rates["floor: INSERT ... SELECT"]
    return {
        "count": count,
        "batch": batch,
        "redis_latency_ms": redis_latency * 1000,
        "cases": {
            name: {"vcons_per_second": round(rate, 1), "of_floor": round(rate / floor, 3)}
            for name, rate in rates.items()
        },
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"bulk ingest of {results['count']} standard vCons, batches of {results['batch']}, "
        f"{results['redis_latency_ms']:g} ms added per Redis request",
        f"{'case':<32}{'vCons/s':>10}{'x floor':>9}",
    ]
    for name, r in results["cases"].items():
        lines.append(f"{name:<32}{r['vcons_per_second']:>10.0f}{r['of_floor']:>9}")
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--redis-latency", type=float, default=0.0, help="seconds added per Redis request"
    )
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        results = run(postgres.url, redis_server.url, args.count, args.batch, args.redis_latency)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
