"""vcon-mcp's read of a vCon from the rows (1.3.0, src/db/queries.ts ``getVCon`` after a
cache miss), reproduced over psycopg, to test what vcon-mcp makes of the rows we write.

getVCon selects ``*`` from vcons by uuid, then each child table by ``vcon_id = vcons.id``
ordered by its index, through PostgREST (so every row arrives as its JSON form:
``to_jsonb`` here, timestamps in UTC), and builds the vCon with the spec's names: null
columns come back as null keys, ``analysis.dialog_indices`` of length 1 as a scalar,
analysis and attachment bodies through ``deserializeBody`` (encoding absent or none: JSON
text parsed, anything else verbatim), ``attachments.mimetype`` as ``mediatype``. It never
returns redacted, amended, group, meta, must_support, appended or extension keys.
"""

from __future__ import annotations

import json
from typing import Any

_CHILDREN = (
    ("parties", "party_index"),
    ("dialog", "dialog_index"),
    ("analysis", "analysis_index"),
    ("attachments", "attachment_index"),
)


def _deserialize_body(body: Any, encoding: Any) -> Any:
    """deserializeBody: with encoding absent or none, JSON text parsed (else verbatim)."""
    if not encoding or encoding == "none":
        try:
            return json.loads(body) if isinstance(body, str) else body
        except ValueError:
            pass
    return body


def _party(p: dict[str, Any]) -> dict[str, Any]:
    names = ("tel", "sip", "stir", "mailto", "name", "did", "uuid", "validation", "jcard",
             "gmlpos", "civicaddress", "timezone")  # fmt: skip
    return {name: p[name] for name in names}


def _dialog(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": d["type"], "start": d["start_time"], "duration": d["duration_seconds"],
        "parties": d["parties"], "originator": d["originator"], "mediatype": d["mediatype"],
        "filename": d["filename"], "body": d["body"], "encoding": d["encoding"],
        "url": d["url"], "content_hash": d["content_hash"], "disposition": d["disposition"],
        "session_id": d["session_id"], "application": d["application"],
        "message_id": d["message_id"],
    }  # fmt: skip


def _analysis(a: dict[str, Any]) -> dict[str, Any]:
    indices = a["dialog_indices"]
    return {
        "type": a["type"],
        "dialog": indices[0] if indices is not None and len(indices) == 1 else indices,
        "mediatype": a["mediatype"], "filename": a["filename"], "vendor": a["vendor"],
        "product": a["product"], "schema": a["schema"],
        "body": _deserialize_body(a["body"], a["encoding"]), "encoding": a["encoding"],
        "url": a["url"], "content_hash": a["content_hash"],
    }  # fmt: skip


def _attachment(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": t["type"], "purpose": t["purpose"], "start": t["start_time"],
        "party": t["party"], "dialog": t["dialog"], "mediatype": t["mimetype"],
        "filename": t["filename"], "body": _deserialize_body(t["body"], t["encoding"]),
        "encoding": t["encoding"], "url": t["url"], "content_hash": t["content_hash"],
    }  # fmt: skip


_BUILD = {"parties": _party, "dialog": _dialog, "analysis": _analysis, "attachments": _attachment}


def get_vcon(conn: Any, vcon_uuid: str) -> dict[str, Any] | None:
    """What vcon-mcp's getVCon returns for ``vcon_uuid`` from the rows, or None."""
    conn.execute("SET timezone TO 'UTC'")
    found = conn.execute("SELECT to_jsonb(v) FROM vcons v WHERE v.uuid = %s", [vcon_uuid])
    row = found.fetchone()
    if row is None:
        return None
    v = row[0]
    children: dict[str, list[dict[str, Any]]] = {}
    for table, index in _CHILDREN:
        rows = conn.execute(
            f"SELECT to_jsonb(c) FROM {table} c WHERE c.vcon_id = %s ORDER BY c.{index}", [v["id"]]
        ).fetchall()
        children[table] = [_BUILD[table](r[0]) for r in rows]
    return {
        "vcon": v["vcon_version"] or "0.4.0", "uuid": v["uuid"], "extensions": v["extensions"],
        "critical": v["critical"], "created_at": v["created_at"], "updated_at": v["updated_at"],
        "subject": v["subject"], **children,
    }  # fmt: skip
