"""The change log's cost on our save path: saves with the change-feed triggers and
without them, side by side in one run.

    python benchmarks/change_feed.py [--repeat 300] [--batch 100] [--json FILE]

Two databases copied from one migrated template on one embedded PostgreSQL: "on" as
migrated; "off" with the triggers of migration 0004 disabled (the statement triggers on
vcons, parties, dialog, analysis and attachments, whose WHEN clause skips our own
statements but which still capture their transition tables, and the row trigger on the
document table that appends the change row). Everything else is the same SQL. A third,
"before", also runs main's ``conserver_vcon_write`` as it was before the change feed
(git 34b4e0b, from tests/data/migrations/34b4e0b/): the whole increment's cost. A fourth,
"notify", is "on" with a consumer waiting on LISTEN (the triggers then also send NOTIFY,
migration 0005). The calls
go straight to the SQL functions over psycopg (no Redis, no network delay): what is
timed is the database's work.

* save, new: ``conserver_vcon_save`` of a standard vCon (2 parties, 3 dialogs, 3
  analyses, 2 attachments) with a fresh uuid;
* save, again: the same vCon saved a second time (every row updated);
* save_many: batches of ``--batch`` fresh standard vCons, vCons per second.

The two databases take turns call by call, so drift of the machine touches both alike.
Quote the ratios (on / off, on / before, notify / off): absolute times depend on the
machine.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from benchmarks._report import command_line, report  # noqa: E402
from benchmarks.cache_hit import standard_vcon  # noqa: E402
from conserver_supabase import _migrations as migrations  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres  # noqa: E402

#: Migration 0004's triggers: (table, trigger).
FEED_TRIGGERS = [
    (table, f"conserver_vcon_feed_{event}")
    for table in ("vcons", "parties", "dialog", "analysis", "attachments")
    for event in ("insert", "update", "delete")
] + [("conserver_vcon_documents", "conserver_vcon_record_change")]


def write_before() -> str:
    """conserver_vcon_write as main had it at 34b4e0b (its printed script's section), without
    its privileges call (the grants helper exists only while migrating)."""
    script = (ROOT / "tests/data/migrations/34b4e0b/printed_script.sql.txt").read_text("utf-8")
    start = script.index("-- ===== functions/conserver_vcon_write.sql =====")
    section = script[start : script.index("-- =====", start + 10)]
    return "\n".join(line for line in section.splitlines() if not line.startswith("CALL "))


def fresh(seed: int) -> dict[str, Any]:
    document = standard_vcon(seed)
    document["uuid"] = str(uuid.uuid4())
    return document


def _measure(
    conns: dict[str, Any], repeat: int, batch: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Seconds per save by mode and operation, and vCons per second of each save_many."""
    times: dict[str, dict[str, list[float]]] = {
        mode: {"save, new": [], "save, again": []} for mode in conns
    }
    per_second: dict[str, list[float]] = {mode: [] for mode in conns}

    def save(mode: str, document: dict[str, Any]) -> float:
        started = time.perf_counter()
        conns[mode].execute("SELECT conserver_vcon_save(%s)", [Jsonb(document)])
        return time.perf_counter() - started

    for i in range(10):  # warm both (plans, caches)
        for mode in conns:
            save(mode, fresh(i))
    for i in range(repeat):
        document = fresh(i)
        for mode in conns if i % 2 else reversed(list(conns)):
            times[mode]["save, new"].append(save(mode, document))
            times[mode]["save, again"].append(save(mode, document))
    for i in range(max(3, repeat // 50)):
        documents = [fresh(i * batch + j) for j in range(batch)]
        for mode in conns if i % 2 else reversed(list(conns)):
            started = time.perf_counter()
            conns[mode].execute("SELECT conserver_vcon_save_many(%s)", [Jsonb(documents)])
            per_second[mode].append(batch / (time.perf_counter() - started))
    return times, per_second


def _set_up(conns: dict[str, Any]) -> None:
    """Each mode's database as its docstring says (they start as one migrated copy)."""
    for mode in ("off", "before"):
        for table, trigger in FEED_TRIGGERS:
            conns[mode].execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    conns["before"].execute(write_before())
    # A consumer waiting on LISTEN (its cursor polled "now" for the whole run): every
    # change also sends NOTIFY.
    conns["notify"].execute(
        "INSERT INTO conserver_vcon_feed_cursors (name, watermark, listen, updated_at)"
        " VALUES ('bench', '0', true, now() + interval '1 day')"
    )


def run(admin_url: str, repeat: int = 300, batch: int = 100) -> dict[str, Any]:
    from tests.support.services import with_database

    template = "bench_feed_template"
    names = {"on": "bench_feed_on", "off": "bench_feed_off", "before": "bench_feed_before",
             "notify": "bench_feed_notify"}  # fmt: skip
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
        conn.execute(f'CREATE DATABASE "{template}"')
    migrations.apply(with_database(admin_url, template))
    conns: dict[str, Any] = {}
    try:
        for mode, name in names.items():
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            conns[mode] = psycopg.connect(with_database(admin_url, name), autocommit=True)
        _set_up(conns)

        times, per_second = _measure(conns, repeat, batch)
        logged = conns["on"].execute("SELECT count(*) FROM conserver_vcon_changes").fetchone()
        assert logged is not None
        assert logged[0] > 0, logged
        for mode in ("off", "before"):
            unlogged = conns[mode].execute("SELECT count(*) FROM conserver_vcon_changes").fetchone()
            assert unlogged == (0,), unlogged
        version = conns["on"].execute("SHOW server_version").fetchone()
    finally:
        for conn in conns.values():
            conn.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in [*names.values(), template]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def quantiles(samples: list[float]) -> dict[str, float]:
        cuts = statistics.quantiles(samples, n=100)
        return {"p50_ms": round(cuts[49] * 1000, 3), "p95_ms": round(cuts[94] * 1000, 3)}

    operations: dict[str, Any] = {}
    for operation in ("save, new", "save, again"):
        on, off = quantiles(times["on"][operation]), quantiles(times["off"][operation])
        before = quantiles(times["before"][operation])
        notify = quantiles(times["notify"][operation])
        operations[operation] = {
            "on": on,
            "off": off,
            "before": before,
            "notify": notify,
            "ratio_notify_p50": round(notify["p50_ms"] / off["p50_ms"], 3),
            "ratio_p50": round(on["p50_ms"] / off["p50_ms"], 3),
            "ratio_p95": round(on["p95_ms"] / off["p95_ms"], 3),
            "ratio_before_p50": round(on["p50_ms"] / before["p50_ms"], 3),
        }
    rate_on = statistics.median(per_second["on"])
    rate_off = statistics.median(per_second["off"])
    rate_before = statistics.median(per_second["before"])
    rate_notify = statistics.median(per_second["notify"])
    operations[f"save_many of {batch}"] = {
        "on": {"vcons_per_second": round(rate_on, 1)},
        "off": {"vcons_per_second": round(rate_off, 1)},
        "before": {"vcons_per_second": round(rate_before, 1)},
        "notify": {"vcons_per_second": round(rate_notify, 1)},
        "ratio_notify": round(rate_notify / rate_off, 3),
        "ratio": round(rate_on / rate_off, 3),
        "ratio_before": round(rate_on / rate_before, 3),
    }
    return {
        "repeat": repeat,
        "batch": batch,
        "postgres_version": version[0] if version else None,
        "operations": operations,
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"the change log on our save path (PostgreSQL {results['postgres_version']}, "
        f"{results['repeat']} saves each)",
        f"{'operation':<22}{'on p50':>9}{'off p50':>9}{'x':>7}{'on p95':>9}{'off p95':>9}"
        f"{'x':>7}{'before p50':>12}{'x':>7}{'notify p50':>12}{'x':>7}",
    ]
    for name, r in results["operations"].items():
        if "ratio_p50" in r:
            lines.append(
                f"{name:<22}{r['on']['p50_ms']:>9.3f}{r['off']['p50_ms']:>9.3f}{r['ratio_p50']:>7}"
                f"{r['on']['p95_ms']:>9.3f}{r['off']['p95_ms']:>9.3f}{r['ratio_p95']:>7}"
                f"{r['before']['p50_ms']:>12.3f}{r['ratio_before_p50']:>7}"
                f"{r['notify']['p50_ms']:>12.3f}{r['ratio_notify_p50']:>7}"
            )
        else:
            lines.append(
                f"{name:<22}{r['on']['vcons_per_second']:>9.0f}"
                f"{r['off']['vcons_per_second']:>9.0f}{r['ratio']:>7}"
                f"{'':>18}{r['before']['vcons_per_second']:>12.0f}{r['ratio_before']:>7}"
                f"{r['notify']['vcons_per_second']:>12.0f}{r['ratio_notify']:>7}  (vCons/s)"
            )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres:
        results = run(postgres.url, args.repeat, args.batch)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
