"""Search at scale: each filter kind's p95 on 1,000,000 vCons against 100,000.

Run (from the repository root, with the ``postgres`` and ``embedded`` extras)::

    python benchmarks/search_scale.py [--sizes 100000 1000000] [--repeat 30] [--limit 50]
                                      [--check] [--max-growth 2.0] [--json FILE]
                                      [--database-url ADMIN_URL]

The corpus is the search benchmark's (``benchmarks/search_corpus.py``: the same seed,
the same batches, the same populations of customers, agents, topics and tags), loaded
through the same write path (``save_many``, ``benchmarks/search.py``'s ``load``) into
two databases of one PostgreSQL server. The small size is loaded first; the large
database starts as a copy of it (``CREATE DATABASE ... TEMPLATE``) and gets the rest
of the corpus, batch after batch, as a load of the large size would: its first vCons
are exactly the small database's, and every filter's share of the vCons stays the
same, so each kind matches about ten times as many vCons at 1,000,000. Both databases
are ``VACUUM (ANALYZE)``d; the load times are printed.

Every kind of ``benchmarks/search.py`` is timed returning uuids and returning whole
vCons (``include_vcons``), on both databases interleaved (small then large, then large
then small, ...), ``--repeat`` calls per size after two warm-up calls each, through
``SupabaseStorage.search`` (psycopg transport; search never touches Redis). Reported
per kind and size: rows, matches (counted by paging, up to ``--count-cap``), p50 and
p95 (nearest rank), and the growth large/small of p95 and p50; the plan of the exact
statement at both sizes (``benchmarks/search_plans.py``), with its indexes. A kind
whose p95 grows more than ``--max-growth`` gets both plans printed.

``--check`` exits 1 when a kind not marked ``*`` (a common value: it may scan, and
its cost grows with its matches) Seq Scans a big table at either size, or its p95
grows more than ``--max-growth``. ``--database-url`` is a server's admin URL: the two
databases (``csb_scale_<size>``) are created there and dropped at the end, unless
``--keep``: then they stay, and a later run with ``--keep`` reuses a database that holds
its size (to measure again without loading again).

``--json FILE`` (``make bench-scale`` writes ``docs/bench-search-scale.json``)::

    {"run": {"sizes", "repeat", "limit", "seed", "batch", "threads", "cpus", "count_cap",
             "max_growth", "postgres_version", "plans_from",
             "load": {size: {"seconds", "vcons_added", "copy_seconds", "vacuum_seconds",
                             "tables": {table: rows}} (or {"reused": true, "tables"})},
             "total_seconds"},
     "kinds": [{"name", "returns" ("uuids" | "vcons"), "filters", "second_page",
                "common", "skipped" (null, or why),
                "sizes": {size: {"rows", "matches", "matches_capped", "p50_ms",
                                 "p95_ms", "plan": {"index_only", "seq_scans",
                                 "indexes"}}},
                "growth_p50", "growth_p95", "same_indexes", "over",
                "plans" (only when over: {size: [rendered lines]})}],
     "check": {"seq_scans": [names], "over_growth": [names]}}
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.search import (  # noqa: E402
    Kind,
    _percentile,
    count_matches,
    cursor_for,
    kinds,
    load,
    pick_customer,
)
from benchmarks.search_plans import PlanInfo, PlanSource, render_plan, summarize  # noqa: E402
from benchmarks.search_report import table  # noqa: E402
from conserver_supabase import SupabaseStorage  # noqa: E402
from conserver_supabase._search import build_query  # noqa: E402

TABLES = ("vcons", "parties", "dialog", "analysis", "attachments")
NO_PRUNING = 2**62  # changes kept while no consumer polls: more than any load makes


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _admin(url: str, statement: str, *params: object) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params or None)


def analyze(url: str) -> tuple[float, dict[str, int], str]:
    """``VACUUM (ANALYZE)`` of the search tables: its seconds, the rows per table, the
    server version."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(TABLES)}, conserver_vcon_documents")
        counts = ", ".join(
            f"(SELECT count(*) FROM {name})"  # noqa: S608 - fixed table names, no input
            for name in TABLES
        )
        row = conn.execute(f"SELECT {counts}, current_setting('server_version')").fetchone()
    assert row is not None
    rows = dict(zip(TABLES, (int(n) for n in row[:-1]), strict=True))
    return time.perf_counter() - started, rows, str(row[-1])


