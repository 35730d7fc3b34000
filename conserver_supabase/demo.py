"""``conserver-supabase demo``: a short, timed session against a real database."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any, TextIO

from . import migrations
from .config import StorageConfig, redact_url
from .database.postgres import PostgresDatabase
from .errors import ConserverSupabaseError
from .testing import make_vcon
from .validation import validate_vcon

__all__ = ["run_demo"]


def run_demo(config: StorageConfig, *, count: int, out: TextIO) -> dict[str, list[float]]:
    """Run the session, print a report to ``out``; return the timings (ms) per operation."""
    assert config.database_url is not None
    url = config.database_url.reveal()
    print(f"database: {redact_url(url)} (schema {config.schema})", file=out)
    applied = migrations.apply(url, config.schema)
    print(
        f"migrations: {len(applied)} applied, "
        f"{len(migrations.available()) - len(applied)} already there",
        file=out,
    )

    documents = [make_vcon(seed=i, vcon_uuid=str(uuid.uuid4())) for i in range(count)]
    timings: dict[str, list[float]] = {}
    db = PostgresDatabase(config)

    def timed(name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    try:
        for doc in documents:
            timed("validate", partial(validate_vcon, doc))
            timed("save (new)", partial(db.save, doc, doc["uuid"]))
        identical = sum(timed("load", partial(db.load, doc["uuid"])) == doc for doc in documents)
        versions = []
        for doc in documents:
            doc["subject"] += " (updated)"
            doc["dialog"].pop()  # the vCon shrinks: its old dialog row must go
            versions.append(timed("save (again)", partial(db.save, doc, doc["uuid"])))
        batch = timed("save_many", partial(db.save_many, documents))
        found = timed("load_many", partial(db.load_many, [d["uuid"] for d in documents]))
        deleted = sum(timed("delete", partial(db.delete, doc["uuid"])) for doc in documents)
        gone = timed("load (missing)", partial(db.load, documents[0]["uuid"]))
    except BaseException:
        with suppress(ConserverSupabaseError):  # keep the original error visible
            for doc in documents:  # interrupted: leave nothing behind
                db.delete(doc["uuid"])
        raise
    finally:
        db.close()

    print(f"\n{count} generated vCons, one database round trip per call:\n", file=out)
    print(f"{'operation':<16}{'calls':>7}{'p50 ms':>10}{'p95 ms':>10}", file=out)
    for name, values in timings.items():
        print(
            f"{name:<16}{len(values):>7}{_pct(values, 50):>10.2f}{_pct(values, 95):>10.2f}",
            file=out,
        )
    print(f"\nround trip identical: {identical}/{count}", file=out)
    print(
        f"versions after re-save: {sorted(set(versions))}; after save_many: "
        f"{sorted(set(batch.values()))}",
        file=out,
    )
    print(
        f"load_many found {len(found)}/{count}; deleted {deleted}/{count}; "
        f"load after delete: {gone}",
        file=out,
    )
    return timings


def _pct(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
