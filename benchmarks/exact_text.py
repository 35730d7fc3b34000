"""What keeping each document's exact text costs (issue 17, migration 0006): saves and
reads with the text beside the jsonb against the object form without it, side by side in
one run, and the bytes the text adds on disk.

    python benchmarks/exact_text.py [--repeat 200] [--json FILE]

One embedded PostgreSQL, one migrated database, psycopg straight to the SQL functions
(no Redis): what is timed is the database's work plus the client's encoding and parsing.

* save: ``conserver_vcon_save`` of a fresh vCon, as JSON text in a JSON string (what
  0.3 sends: the text is kept) and as a JSON object (the form before: no text);
* read: ``conserver_vcon_read`` (the text, parsed by Python) against
  ``conserver_vcon_fetch`` (the jsonb document, parsed by psycopg), the read before;
* for a standard vCon (2 parties, 3 dialogs, 3 analyses, 2 attachments; its text is
  shown) and for one with a 1 MiB inline recording;
* disk: ``pg_column_size`` of ``document`` and ``document_text`` (as stored, after
  TOAST compression) per vCon.

The two forms take turns call by call. Quote the ratios (text / object).
"""

from __future__ import annotations

import base64
import json
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
from conserver_supabase._documents import dumps  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres  # noqa: E402

_RECORDING = base64.urlsafe_b64encode(bytes(range(256)) * 4096).decode().rstrip("=")  # 1 MiB


def vcon(kind: str, seed: int) -> dict[str, Any]:
    document = standard_vcon(seed)
    document["uuid"] = str(uuid.uuid4())
    if kind == "1 MiB recording":
        document["dialog"][0].update(
            {"type": "recording", "mediatype": "audio/x-wav", "encoding": "base64url"}
        )
        document["dialog"][0]["body"] = _RECORDING
    return document


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000,
    }


def _row(conn: Any, query: str, params: list[Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def run(url: str, repeat: int) -> dict[str, Any]:
    migrations.apply(url)
    results: dict[str, Any] = {"repeat": repeat, "kinds": {}}
    with psycopg.connect(url, autocommit=True) as conn:
        for kind in ("standard", "1 MiB recording"):
            count = repeat if kind == "standard" else max(10, repeat // 10)
            saves: dict[str, list[float]] = {"text": [], "object": []}
            reads: dict[str, list[float]] = {"text": [], "object": []}
            saved: dict[str, list[str]] = {"text": [], "object": []}
            for i in range(count):
                for form in ("text", "object") if i % 2 else ("object", "text"):
                    document = vcon(kind, i)
                    started = time.perf_counter()
                    sent = Jsonb(dumps(document)) if form == "text" else Jsonb(document)
                    conn.execute("SELECT conserver_vcon_save(%s, NULL, '{}')", [sent]).fetchone()
                    saves[form].append(time.perf_counter() - started)
                    saved[form].append(document["uuid"])
            for i in range(count):
                for form in ("text", "object") if i % 2 else ("object", "text"):
                    vcon_uuid = saved[form][i]
                    started = time.perf_counter()
                    if form == "text":
                        entry = _row(conn, "SELECT conserver_vcon_read(%s)", [vcon_uuid])[0]
                        json.loads(entry["text"])
                    else:
                        conn.execute("SELECT conserver_vcon_fetch(%s)", [vcon_uuid]).fetchone()
                    reads[form].append(time.perf_counter() - started)
            kept = _row(
                conn,
                "SELECT count(*) FILTER (WHERE document_text IS NOT NULL),"
                " count(*) FILTER (WHERE uuid = ANY(%s::uuid[]) AND document_text IS NULL)"
                " FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[] || %s::uuid[])",
                [saved["text"], saved["text"], saved["object"]],
            )
            if kept != (count, 0):  # the comparison is what it says: text kept, or not
                raise SystemExit(f"{kind}: texts kept {kept}, expected ({count}, 0)")
            sizes = _row(
                conn,
                "SELECT avg(pg_column_size(document)), avg(pg_column_size(document_text)),"
                " avg(octet_length(document_text))"
                " FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[])",
                [saved["text"]],
            )
            results["kinds"][kind] = {
                "count": count,
                "save": {form: _quantiles(values) for form, values in saves.items()},
                "read": {form: _quantiles(values) for form, values in reads.items()},
                "disk_bytes": {
                    "document (jsonb)": float(sizes[0]),
                    "document_text": float(sizes[1]),
                    "text length": float(sizes[2]),
                },
            }
    return results


def render(results: dict[str, Any]) -> str:
    lines = [f"exact text (migration 0006), {results['repeat']} repeats; ratios text / object"]
    for kind, found in results["kinds"].items():
        lines.append(f"  {kind} ({found['count']} vCons per form):")
        for op in ("save", "read"):
            t, o = found[op]["text"], found[op]["object"]
            lines.append(
                f"    {op:5} p50 {t['p50_ms']:7.2f} / {o['p50_ms']:7.2f} ms = "
                f"{t['p50_ms'] / o['p50_ms']:.2f}x;  p95 {t['p95_ms']:7.2f} / "
                f"{o['p95_ms']:7.2f} ms = {t['p95_ms'] / o['p95_ms']:.2f}x"
            )
        disk = found["disk_bytes"]
        lines.append(
            f"    disk per vCon: jsonb {disk['document (jsonb)']:,.0f} B, text "
            f"{disk['document_text']:,.0f} B stored ({disk['text length']:,.0f} B long): "
            f"+{disk['document_text'] / disk['document (jsonb)']:.0%} of the jsonb"
        )
    return "\n".join(lines)


def main() -> int:
    parser = command_line(__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with EmbeddedPostgres() as postgres:
        results = run(postgres.url, args.repeat)
    return report(results, render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
