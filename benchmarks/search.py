"""Search benchmark: p50/p95 per filter kind, and which indexes each plan uses.

Run (from the repository root, with the ``postgres`` and ``embedded`` extras)::

    python benchmarks/search.py [--count 100000] [--repeat 30] [--database-url URL]
                                [--check] [--show-plans] [--json FILE]

Without ``--database-url`` it starts an embedded PostgreSQL, applies the migrations,
loads ``--count`` generated vCons (varied subjects, parties, dialog types, analysis,
tags, created_at over three years) with ``save_many`` (with their JSON texts, as the
storage sends them) and runs ``VACUUM (ANALYZE)``.
With ``--database-url`` it does the same in that database: use a scratch one, it
writes vCons there (``--count 0`` loads nothing and searches what is there).

Every search goes through ``SupabaseStorage.search`` (psycopg transport; the search
never touches Redis, so no Redis is started). Columns of the timing table:

* ``kind``     the filter kind (``*``: a common value, which may legitimately scan);
* ``rows``     items on the page returned (limit ``--limit``);
* ``matches``  every vCon the filters match (counted by paging, not timed);
* ``p50 ms`` / ``p95 ms``  median and 95th percentile (nearest rank) wall time of one
  ``search`` call over ``--repeat`` calls, after two warm-up calls (for the uuid kinds,
  calls taking turns with the contenders of the next table);
* ``x base``   p50 divided by the p50 of ``no filter`` (the newest page), from this
  same run: quote these ratios, not absolute times;
* ``plan``     ``index`` when the plan reads the big tables (vcons, parties, dialog,
  analysis, attachments) only through indexes, else the tables it Seq Scans.

A second table puts, for every kind but ``include_vcons``, the same search returning
whole vCons beside it (``benchmarks/search_whole.py``, which says how): p50 / p95 of
both and their ratio; ``before x uuids``, the ratio of the storage's previous
whole-vCon call (the jsonb form, texts as JSON strings); ``added ms``, what whole vCons
add (p50s); ``floor added ms``, the least they can add (the bare SELECT of the page's
document texts and ``json.loads`` of each, less that SELECT's round trip); and their
ratio. Sub-millisecond differences of p50s: read them over several kinds.

The plan is that of the page: the exact statement ``conserver_vcon_search`` executes
for the uuids, with the same parameters (whole vCons page with the same condition and
then read each document by its primary key): captured with ``auto_explain``
(log_nested_statements) when the server can load it, otherwise from a temporary copy
of the function that runs ``EXPLAIN (ANALYZE, FORMAT JSON)`` on the statement it built.
``--check`` exits 1 when a kind not marked ``*`` Seq Scans a big table.

``--json FILE`` writes the same figures (``make bench`` writes ``docs/bench-search.json``)::

    {"run": {"count", "repeat", "limit", "seed", "batch", "threads", "cpus",
             "postgres_version", "plans_from", "tables": {table: rows}, "load_seconds"},
     "kinds": [{"name", "filters" (as sent, with the customer picked from the data),
                "include_vcons", "second_page", "common", "skipped" (null, or why),
                "rows", "matches", "matches_capped" (counting stopped at --count-cap),
                "p50_ms", "p95_ms", "x_base",
                "plan": {"index_only", "seq_scans": [{"table", "rows"}], "indexes"},
                "whole" (uuid kinds): {"uuids", "whole", "before", "floor", "round_trip":
                                         {"p50_ms", "p95_ms"},
                                       "rows", "x_uuids", "x_uuids_p95", "before_x_uuids",
                                       "before_x_uuids_p95", "added_ms", "floor_added_ms",
                                       "x_floor_added"}}],
     "check": {"failing": [kind names]}}

A skipped kind has no keys after ``skipped``. ``index_only`` is the ``plan`` column's
``index``: no Seq Scan on a big table (other tables may still be scanned).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.search_corpus import (  # noqa: E402
    END,
    RARE_PRODUCT,
    _agent_name,
    _agent_uuid,
    make_batch,
)
from benchmarks.search_plans import PlanInfo, PlanSource, summarize  # noqa: E402
from benchmarks.search_report import report, to_json  # noqa: E402
from benchmarks.search_whole import Side, time_sides  # noqa: E402
from conserver_supabase import (  # noqa: E402
    StorageConfig,
    SupabaseStorage,
)
from conserver_supabase._database._postgres import PostgresDatabase  # noqa: E402
from conserver_supabase._documents import dumps  # noqa: E402
from conserver_supabase._search import build_query  # noqa: E402


def load(url: str, count: int, batch_size: int, threads: int, seed: int, start: int = 0) -> float:
    """Seconds to insert ``count`` generated vCons with ``save_many``, ``threads`` batches
    at a time; ``start`` (a multiple of ``batch_size``) skips the corpus's first vCons, so
    a load of the rest adds exactly the vCons a larger load would have."""
    if start % batch_size:
        raise ValueError("start must be a multiple of the batch size")
    database = PostgresDatabase(
        StorageConfig.from_options(
            {"database_url": url, "timeout": 600, "pool_size": max(2, threads)}
        )
    )
    sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]
    done = 0
    lock = threading.Lock()
    started = time.perf_counter()
    last_report = started

    def one(batch: int) -> int:
        nonlocal done, last_report
        documents = make_batch(seed, start // batch_size + batch, sizes[batch])
        # With their exact texts, as SupabaseStorage.save_many sends them.
        database.save(documents, None, texts=[dumps(document) for document in documents])
        with lock:
            done += len(documents)
            now = time.perf_counter()
            if now - last_report >= 15:
                last_report = now
                rate = done / (now - started)
                print(f"  loaded {done:>7,} / {count:,} ({rate:,.0f} vCons/s)", flush=True)
        return len(documents)

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # map() submits indexes only: each worker generates its own batch, so at
            # most `threads` batches of documents are in memory at once.
            for _ in pool.map(one, range(len(sizes))):
                pass
    finally:
        database.close()
    elapsed = time.perf_counter() - started
    print(
        f"load: {count:,} vCons in {elapsed:.1f} s = {count / elapsed:,.0f} vCons/s "
        f"({len(sizes)} save_many batches of <= {batch_size}, {threads} threads)",
        flush=True,
    )
    return elapsed


# --- the kinds measured -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """One search to time and explain."""

    name: str
    filters: Mapping[str, Any]
    include_vcons: bool = False
    second_page: bool = False
    common: bool = False  # a value many vCons have: a Seq Scan may be the right plan


def pick_customer(url: str) -> tuple[str, str]:
    """A customer who has vCons: the tel (re-spelled) and name filter values."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT tel, name FROM parties WHERE party_index = 0 AND tel IS NOT NULL "
            "AND name IS NOT NULL ORDER BY vcon_id LIMIT 1"
        ).fetchone()
    if row is None:
        return "+1 415 555 0100", "priya okonkwo"
    digits = re.sub(r"\D", "", row[0])
    tel = f"+{digits[0]} {digits[1:4]} {digits[4:7]} {digits[7:]}" if len(digits) == 11 else digits
    return tel, str(row[1]).lower()


