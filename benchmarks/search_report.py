"""The report of the search benchmark (``benchmarks/search.py``): the timing table, the
indexes of each plan, the whole vCons beside uuids (``benchmarks/search_whole.py``), the
warnings and ``--check``'s verdict on stdout, and the document ``--json`` writes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchmarks.search_plans import render_plan
from benchmarks.search_whole import Side, render_sides

if TYPE_CHECKING:
    from benchmarks.search import Result

__all__ = ["base_p50", "failing_kinds", "report", "table", "to_json"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def base_p50(results: Sequence[Result]) -> float | None:
    """The p50 of ``no filter`` (the newest page), which ``x base`` divides by."""
    return next((t.p50_ms for k, t, _ in results if k.name == "no filter" and t), None)


def failing_kinds(results: Sequence[Result]) -> list[str]:
    """Kinds ``--check`` fails on: a Seq Scan of a big table where no common value allows it."""
    return [k.name for k, _, info in results if info and info.seq_scans and not k.common]


def to_json(
    results: Sequence[Result],
    args: argparse.Namespace,
    meta: Mapping[str, Any],
    whole: Mapping[str, Side],
) -> dict[str, Any]:
    """The document ``--json`` writes (its shape is in the module docstring)."""
    base = base_p50(results)
    entries: list[dict[str, Any]] = []
    for kind, timing, info in results:
        entry: dict[str, Any] = {
            "name": kind.name,
            "filters": dict(kind.filters),
            "include_vcons": kind.include_vcons,
            "second_page": kind.second_page,
            "common": kind.common,
            "skipped": None,
        }
        if timing is None or info is None:
            entry["skipped"] = "no second page"
        else:
            entry |= {
                "rows": timing.rows,
                "matches": timing.matches,
                "matches_capped": timing.matches_capped,
                "p50_ms": round(timing.p50_ms, 3),
                "p95_ms": round(timing.p95_ms, 3),
                "x_base": round(timing.p50_ms / base, 2) if base else None,
                "plan": info.summary(),
            }
            if kind.name in whole:
                entry["whole"] = whole[kind.name].as_json()
        entries.append(entry)
    run_meta = {
        "count": args.count,
        "repeat": args.repeat,
        "limit": args.limit,
        "seed": args.seed,
        "batch": args.batch,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        **meta,
    }
    return {"run": run_meta, "kinds": entries, "check": {"failing": failing_kinds(results)}}


def report(
    results: Sequence[Result], args: argparse.Namespace, whole: Sequence[tuple[str, Side]]
) -> int:
    """Prints the tables and warnings; 1 when ``--check`` fails, else 0."""
    base = base_p50(results)
    rows: list[list[str]] = []
    index_rows: list[list[str]] = []
    failing = failing_kinds(results)
    warnings: list[str] = []
    for kind, timing, info in results:
        if timing is None or info is None:
            rows.append([kind.name, "-", "-", "-", "-", "-", "skipped: no second page"])
            continue
        ratio = f"{timing.p50_ms / base:.2f}" if base else "-"
        verdict = "index" if not info.seq_scans else "SEQ " + ", ".join(info.seq_scan_labels)
        rows.append(
            [
                kind.name,
                str(timing.rows),
                timing.matches_text,
                f"{timing.p50_ms:.2f}",
                f"{timing.p95_ms:.2f}",
                ratio,
                verdict,
            ]
        )
        index_rows.append([kind.name, ", ".join(info.indexes) or "(none)"])
        if not info.indexes:
            warnings.append(f"WARNING: {kind.name}: the plan uses no index")
        if info.seq_scans:
            allowed = " (allowed: common value)" if kind.common else ""
            warnings.append(
                f"WARNING: {kind.name}: Seq Scan on {', '.join(info.seq_scan_labels)}{allowed}"
            )
        if (info.seq_scans or not info.indexes or args.show_plans) and info.plan:
            warnings.extend(f"    {line}" for line in render_plan(info.plan))
    headers = ["kind", "rows", "matches", "p50 ms", "p95 ms", "x base", "plan"]
    print()
    print("\n".join(table(headers, rows, right={1, 2, 3, 4, 5})))
    print()
    print("\n".join(table(["kind", "indexes in the plan"], index_rows, right=set())))
    print()
    if whole:
        headers, whole_rows = render_sides(whole)
        print("whole vCons beside uuids (the same search, taking turns call by call):")
        print("\n".join(table(headers, whole_rows, right=set(range(1, len(headers))))))
        print()
    for line in warnings:
        print(line)
    if not warnings:
        print("every kind reads the big tables through indexes only")
    print("\n(* = a common value: a Seq Scan is accepted there by --check)")
    if args.check and failing:
        print(f"--check: Seq Scan on a big table in: {', '.join(failing)}")
        return 1
    return 0
