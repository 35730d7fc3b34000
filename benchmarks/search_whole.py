"""Whole vCons beside uuids, for the search benchmark (``benchmarks/search.py``).

For one filter kind, five contenders take turns call by call (the order shuffled each
round), so the machine's load falls on all of them alike:

* ``uuids``   ``SupabaseStorage.search`` returning uuids (the page alone);
* ``whole``   the same search with ``include_vcons=True`` (ours: the page and its vCons
  in one statement, each vCon parsed once);
* ``before``  the same page through the jsonb form of ``conserver_vcon_search`` with
  ``include_vcons`` (what the storage called before: one document read per hit by
  ``conserver_vcon_read``, each text a JSON string inside the answer, parsed twice),
  turned into the page by the same ``read_page``;
* ``floor``   the bare ``SELECT`` of the page's document texts by uuid, on a connection
  of its own, and ``json.loads`` of each: what any design must add to the page, plus one
  round trip;
* ``round trip``  ``SELECT 1`` on that connection: the round trip the floor includes.

What whole vCons add is ``whole - uuids``; the least any design can add is
``floor - round trip`` (the page is already found, the texts travel in the same answer).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conserver_supabase import SupabaseStorage
from conserver_supabase._database._functions import FUNCTIONS
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase._search import build_query, read_page

__all__ = ["CONTENDERS", "Side", "Stats", "render_sides", "time_sides"]

CONTENDERS = ("uuids", "whole", "before", "floor", "round trip")


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        ordered = sorted(samples)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return cls(statistics.median(ordered), p95)


@dataclasses.dataclass(frozen=True, slots=True)
class Side:
    """One kind's contenders, from one interleaved run."""

    rows: int
    stats: Mapping[str, Stats]

    def ratio(self, name: str, of: str = "uuids", field: str = "p50_ms") -> float:
        return float(getattr(self.stats[name], field) / getattr(self.stats[of], field))

    @property
    def added_ms(self) -> float:
        """What whole vCons add to the uuid search (p50s)."""
        return self.stats["whole"].p50_ms - self.stats["uuids"].p50_ms

    @property
    def floor_added_ms(self) -> float:
        """The least whole vCons can add: the floor without its round trip (p50s)."""
        return self.stats["floor"].p50_ms - self.stats["round trip"].p50_ms

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            name.replace(" ", "_"): {"p50_ms": round(s.p50_ms, 3), "p95_ms": round(s.p95_ms, 3)}
            for name, s in self.stats.items()
        }
        found |= {
            "rows": self.rows,
            "x_uuids": round(self.ratio("whole"), 2),
            "x_uuids_p95": round(self.ratio("whole", field="p95_ms"), 2),
            "before_x_uuids": round(self.ratio("before"), 2),
            "before_x_uuids_p95": round(self.ratio("before", field="p95_ms"), 2),
            "added_ms": round(self.added_ms, 3),
            "floor_added_ms": round(self.floor_added_ms, 3),
            "x_floor_added": round(self.added_ms / self.floor_added_ms, 2)
            if self.floor_added_ms > 0
            else None,
        }
        return found


def time_sides(
    storage: SupabaseStorage,
    database: PostgresDatabase,
    conn: Any,
    filters: Mapping[str, Any],
    *,
    limit: int,
    cursor: str | None,
    repeat: int,
) -> Side:
    """The five contenders on one kind, ``repeat`` turns each after two warm-up turns."""
    before_query = build_query(filters, limit=limit, cursor=cursor, include_vcons=True)
    page = storage.search(filters, limit=limit, cursor=cursor)
    uuids = list(page.items)

    def floor() -> int:
        rows = conn.execute(
            "SELECT coalesce(document_text, document::text) FROM conserver_vcon_documents"
            " WHERE uuid = ANY(%s::uuid[])",
            [uuids],
        ).fetchall()
        return len([json.loads(row[0]) for row in rows])

    def before() -> int:
        result = database.call(FUNCTIONS["search"], [before_query], None)
        return len(read_page(before_query, result))

    calls: dict[str, Callable[[], int]] = {
        "uuids": lambda: len(storage.search(filters, limit=limit, cursor=cursor)),
        "whole": lambda: len(
            storage.search(filters, limit=limit, cursor=cursor, include_vcons=True)
        ),
        "before": before,
        "floor": floor,
        "round trip": lambda: len(conn.execute("SELECT 1").fetchall()),
    }
    counts = {name: call() for name, call in calls.items() for _ in range(2)}  # warm-up
    if not counts["whole"] == counts["before"] == counts["uuids"] == len(uuids):
        raise RuntimeError(f"the contenders disagree on the page: {counts}")
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    shuffle = random.Random(len(uuids)).shuffle  # noqa: S311 - an order, not a secret
    for _ in range(repeat):
        shuffle(order)
        for name in order:
            started = time.perf_counter()
            calls[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return Side(rows=len(uuids), stats={name: Stats.of(s) for name, s in samples.items()})


def render_sides(sides: Sequence[tuple[str, Side]]) -> tuple[list[str], list[list[str]]]:
    """The headers and rows of the whole-vCons table."""
    headers = [
        "kind",
        "rows",
        "uuids p50/p95",
        "whole p50/p95",
        "x uuids p50/p95",
        "before x uuids",
        "added ms",
        "floor added ms",
        "x floor added",
    ]
    rows = []
    for name, side in sides:
        s = side.stats
        rows.append(
            [
                name,
                str(side.rows),
                f"{s['uuids'].p50_ms:.2f} / {s['uuids'].p95_ms:.2f}",
                f"{s['whole'].p50_ms:.2f} / {s['whole'].p95_ms:.2f}",
                f"{side.ratio('whole'):.2f} / {side.ratio('whole', field='p95_ms'):.2f}",
                f"{side.ratio('before'):.2f}",
                f"{side.added_ms:.2f}",
                f"{side.floor_added_ms:.2f}",
                f"{side.added_ms / side.floor_added_ms:.2f}" if side.floor_added_ms > 0 else "-",
            ]
        )
    return headers, rows
