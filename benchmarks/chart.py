"""The chart of docs/performance.md, drawn from the JSON the benchmarks wrote.

    python benchmarks/chart.py [--docs docs] [--out docs/performance.png]

It reads ``bench-round-trips.json``, ``bench-cache-hit.json``, ``bench-bulk-ingest.json``,
``bench-bulk-ingest-redis-1ms.json``, ``bench-backfill-memory.json`` and
``bench-search.json`` from ``--docs`` (``make bench`` writes them) and plots ratios, the
figures the docs quote: nothing here is measured, only drawn. Needs the ``bench``
extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

OURS, BASELINE, FLOOR = "#1f77b4", "#d62728", "#7f7f7f"


def _load(docs: Path, name: str) -> Any:
    return json.loads((docs / f"bench-{name}.json").read_text("utf-8"))


def _round_trips(ax: Any, results: dict[str, Any]) -> None:
    operations = [name for name in results["operations"] if name != "get hit"]
    ours = [results["operations"][n]["ours"]["round_trips"] for n in operations]
    base = [results["operations"][n]["baseline"]["round_trips"] for n in operations]
    x = range(len(operations))
    ax.bar([i - 0.2 for i in x], ours, 0.4, label="ours", color=OURS)
    ax.bar([i + 0.2 for i in x], base, 0.4, label="example design", color=BASELINE)
    for i, (o, b) in enumerate(zip(ours, base, strict=True)):
        ax.annotate(f"{o:g}", (i - 0.2, o), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{b:g}", (i + 0.2, b), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(list(x), operations, rotation=20, ha="right")
    ax.set_title("database round trips per operation")
    ax.legend(fontsize=8)


def _latency(ax: Any, results: dict[str, Any]) -> None:
    transports = {"psycopg": results["operations"]}
    if "postgrest" in results:
        transports["PostgREST"] = results["postgrest"]["operations"]
    operations = list(results["operations"])
    width = 0.8 / len(transports)
    for t, (name, table) in enumerate(transports.items()):
        ratios = [table[n]["latency_ratio_p50"] for n in operations]
        offset = (t - (len(transports) - 1) / 2) * width
        ax.bar([i + offset for i in range(len(operations))], ratios, width, label=name)
    ax.axhline(1.0, color=FLOOR, linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(operations)), operations, rotation=20, ha="right")
    ax.set_title(f"p50 latency, ours / example ({results['latency_ms']:g} ms per request)")
    ax.legend(fontsize=8)


def _cache_hit(ax: Any, results: dict[str, Any]) -> None:
    names = list(results)
    ratios = [results[n]["ratio_p50"] for n in names]
    bars = ax.bar(range(len(names)), ratios, 0.6, color=OURS)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color=FLOOR, linestyle="--", linewidth=1, label="bare redis-py call")
    ax.axhline(1.3, color=BASELINE, linestyle=":", linewidth=1, label="target 1.3x")
    ax.set_ylim(0, 1.6)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_title("cache hit, ours / floor (p50)")
    ax.legend(fontsize=8, loc="lower right")


def _bulk(ax: Any, local: dict[str, Any], remote: dict[str, Any]) -> None:
    cases = list(local["cases"])
    x = range(len(cases))
    runs = ((-0.2, "Redis local", local), (0.2, "Redis 1 ms away", remote))
    for offset, label, run in runs:
        values = [run["cases"][c]["of_floor"] for c in cases]
        bars = ax.bar([i + offset for i in x], values, 0.4, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(list(x), [textwrap.fill(c, 14) for c in cases], fontsize=7)
    ax.set_title(f"bulk ingest of {local['count']:,} vCons, vCons/s as a share of the floor")
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=8)


def _search(ax: Any, results: dict[str, Any]) -> None:
    kinds = [k for k in results["kinds"] if not k.get("skipped")]
    colors = [OURS if k["plan"]["index_only"] else BASELINE for k in kinds]
    ax.barh(range(len(kinds)), [k["x_base"] for k in kinds], color=colors)
    ax.set_yticks(range(len(kinds)), [k["name"] for k in kinds], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color=FLOOR, linestyle="--", linewidth=1)
    ax.set_title(
        f"search on {results['run']['count']:,} vCons: p50 / unfiltered page\n"
        "(* a common value; all plans index-only)"
        if all(k["plan"]["index_only"] for k in kinds)
        else f"search on {results['run']['count']:,} vCons: p50 / unfiltered page",
        fontsize=9,
    )


def _memory(ax: Any, results: dict[str, Any]) -> None:
    sizes = list(results)
    x = range(len(sizes))
    ax.bar([i - 0.2 for i in x], [results[s]["input_mib"] for s in sizes], 0.4,
           label="input MiB", color=FLOOR)  # fmt: skip
    bars = ax.bar([i + 0.2 for i in x], [results[s]["peak_rss_mib"] for s in sizes], 0.4,
                  label="peak RSS MiB", color=OURS)  # fmt: skip
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(list(x), [f"{int(s):,} vCons" for s in sizes])
    ax.set_title("backfill peak memory as the input grows")
    ax.legend(fontsize=8)


def draw(docs: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 10))
    trips = _load(docs, "round-trips")
    _round_trips(axes[0][0], trips)
    _latency(axes[0][1], trips)
    _cache_hit(axes[0][2], _load(docs, "cache-hit"))
    _bulk(axes[1][0], _load(docs, "bulk-ingest"), _load(docs, "bulk-ingest-redis-1ms"))
    _search(axes[1][1], _load(docs, "search"))
    _memory(axes[1][2], _load(docs, "backfill-memory"))
    fig.suptitle("conserver-supabase benchmarks (make bench; ratios from one run each)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--out", type=Path, default=Path("docs/performance.png"))
    args = parser.parse_args()
    draw(args.docs, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