def kinds(tel: str, name: str) -> list[Kind]:
    agent = 17
    first, last = _agent_name(agent).split()
    recent = END - timedelta(days=90)
    return [
        Kind("no filter", {}),
        Kind("text", {"text": RARE_PRODUCT.lower()}),
        Kind("text*", {"text": "refund"}, common=True),
        Kind("subject", {"subject": "WARRANTY claim"}),
        Kind("tel", {"tel": tel}),
        Kind("mailto", {"mailto": f"MAILTO:{first}.{last}{agent}@Support.Example.com"}),
        Kind("name", {"name": name}),
        Kind("party_uuid", {"party_uuid": _agent_uuid(agent).upper()}),
        Kind("tags", {"tags": ["priority:urgent", "region:apac"]}),
        Kind("tags*", {"tags": ["channel:phone"]}, common=True),
        Kind("created range", {"created_after": "2024-06-03", "created_before": "2024-06-10"}),
        Kind("updated range", {"updated_after": "2024-03-01", "updated_before": "2024-03-04"}),
        Kind("dialog_type", {"dialog_type": "incomplete"}),
        Kind("analysis type+vendor", {"analysis_type": "diarization", "analysis_vendor": "aws"}),
        Kind(
            "3 filters",
            {
                "dialog_type": "recording",
                "tags": ["channel:phone"],
                "created_after": recent.isoformat(),
            },
        ),
        Kind("page 2 (no filter)", {}, second_page=True),
        Kind("page 2 (party_uuid)", {"party_uuid": _agent_uuid(agent)}, second_page=True),
        Kind("include_vcons", {}, include_vcons=True),
    ]


# --- timing ---------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Timing:
    rows: int
    matches: int
    matches_capped: bool  # counting stopped at --count-cap: at least ``matches``
    p50_ms: float
    p95_ms: float

    @property
    def matches_text(self) -> str:
        return f"{'>=' if self.matches_capped else ''}{self.matches:,}"


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def count_matches(
    storage: SupabaseStorage, filters: Mapping[str, Any], cap: int
) -> tuple[int, bool]:
    """How many vCons the filters match, by paging 1000 uuids at a time, and whether
    counting stopped at ``cap`` (then there are at least that many)."""
    total, cursor = 0, None
    while total < cap:
        page = storage.search(filters, limit=1000, cursor=cursor)
        total += len(page)
        cursor = page.next_cursor
        if cursor is None:
            return total, False
    return total, True


def cursor_for(storage: SupabaseStorage, kind: Kind, limit: int) -> str | None:
    if not kind.second_page:
        return None
    return storage.search(kind.filters, limit=limit).next_cursor


@dataclasses.dataclass(frozen=True, slots=True)
class Sides:
    """What the whole-vCon contenders need besides the storage (search_whole.py)."""

    database: PostgresDatabase
    conn: Any


