"""The Python side of a save, part by part, against floors in the same run (issue 18):
validation, RedisJSON's number check and the exact text's parameter, per vCon, for a
standard vCon and for one with a 1 MiB inline recording.

    python benchmarks/prepare.py [--repeat 41] [--batch 500] [--json FILE]

No profiler (cProfile inflates code that makes many small calls), the contenders taking
turns sample by sample; each sample is ``--batch`` standard vCons or one large one.

* ``validate_vcon`` and ``holds_exactly`` against ``dumps`` of the same documents (one
  pass of the C encoder over them): compare these ratios across commits (run this
  script at each), not the times;
* the exact text as the psycopg transport passes it (the jsonb value and its literal in
  the simple query) against psycopg's own ``Jsonb`` of the same text, json.dumps and
  libpq's quoting (what the transport sent before ``exact_jsonb``), both through
  ``Transformer.as_literal``, which ClientCursor calls for each argument.

One embedded PostgreSQL, for the connection that quotes. Quote the ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.adapt import Transformer  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from benchmarks.exact_text import vcon as kind_vcon  # noqa: E402
from conserver_supabase import validate_vcon  # noqa: E402
from conserver_supabase._database import _postgres  # noqa: E402
from conserver_supabase._database._functions import ExactText  # noqa: E402
from conserver_supabase._documents import dumps  # noqa: E402
from conserver_supabase._redis import holds_exactly  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres  # noqa: E402


def interleaved(contenders: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Any]:
    """p50 / p95 ms of each contender, taking turns (the order rotating each round)."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(3):  # warm up
        for call in contenders.values():
            call()
    for round_ in range(repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started = time.perf_counter()
            contenders[name]()
            samples[name].append(time.perf_counter() - started)
    found = {}
    for name, values in samples.items():
        values.sort()
        found[name] = {
            "p50_ms": round(statistics.median(values) * 1000, 4),
            "p95_ms": round(values[min(len(values) - 1, int(len(values) * 0.95))] * 1000, 4),
        }
    return found


def each(call: Callable[[Any], Any], items: list[Any]) -> Callable[[], Any]:
    """One sample: ``call`` of every item."""
    return lambda: [call(item) for item in items]


def quoted(transformer: Any, wrapper: Any) -> Callable[[str], Any]:
    """The literal a ClientCursor writes into its query of a text wrapped in ``wrapper``
    (``Transformer.as_literal``: the value's dump, quoted, with its cast)."""
    return lambda text: transformer.as_literal(wrapper(text))


def ratios(found: dict[str, Any], floor: str) -> None:
    for entry in found.values():
        for q in ("p50", "p95"):
            entry[f"x_{q}"] = round(entry[f"{q}_ms"] / found[floor][f"{q}_ms"], 3)


def run(url: str, repeat: int, batch: int) -> dict[str, Any]:
    cases = {
        "standard": [standard_vcon(i) for i in range(batch)],
        "1 MiB recording": [kind_vcon("1 MiB recording", 1)],
    }
    exact = getattr(_postgres, "exact_jsonb", None)  # absent before it was written
    results: dict[str, Any] = {"repeat": repeat, "batch": batch, "cases": {}}
    with psycopg.connect(url, autocommit=True) as conn:
        transformer = Transformer(conn)
        for case, documents in cases.items():
            texts = [ExactText(dumps(document)) for document in documents]
            checks = interleaved(
                {
                    "dumps (floor)": each(dumps, documents),
                    "validate_vcon": each(validate_vcon, documents),
                    "holds_exactly": each(holds_exactly, documents),
                },
                repeat,
            )
            ratios(checks, "dumps (floor)")
            parameter = {"psycopg Jsonb + libpq quoting": each(quoted(transformer, Jsonb), texts)}
            if exact is not None:
                parameter["exact_jsonb (ours)"] = each(quoted(transformer, exact()), texts)
            literal = interleaved(parameter, repeat)
            ratios(literal, "psycopg Jsonb + libpq quoting")
            results["cases"][case] = {
                "documents": len(documents),
                "text_bytes": len(texts[0].encode()),
                "checks": checks,
                "parameter": literal,
            }
    return results


def render(results: dict[str, Any]) -> str:
    lines = [f"the Python side of a save ({results['repeat']} samples per contender)"]
    for case, found in results["cases"].items():
        lines.append(
            f"  {case} ({found['documents']} per sample, text {found['text_bytes']:,} B):"
            f"{'p50 ms':>14}{'p95 ms':>10}{'x p50':>8}{'x p95':>8}"
        )
        for part in ("checks", "parameter"):
            for name, entry in found[part].items():
                lines.append(
                    f"    {name:32}{entry['p50_ms']:10.3f}{entry['p95_ms']:10.3f}"
                    f"{entry['x_p50']:8.3f}{entry['x_p95']:8.3f}"
                )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--repeat", type=int, default=41, help="samples per contender")
    parser.add_argument("--batch", type=int, default=500, help="standard vCons per sample")
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres:
        results = run(postgres.url, args.repeat, args.batch)
    return report(results, render, args.json)


if __name__ == "__main__":
    sys.exit(main())
