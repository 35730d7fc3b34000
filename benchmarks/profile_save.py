"""Where a save's time goes (issue 18): a single save of a standard vCon, a save of one
with a 1 MiB inline recording, and ``save_many``, in Python and in SQL. Measures only.

    python benchmarks/profile_save.py [--repeat 200] [--batch 500] [--many 4] [--json FILE]

``--repeat`` single saves of a standard vCon, a quarter as many with the recording.

One embedded PostgreSQL (databases copied from one migrated template) and one embedded
Redis with RedisJSON.

Python: ``SupabaseStorage.save_vcon`` / ``save_many`` over psycopg with the cache, timed
without a profiler (p50, p95), then run again under cProfile, which splits each call
into its parts (cumulative time per call; cProfile inflates Python's share, the
database's and Redis's waits stay as they are):

* prepare: the document and its JSON text (``document_and_text``), validation
  (``_validated``), the tenant;
* the database call (``PostgresDatabase.call``), of which psycopg's jsonb adaptation
  of the arguments; the rest is the round trip and the server's work;
* the cache write (``RedisTier.store``: one script call per vCon);
* the rest (bookkeeping, telemetry, the version map).

SQL: ``conserver_vcon_save`` (and ``conserver_vcon_save_many`` of ``--batch``) timed in
scratch databases with parts taken away, the databases taking turns call by call:

* as migrated;
* without the change-feed triggers (migration 0004);
* also without the search triggers (``conserver_tsv_*``, the tsvector columns) and the
  GIN indexes (tsvector, trigram, tags);
* the bare parts, in the migrated database with ``conserver_supabase.writing = on``: the
  vCon's rows (vcons and children) as one set-based statement, and the rows plus the
  document row (the set-based INSERT of benchmarks/bulk_ingest.py), without our checks,
  locks, versions or merge;
* and the limit for bulk, benchmarks/peer.py's floor (b) (COPY of the rows our write
  produces, ``--many`` batches of ``--batch``), into the migrated database and the two
  with parts taken away.

And per function (``track_functions = all``, ``pg_stat_user_functions``): the self time of
each SQL function and trigger function per save, as migrated: what inside the SQL costs.
"""

from __future__ import annotations

import cProfile
import pstats
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
from psycopg.types.json import Jsonb  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.bulk_ingest import FLOOR  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from benchmarks.change_feed import FEED_TRIGGERS  # noqa: E402
from benchmarks.exact_text import vcon as kind_vcon  # noqa: E402
from benchmarks.peer import Cluster, copy_rows, rows_of  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase._documents import dumps  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

#: The vCon's rows without the document row: bulk_ingest's floor up to its last CTE.
ROWS_ONLY = FLOOR.split("INSERT INTO conserver_vcon_documents")[0] + "SELECT count(*) FROM v"  # noqa: S608 (constant text)
SEARCH_TRIGGERS = [
    ("vcons", "conserver_tsv_vcons"),
    ("parties", "conserver_tsv_parties"),
    ("dialog", "conserver_tsv_dialog"),
    ("analysis", "conserver_tsv_analysis"),
]
#: The parts of a Python call: (label, file suffix, function name).
PARTS = [
    ("prepare", "conserver_supabase/_writes.py", "prepare"),
    ("  JSON text (document_and_text)", "conserver_supabase/_documents.py", "document_and_text"),
    ("  validation (_validated)", "conserver_supabase/_writes.py", "_validated"),
    ("database call", "conserver_supabase/_database/_postgres.py", "call"),
    ("  psycopg jsonb adaptation", "psycopg/types/json.py", "dump"),
    ("cache write (RedisTier.store)", "conserver_supabase/_redis/_tier.py", "store"),
]
OPS = ("save, standard", "save, 1 MiB recording", "save_many")


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3),
    }