def time_kind(
    storage: SupabaseStorage, kind: Kind, limit: int, repeat: int, cap: int, sides: Sides
) -> tuple[Timing | None, Side | None]:
    """The kind's timing; for a uuid kind, from the run that takes turns with the same
    search returning whole vCons (and its floor), which it returns too."""
    cursor = cursor_for(storage, kind, limit)
    if kind.second_page and cursor is None:
        return None, None
    if not kind.include_vcons:
        side = time_sides(
            storage,
            sides.database,
            sides.conn,
            kind.filters,
            limit=limit,
            cursor=cursor,
            repeat=repeat,
        )
        matches, capped = count_matches(storage, kind.filters, cap)
        uuids = side.stats["uuids"]
        timing = Timing(side.rows, matches, capped, uuids.p50_ms, uuids.p95_ms)
        return timing, side

    def call() -> int:
        page = storage.search(
            kind.filters, limit=limit, cursor=cursor, include_vcons=kind.include_vcons
        )
        return len(page)

    for _ in range(2):  # warm-up: connection, caches
        call()
    samples = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = call()
        samples.append((time.perf_counter() - started) * 1000)
    matches, capped = count_matches(storage, kind.filters, cap)
    timing = Timing(
        rows=rows,
        matches=matches,
        matches_capped=capped,
        p50_ms=statistics.median(samples),
        p95_ms=_percentile(samples, 0.95),
    )
    return timing, None


# --- main -----------------------------------------------------------------------------


def prepare(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Migrates, loads and analyzes; returns the run metadata ``--json`` records."""
    import psycopg

    from conserver_supabase import _migrations as migrations

    applied = migrations.apply(url)
    print(f"migrations applied: {[f'{m.version:04d}_{m.name}' for m in applied] or 'none'}")
    load_seconds = load(url, args.count, args.batch, args.threads, args.seed) if args.count else 0.0
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "VACUUM (ANALYZE) vcons, parties, dialog, analysis, attachments, "
            "conserver_vcon_documents"
        )
        row = conn.execute(
            "SELECT (SELECT count(*) FROM vcons), (SELECT count(*) FROM parties), "
            "(SELECT count(*) FROM dialog), (SELECT count(*) FROM analysis), "
            "(SELECT count(*) FROM attachments), current_setting('server_version')"
        ).fetchone()
    assert row is not None
    print(f"VACUUM (ANALYZE): {time.perf_counter() - started:.1f} s")
    print(
        f"rows: vcons {row[0]:,}, parties {row[1]:,}, dialog {row[2]:,}, "
        f"analysis {row[3]:,}, attachments {row[4]:,} (PostgreSQL {row[5]})"
    )
    return {
        "postgres_version": str(row[5]),
        "tables": dict(
            zip(("vcons", "parties", "dialog", "analysis", "attachments"), row[:5], strict=True)
        ),
        "load_seconds": round(load_seconds, 1),
    }


Result = tuple[Kind, Timing | None, PlanInfo | None]


def run(url: str, args: argparse.Namespace) -> int:
    import psycopg

    meta = prepare(url, args)
    storage = SupabaseStorage(
        # search never touches Redis (one database call); the URL is only configuration
        {"database_url": url, "redis_url": "redis://127.0.0.1:6379/0", "timeout": 60}
    )
    plans = PlanSource(url)
    sides = Sides(
        PostgresDatabase(StorageConfig.from_options({"database_url": url, "timeout": 60})),
        psycopg.connect(url, autocommit=True),
    )
    tel, name = pick_customer(url)
    print(f"plans: {plans.method}")
    print(f"timing: {args.repeat} calls per kind after 2 warm-ups, limit {args.limit}\n")
    results: list[Result] = []
    whole: list[tuple[str, Side]] = []
    try:
        for kind in kinds(tel, name):
            timing, side = time_kind(storage, kind, args.limit, args.repeat, args.count_cap, sides)
            info = None
            if timing is not None:
                # The plan of the page: for whole vCons too (the json form pages with the
                # same condition, then reads the documents by primary key).
                query = build_query(
                    kind.filters, limit=args.limit, cursor=cursor_for(storage, kind, args.limit)
                )
                info = summarize(plans.plan(query))
            results.append((kind, timing, info))
            if side is not None:
                whole.append((kind.name, side))
            print(f"  measured {kind.name}", flush=True)
    finally:
        plans.close()
        storage.close()
        sides.database.close()
        sides.conn.close()
    if args.json:
        meta["plans_from"] = plans.method
        document = to_json(results, args, meta, dict(whole))
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return report(results, args, whole)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="vCons to load (0: none)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per kind")
    parser.add_argument("--database-url", help="a scratch database (default: embedded)")
    parser.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    parser.add_argument("--batch", type=int, default=500, help="vCons per save_many")
    parser.add_argument(
        "--threads", type=int, default=max(2, min(4, os.cpu_count() or 2)), help="load threads"
    )
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument("--count-cap", type=int, default=200_000, help="stop counting matches here")
    parser.add_argument("--check", action="store_true", help="exit 1 on a Seq Scan (see above)")
    parser.add_argument("--show-plans", action="store_true", help="print every kind's plan")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.count < 0 or args.batch < 1 or args.threads < 1:
        parser.error("--repeat, --batch and --threads must be >= 1, --count >= 0")
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