def _loaded(admin_url: str, name: str) -> int | None:
    """How many vCons database ``name`` holds (None: no such database)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            return None
    with psycopg.connect(with_database(admin_url, name)) as conn:
        row = conn.execute("SELECT count(*) FROM vcons").fetchone()
    return int(row[0]) if row else None


def prepare(admin_url: str, args: argparse.Namespace) -> tuple[dict[str, str], dict[str, Any]]:
    """Creates and loads one database per size (each larger one a copy of the one
    before plus the rest of the corpus); returns their URLs and the load figures."""
    from conserver_supabase import _migrations as migrations

    urls: dict[str, str] = {}
    figures: dict[str, Any] = {}
    previous: tuple[str, int] | None = None
    for size in args.sizes:
        name = f"csb_scale_{size}"
        url = urls[str(size)] = with_database(admin_url, name)
        if args.keep and _loaded(admin_url, name) == size:
            print(f"{size:,} vCons: reusing database {name} (--keep)", flush=True)
            _, rows, version = analyze(url)
            figures[str(size)] = {"reused": True, "tables": rows}
            figures["postgres_version"] = version
            previous = (name, size)
            continue
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        started = time.perf_counter()
        if previous is None:
            _admin(admin_url, f'CREATE DATABASE "{name}"')
            migrations.apply(with_database(admin_url, name))
        else:
            _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{previous[0]}"')
        copy_seconds = time.perf_counter() - started
        have = previous[1] if previous else 0
        # Concurrent save_many batches deadlock, now and then, on the change log's pruning
        # (each prunes the same oldest changes): no pruning during the load. The change
        # log is not searched; the rows searched are the same.
        _admin(url, "UPDATE conserver_vcon_feed_state SET keep_rows_idle = %s", NO_PRUNING)
        print(f"{size:,} vCons: database {name}, adding {size - have:,} vCons", flush=True)
        seconds = load(url, size - have, args.batch, args.threads, args.seed, start=have)
        vacuum_seconds, rows, version = analyze(url)
        print(f"  VACUUM (ANALYZE): {vacuum_seconds:.1f} s; rows {rows}", flush=True)
        figures[str(size)] = {
            "seconds": round(seconds, 1),
            "vcons_added": size - have,
            "copy_seconds": round(copy_seconds, 1),
            "vacuum_seconds": round(vacuum_seconds, 1),
            "tables": rows,
        }
        figures["postgres_version"] = version
        previous = (name, size)
    return urls, figures


# --- what is measured ------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Case:
    """One kind returning uuids or whole vCons, and what it measured at each size."""

    kind: Kind
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    cursors: dict[str, str | None] = dataclasses.field(default_factory=dict)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    matches: dict[str, tuple[int, bool]] = dataclasses.field(default_factory=dict)
    plans: dict[str, PlanInfo] = dataclasses.field(default_factory=dict)

    @property
    def returns(self) -> str:
        return "vcons" if self.kind.include_vcons else "uuids"

    @property
    def label(self) -> str:
        return f"{self.kind.name} ({self.returns})"

    @property
    def skipped(self) -> bool:
        return self.kind.second_page and None in self.cursors.values()

    def p(self, size: str, fraction: float) -> float:
        if fraction == 0.5:
            return statistics.median(self.samples[size])
        return _percentile(self.samples[size], fraction)

    def growth(self, small: str, large: str, fraction: float) -> float:
        return self.p(large, fraction) / self.p(small, fraction)


def cases(tel: str, name: str) -> list[Case]:
    """Every kind of benchmarks/search.py, returning uuids and returning whole vCons
    (its own ``include_vcons`` kind is ``no filter`` returning vCons here)."""
    found: list[Case] = []
    for kind in kinds(tel, name):
        if kind.include_vcons:
            continue
        found.append(Case(kind))
        found.append(Case(dataclasses.replace(kind, include_vcons=True)))
    return found


def _call(storage: SupabaseStorage, case: Case, size: str, limit: int) -> tuple[float, int]:
    kind = case.kind
    started = time.perf_counter()
    page = storage.search(
        kind.filters, limit=limit, cursor=case.cursors[size], include_vcons=kind.include_vcons
    )
    return (time.perf_counter() - started) * 1000, len(page)


def measure(
    case: Case,
    storages: Mapping[str, SupabaseStorage],
    plans: Mapping[str, PlanSource],
    args: argparse.Namespace,
) -> None:
    """Times ``case`` on every size, interleaved, then takes its plans and matches."""
    for size, storage in storages.items():
        case.cursors[size] = cursor_for(storage, case.kind, args.limit)
    if case.skipped:
        return
    order = list(storages)
    for size in order:
        case.samples[size] = []
        for _ in range(2):  # warm-up: connection, caches
            _call(storages[size], case, size, args.limit)
    for round_ in range(args.repeat):
        for size in order if round_ % 2 == 0 else reversed(order):
            elapsed, case.rows[size] = _call(storages[size], case, size, args.limit)
            case.samples[size].append(elapsed)
    for size, storage in storages.items():
        query = build_query(
            case.kind.filters,
            limit=args.limit,
            cursor=case.cursors[size],
            include_vcons=case.kind.include_vcons,
        )
        case.plans[size] = summarize(plans[size].plan(query))
        if not case.kind.include_vcons:  # the same filters match the same vCons
            case.matches[size] = count_matches(storage, case.kind.filters, args.count_cap)


@contextlib.contextmanager
def searchers(
    urls: Mapping[str, str],
) -> Iterator[tuple[dict[str, SupabaseStorage], dict[str, PlanSource]]]:
    """One storage and one plan source per size, closed at the end."""
    storages: dict[str, SupabaseStorage] = {}
    plans: dict[str, PlanSource] = {}
    try:
        for size, url in urls.items():
            storages[size] = SupabaseStorage(
                # search never touches Redis (one database call); the URL is configuration
                {"database_url": url, "redis_url": "redis://127.0.0.1:6379/0", "timeout": 120}
            )
            plans[size] = PlanSource(url)
        yield storages, plans
    finally:
        for source in plans.values():
            source.close()
        for storage in storages.values():
            storage.close()


def run(admin_url: str, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    urls, load_figures = prepare(admin_url, args)
    sizes = list(urls)
    tel, name = pick_customer(urls[sizes[0]])
    measured = cases(tel, name)
    try:
        with searchers(urls) as (storages, plans):
            method = next(iter(plans.values())).method
            print(f"plans: {method}")
            print(f"timing: {args.repeat} calls per kind and size, interleaved, after 2 warm-ups")
            for case in measured:
                measure(case, storages, plans, args)
                print(f"  measured {case.label}", flush=True)
        # Same-case matches for the vCons variant: the filters are the uuids variant's.
        for uuids, vcons in zip(measured[::2], measured[1::2], strict=True):
            vcons.matches = uuids.matches
    finally:
        if not args.keep:
            for size in sizes:
                _admin(admin_url, f'DROP DATABASE IF EXISTS "csb_scale_{size}" WITH (FORCE)')
    total = time.perf_counter() - started
    meta = run_meta(args, load_figures, method, total)
    document = to_json(measured, sizes, args, meta)
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return report(measured, sizes, document, args)


# --- the report --------------------------------------------------------------------------


def run_meta(
    args: argparse.Namespace, load_figures: dict[str, Any], method: str, total: float
) -> dict[str, Any]:
    version = load_figures.pop("postgres_version")
    return {
        "sizes": list(args.sizes),
        "repeat": args.repeat,
        "limit": args.limit,
        "seed": args.seed,
        "batch": args.batch,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "count_cap": args.count_cap,
        "max_growth": args.max_growth,
        "postgres_version": version,
        "plans_from": method,
        "load": load_figures,
        "total_seconds": round(total, 1),
    }


def _over(case: Case, small: str, large: str, limit: float) -> bool:
    return not case.skipped and not case.kind.common and case.growth(small, large, 0.95) > limit


def _entry(case: Case, sizes: Sequence[str], limit: float) -> dict[str, Any]:
    small, large = sizes[0], sizes[-1]
    entry: dict[str, Any] = {
        "name": case.kind.name,
        "returns": case.returns,
        "filters": dict(case.kind.filters),
        "second_page": case.kind.second_page,
        "common": case.kind.common,
        "skipped": "no second page" if case.skipped else None,
    }
    if case.skipped:
        return entry
    entry["sizes"] = {
        size: {
            "rows": case.rows[size],
            "matches": case.matches[size][0],
            "matches_capped": case.matches[size][1],
            "p50_ms": round(case.p(size, 0.5), 3),
            "p95_ms": round(case.p(size, 0.95), 3),
            "plan": case.plans[size].summary(),
        }
        for size in sizes
    }
    entry["growth_p50"] = round(case.growth(small, large, 0.5), 2)
    entry["growth_p95"] = round(case.growth(small, large, 0.95), 2)
    entry["same_indexes"] = case.plans[small].indexes == case.plans[large].indexes
    entry["over"] = _over(case, small, large, limit)
    if entry["over"]:
        entry["plans"] = {size: render_plan(case.plans[size].plan) for size in sizes}
    return entry


def to_json(
    measured: Sequence[Case], sizes: Sequence[str], args: argparse.Namespace, meta: dict[str, Any]
) -> dict[str, Any]:
    """The document ``--json`` writes (its shape is in the module docstring)."""
    entries = [_entry(case, sizes, args.max_growth) for case in measured]
    seq = [
        e["name"] + f" ({e['returns']})"
        for e in entries
        if not e["skipped"]
        and not e["common"]
        and any(not s["plan"]["index_only"] for s in e["sizes"].values())
    ]
    over = [e["name"] + f" ({e['returns']})" for e in entries if e.get("over")]
    return {"run": meta, "kinds": entries, "check": {"seq_scans": seq, "over_growth": over}}


def _verdict(plan: Mapping[str, Any]) -> str:
    return (
        "index" if plan["index_only"] else "SEQ " + ",".join(s["table"] for s in plan["seq_scans"])
    )


def _row(case: Case, entry: Mapping[str, Any], sizes: Sequence[str]) -> list[str]:
    """One line of the table: a kind at every size, its growth, its plans."""
    if entry["skipped"]:
        dashes = ["-"] * (len(sizes) + 3)
        return [case.kind.name, case.returns, *dashes, "skipped: no second page"]
    at = entry["sizes"]
    matches = (f"{'>=' if at[s]['matches_capped'] else ''}{at[s]['matches']:,}" for s in sizes)
    indexes = (",".join(at[s]["plan"]["indexes"]) for s in sizes)
    return [
        case.kind.name,
        case.returns,
        " / ".join(matches),
        *(f"{at[s]['p50_ms']:.2f} / {at[s]['p95_ms']:.2f}" for s in sizes),
        f"{entry['growth_p50']:.2f}",
        f"{entry['growth_p95']:.2f}{' OVER' if entry['over'] else ''}",
        " / ".join(_verdict(at[s]["plan"]) for s in sizes),
        "same" if entry["same_indexes"] else "CHANGED: " + " -> ".join(indexes),
    ]


def report(
    measured: Sequence[Case],
    sizes: Sequence[str],
    document: dict[str, Any],
    args: argparse.Namespace,
) -> int:
    """Prints the load, the table, the plans of the kinds over the limit; the exit status."""
    meta = document["run"]
    print()
    for size, figures in meta["load"].items():
        if figures.get("reused"):
            print(f"load {int(size):,}: reused (--keep)")
            continue
        print(
            f"load {int(size):,}: {figures['vcons_added']:,} vCons added in "
            f"{figures['seconds']:.1f} s (+ copy {figures['copy_seconds']:.1f} s, "
            f"VACUUM (ANALYZE) {figures['vacuum_seconds']:.1f} s)"
        )
    print(f"whole run: {meta['total_seconds']:.0f} s\n")
    small, large = sizes[0], sizes[-1]
    headers = ["kind", "returns", "matches", *(f"p50/p95 ms {int(s):,}" for s in sizes)]
    headers += ["p50 x", "p95 x", "plan", "indexes"]
    rows = [
        _row(case, entry, sizes) for case, entry in zip(measured, document["kinds"], strict=True)
    ]
    print("\n".join(table(headers, rows, right={2, 3, 4, 5, 6})))
    print(f"\n(x: {int(large):,} over {int(small):,}; * = a common value, not checked)")
    for entry in document["kinds"]:
        for size, lines in entry.get("plans", {}).items():
            print(f"\nplan of {entry['name']} ({entry['returns']}) at {int(size):,}:")
            print("\n".join(f"    {line}" for line in lines))
    check = document["check"]
    if check["seq_scans"]:
        print(f"\nSeq Scan on a big table in: {', '.join(check['seq_scans'])}")
    if check["over_growth"]:
        print(f"p95 grows more than {args.max_growth}x in: {', '.join(check['over_growth'])}")
    return 1 if args.check and (check["seq_scans"] or check["over_growth"]) else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000],
                        metavar=("SMALL", "LARGE"), help="vCons in each database")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per kind and size")
    parser.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    parser.add_argument("--batch", type=int, default=500, help="vCons per save_many")
    parser.add_argument(
        "--threads", type=int, default=max(2, min(4, os.cpu_count() or 2)), help="load threads"
    )
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument("--count-cap", type=int, default=20_000, help="stop counting matches here")
    parser.add_argument("--max-growth", type=float, default=2.0, help="p95 growth --check allows")
    parser.add_argument("--check", action="store_true", help="exit 1 (see above)")
    parser.add_argument("--database-url", help="a server's admin URL (default: embedded)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases; reuse those of the right size"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    small, large = args.sizes
    if not 0 < small < large or small % args.batch or args.repeat < 1 or args.threads < 1:
        parser.error("need 0 < SMALL < LARGE, SMALL a multiple of --batch, --repeat >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        return run(args.database_url, args)
    from conserver_supabase.testing import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        print("embedded PostgreSQL started")
        return run(server.url, args)


if __name__ == "__main__":
    sys.exit(main())