def workload(op: str, repeat: int, batch: int, many: int) -> list[Any]:
    """Fresh vCons for ``op``: single documents, or batches for save_many."""
    if op == "save, standard":
        return [kind_vcon("standard", i) for i in range(repeat)]
    if op == "save, 1 MiB recording":
        return [kind_vcon("1 MiB recording", i) for i in range(max(5, repeat // 4))]
    return [
        [dict(standard_vcon(i * batch + j), uuid=str(uuid.uuid4())) for j in range(batch)]
        for i in range(many)
    ]


def python_profile(store: SupabaseStorage, repeat: int, batch: int, many: int) -> dict[str, Any]:
    calls: dict[str, Callable[[Any], Any]] = {
        "save, standard": store.save_vcon,
        "save, 1 MiB recording": store.save_vcon,
        "save_many": store.save_many,
    }
    for i in range(5):  # warm up (pool, scripts, plans)
        store.save_vcon(kind_vcon("standard", -i))
    found: dict[str, Any] = {}
    for op, call in calls.items():
        items = workload(op, repeat, batch, many)
        wall = []
        for item in items:
            started = time.perf_counter()
            call(item)
            wall.append(time.perf_counter() - started)
        items = workload(op, repeat, batch, many)  # fresh uuids again
        profiler = cProfile.Profile()
        profiler.enable()
        for item in items:
            call(item)
        profiler.disable()
        # Stats.stats is pstats' own table (not in its type stubs): the cumulative times.
        stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        total = sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if file.endswith("conserver_supabase/_storage.py")
            and name in ("save_vcon", "save_many")
        )
        parts = {}
        for label, suffix, name in PARTS:
            seconds = sum(
                entry[3]
                for (file, _, function), entry in stats.items()
                if file.endswith(suffix) and function == name
            )
            parts[label] = round(seconds / len(items) * 1000, 3)
        top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
        found[op] = {
            "calls": len(items),
            "vcons_per_call": batch if op == "save_many" else 1,
            "wall": quantiles(wall),
            "profiled_total_ms": round(total / len(items) * 1000, 3),
            "parts_ms": parts,
            "top_self_ms": [
                {
                    "function": f"{Path(file).name}:{line}({name})",
                    "ms_per_call": round(entry[2] / len(items) * 1000, 3),
                }
                for (file, line, name), entry in top
            ],
        }
    return found


def strip(conn: Any, level: str) -> None:
    """Take parts away from a migrated database: "no feed" disables the change-feed
    triggers, "bare" also the search triggers, and drops the GIN indexes."""
    for table, trigger in FEED_TRIGGERS:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    if level != "bare":
        return
    for table, trigger in SEARCH_TRIGGERS:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    gin = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        " AND indexdef ILIKE '%USING gin%'"
    ).fetchall()
    assert gin, "no GIN index found to drop"
    for (name,) in gin:
        conn.execute(f'DROP INDEX "{name}"')


def _variants(cluster: Cluster) -> dict[str, Any]:
    ours = "-c conserver_supabase.writing=on"
    conns = {
        "as migrated": psycopg.connect(cluster.copy("bench_profile_migrated"), autocommit=True),
        "no change-feed triggers": psycopg.connect(
            cluster.copy("bench_profile_no_feed"), autocommit=True
        ),
        "no feed, no search triggers or GIN": psycopg.connect(
            cluster.copy("bench_profile_bare"), autocommit=True
        ),
        "rows alone, set-based": psycopg.connect(
            cluster.copy("bench_profile_rows"), autocommit=True, options=ours
        ),
        "rows + document, set-based": psycopg.connect(
            cluster.copy("bench_profile_rows_doc"), autocommit=True, options=ours
        ),
    }
    strip(conns["no change-feed triggers"], "no feed")
    strip(conns["no feed, no search triggers or GIN"], "bare")
    return conns


def copy_profile(cluster: Cluster, batch: int, many: int) -> dict[str, Any]:
    """Floor (b) of benchmarks/peer.py (COPY of our rows, as our write runs) into a
    migrated database and into ones with parts taken away, taking turns batch by batch:
    vCons per second, and the share of the migrated database's time."""
    documents = []
    for index in range(batch * (many + 1)):  # the first batch warms each database up
        document = standard_vcon(seed=index)
        document["uuid"] = str(uuid.UUID(int=index + 1, version=4))
        documents.append(document)
    payloads = rows_of(cluster.copy("bench_profile_copy_scratch"), documents, batch)
    tables = len(payloads) // (many + 1)
    ours = "-c conserver_supabase.writing=on"
    conns = {
        level: psycopg.connect(
            cluster.copy(f"bench_profile_copy_{index}"), autocommit=True, options=ours
        )
        for index, level in enumerate(("as migrated", "no feed", "bare"))
    }
    try:
        for level in ("no feed", "bare"):
            strip(conns[level], level)
        for conn in conns.values():
            copy_rows(conn, payloads[:tables])
        seconds = dict.fromkeys(conns, 0.0)
        for k in range(1, many + 1):
            order = list(conns)
            shift = k % len(order)
            for level in order[shift:] + order[:shift]:
                started = time.perf_counter()
                copy_rows(conns[level], payloads[k * tables : (k + 1) * tables])
                seconds[level] += time.perf_counter() - started
    finally:
        for conn in conns.values():
            conn.close()
    names = {"as migrated": "as migrated", "no feed": "no change-feed triggers",
             "bare": "no feed, no search triggers or GIN"}  # fmt: skip
    return {
        names[level]: {
            "vcons_per_second": round(batch * many / spent, 1),
            "of_migrated_time": round(spent / seconds["as migrated"], 3),
        }
        for level, spent in seconds.items()
    }


def sql_profile(cluster: Cluster, repeat: int, batch: int, many: int) -> dict[str, Any]:
    conns = _variants(cluster)
    try:
        return _sql_profile(cluster, conns, repeat, batch, many)
    finally:
        for conn in conns.values():
            conn.close()


def _sql_profile(
    cluster: Cluster, conns: dict[str, Any], repeat: int, batch: int, many: int
) -> dict[str, Any]:
    def call(mode: str, op: str, item: Any) -> None:
        conn = conns[mode]
        if mode.startswith("rows"):
            documents = item if op == "save_many" else [item]
            statement = ROWS_ONLY if mode == "rows alone, set-based" else FLOOR
            conn.execute(statement, [Jsonb(documents)])
        elif op == "save_many":
            texts = Jsonb([dumps(d) for d in item])
            conn.execute("SELECT conserver_vcon_save_many(%s, NULL, NULL)", [texts])
        else:
            conn.execute("SELECT conserver_vcon_save(%s, NULL, '{}')", [Jsonb(dumps(item))])

    found: dict[str, Any] = {}
    for op in OPS:
        times: dict[str, list[float]] = {mode: [] for mode in conns}
        for mode in conns:  # warm up each database
            call(mode, op, workload(op, 1, 2, 1)[0])
        for i, item in enumerate(workload(op, repeat, batch, many)):
            order = list(conns)
            shift = i % len(order)
            for mode in order[shift:] + order[:shift]:
                fresh = (
                    [dict(d, uuid=str(uuid.uuid4())) for d in item]
                    if op == "save_many"
                    else dict(item, uuid=str(uuid.uuid4()))
                )
                started = time.perf_counter()
                call(mode, op, fresh)
                times[mode].append(time.perf_counter() - started)
        figures = {mode: quantiles(values) for mode, values in times.items()}
        full = figures["as migrated"]["p50_ms"]
        for entry in figures.values():
            entry["of_migrated_p50"] = round(entry["p50_ms"] / full, 3)
        found[op] = figures
    found["functions"] = functions(cluster, repeat, batch, many)
    found["copy rows"] = copy_profile(cluster, batch, many)
    return found


def functions(cluster: Cluster, repeat: int, batch: int, many: int) -> dict[str, Any]:
    """Self time per SQL function and trigger function, per save, as migrated."""
    out: dict[str, Any] = {}
    for op in OPS:
        url = cluster.copy(f"bench_profile_functions_{OPS.index(op)}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET track_functions = 'all'")
            items = workload(op, repeat, batch, many)
            conn.execute("SELECT pg_stat_reset()")
            started = time.perf_counter()
            for item in items:
                if op == "save_many":
                    texts = Jsonb([dumps(d) for d in item])
                    conn.execute("SELECT conserver_vcon_save_many(%s, NULL, NULL)", [texts])
                else:
                    conn.execute("SELECT conserver_vcon_save(%s, NULL, '{}')", [Jsonb(dumps(item))])
            elapsed = time.perf_counter() - started
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = conn.execute(
                "SELECT funcname, calls, self_time, total_time FROM pg_stat_user_functions"
                " ORDER BY self_time DESC LIMIT 10"
            ).fetchall()
        out[op] = {
            "calls": len(items),
            "client_ms_per_call": round(elapsed / len(items) * 1000, 3),
            "by_self_time": [
                {
                    "function": name,
                    "calls_per_call": round(calls / len(items), 1),
                    "self_ms": round(self_time / len(items), 3),
                    "total_ms": round(total_time / len(items), 3),
                }
                for name, calls, self_time, total_time in rows
            ],
        }
    return out


def run(admin_url: str, redis_url: str, repeat: int = 200, batch: int = 500, many: int = 4) -> Any:
    cluster = Cluster(admin_url, "bench_profile")
    try:
        with SupabaseStorage(
            {"database_url": cluster.copy("bench_profile_python"), "redis_url": redis_url}
        ) as store:
            python = python_profile(store, repeat, batch, many)
        sql = sql_profile(cluster, repeat, batch, many)
    finally:
        cluster.drop_all()
    return {"run": {"repeat": repeat, "batch": batch, "many": many}, "python": python, "sql": sql}


def render(results: dict[str, Any]) -> str:
    run = results["run"]
    lines = [f"profile of our saves ({run['repeat']} saves, save_many of {run['batch']})"]
    lines.append("Python, SupabaseStorage with the cache (ms per call; parts under cProfile):")
    for op, r in results["python"].items():
        wall = r["wall"]
        lines.append(
            f"  {op} ({r['calls']} calls): p50 {wall['p50_ms']:.2f} ms, p95 "
            f"{wall['p95_ms']:.2f} ms; under cProfile {r['profiled_total_ms']:.2f} ms:"
        )
        total = r["profiled_total_ms"]
        for label, ms in r["parts_ms"].items():
            lines.append(f"    {label:<34}{ms:>9.3f} ms {ms / total:>6.1%}")
        lines.append("    most self time: " + ", ".join(
            f"{t['function']} {t['ms_per_call']:.3f}" for t in r["top_self_ms"][:4]
        ))  # fmt: skip
    lines.append("SQL, p50 / p95 ms per call, databases interleaved (x: of as migrated, p50):")
    for op in OPS:
        lines.append(f"  {op}:")
        for mode, r in results["sql"][op].items():
            lines.append(
                f"    {mode:<36}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['of_migrated_p50']:>7.2f}x"
            )
    lines.append("SQL functions by self time per call, as migrated (track_functions):")
    for op, r in results["sql"]["functions"].items():
        lines.append(f"  {op} (client {r['client_ms_per_call']:.2f} ms per call):")
        for f in r["by_self_time"][:6]:
            lines.append(
                f"    {f['function']:<36}{f['calls_per_call']:>7.1f} calls{f['self_ms']:>9.3f} ms"
                f" self{f['total_ms']:>9.3f} ms total"
            )
    lines.append(
        f"COPY of our rows for {run['many']} x {run['batch']} vCons (benchmarks/peer.py's"
        " floor (b)), databases interleaved:"
    )
    for level, r in results["sql"]["copy rows"].items():
        lines.append(
            f"    {level:<36}{r['vcons_per_second']:>9.0f} vCons/s"
            f"{r['of_migrated_time']:>7.2f}x the time"
        )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--repeat", type=int, default=200, help="single saves per case")
    parser.add_argument("--batch", type=int, default=500, help="vCons per save_many")
    parser.add_argument("--many", type=int, default=4, help="save_many calls per case")
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres, EmbeddedRedis(json=True) as redis_server:
        results = run(postgres.url, redis_server.url, args.repeat, args.batch, args.many)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
