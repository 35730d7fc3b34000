"""An index on trial: search kinds timed with and without a candidate index, interleaved.

    python benchmarks/search_index_trial.py --database-url URL --create "CREATE INDEX ..."
        [--kind NAME ...] [--repeat 30] [--limit 50] [--keep] [--json FILE]

For a database already loaded (for example one ``benchmarks/search_scale.py --keep``
left), it makes a copy (``CREATE DATABASE <name>_trial TEMPLATE <name> STRATEGY
FILE_COPY``; no other session may be connected to it meanwhile), creates the candidate
index in the copy and ``VACUUM (ANALYZE)``s both, then times ``conserver_vcon_search``
for each kind of ``benchmarks/search.py`` (all by default, ``--kind`` picks some;
uuids and whole vCons) on both, in turns (the copy first, then the original first, ...),
two warm-up turns then ``--repeat``, one connection to each: the function in SQL, no
storage and no pool. Prints p50/p95 with and without the index, with over without, and
the indexes each plan used. The copy is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.search import _percentile, kinds, pick_customer  # noqa: E402
from benchmarks.search_plans import PlanSource, summarize  # noqa: E402
from conserver_supabase._search import build_query  # noqa: E402


def _timed(conn: Any, query: dict[str, Any]) -> float:
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    conn.execute("SELECT conserver_vcon_search(%s)", [Jsonb(query)]).fetchone()
    return (time.perf_counter() - started) * 1000


def prepare(url: str, create: str) -> str:
    """The URL of the copy of ``url`` that has the candidate index (made when missing)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    trial = urlunsplit(parts._replace(path=f"/{name}_trial"))
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT FROM pg_database WHERE datname = %s", [f"{name}_trial"]).fetchone():
            return trial
        started = time.perf_counter()
        conn.execute(f'CREATE DATABASE "{name}_trial" TEMPLATE "{name}" STRATEGY FILE_COPY')
        print(f"copied {name} in {time.perf_counter() - started:.1f} s", flush=True)
    for target, ddl in ((trial, create), (url, None)):
        with psycopg.connect(target, autocommit=True) as conn:
            if ddl:
                started = time.perf_counter()
                conn.execute(ddl)
                print(f"candidate created in {time.perf_counter() - started:.1f} s", flush=True)
            conn.execute("VACUUM (ANALYZE) vcons, parties, dialog, analysis, attachments")
    return trial


def _figures(samples: list[float], plans: PlanSource, query: dict[str, Any]) -> dict[str, Any]:
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(_percentile(samples, 0.95), 3),
        "indexes": summarize(plans.plan(query)).indexes,
    }


def run(url: str, create: str, names: Sequence[str], repeat: int, limit: int) -> Any:
    import psycopg

    urls = {"with": prepare(url, create), "without": url}
    tel, name = pick_customer(url)
    results: dict[str, Any] = {"create": create, "repeat": repeat, "kinds": {}}
    conns = {arm: psycopg.connect(u, autocommit=True) for arm, u in urls.items()}
    plans = {arm: PlanSource(u) for arm, u in urls.items()}
    try:
        for kind in kinds(tel, name):
            if kind.second_page or (names and kind.name not in names):
                continue
            for include in (False, True):
                query = dict(build_query(kind.filters, limit=limit, include_vcons=include))
                samples: dict[str, list[float]] = {"with": [], "without": []}
                for turn in range(repeat + 2):
                    for arm in list(urls) if turn % 2 == 0 else reversed(list(urls)):
                        elapsed = _timed(conns[arm], query)
                        if turn >= 2:  # two warm-up turns
                            samples[arm].append(elapsed)
                label = f"{kind.name} ({'vcons' if include else 'uuids'})"
                entry = {arm: _figures(s, plans[arm], query) for arm, s in samples.items()}
                for q in ("p50", "p95"):
                    ratio = entry["with"][f"{q}_ms"] / entry["without"][f"{q}_ms"]
                    entry[f"with_over_without_{q}"] = round(ratio, 2)
                results["kinds"][label] = entry
                print(f"  measured {label}", flush=True)
    finally:
        for source in plans.values():
            source.close()
        for conn in conns.values():
            conn.close()
    return results


def render(results: Any) -> str:
    lines = [f"candidate: {results['create']}", f"{results['repeat']} calls per arm, interleaved"]
    lines.append(f"{'kind':<34}{'with p50/p95':>18}{'without p50/p95':>18}{'x p50':>7}{'x p95':>7}")
    for label, e in results["kinds"].items():
        w, wo = e["with"], e["without"]
        lines.append(
            f"{label:<34}{w['p50_ms']:>8.2f} /{w['p95_ms']:>8.2f}"
            f"{wo['p50_ms']:>9.2f} /{wo['p95_ms']:>8.2f}"
            f"{e['with_over_without_p50']:>7.2f}{e['with_over_without_p95']:>7.2f}"
        )
        if w["indexes"] != wo["indexes"]:
            lines.append(f"    plan with: {', '.join(w['indexes'])}")
            lines.append(f"    without:   {', '.join(wo['indexes'])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_line(__doc__)
    parser.add_argument("--database-url", required=True, help="a loaded database")
    parser.add_argument("--create", required=True, help="the candidate's CREATE INDEX")
    parser.add_argument("--kind", action="append", default=[], help="a kind (default: all)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per arm")
    parser.add_argument("--limit", type=int, default=50, help="page size")
    parser.add_argument("--keep", action="store_true", help="keep the copy with the index")
    args = parser.parse_args(argv)
    results = run(args.database_url, args.create, args.kind, args.repeat, args.limit)
    if not args.keep:
        import psycopg

        parts = urlsplit(args.database_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}_trial" WITH (FORCE)')
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
