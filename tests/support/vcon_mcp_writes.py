"""vcon-mcp's write paths (1.3.0, src/db/queries.ts and batch-writer.ts) reproduced as SQL,
for tests of what another writer's edits do to our reads (issue 16).

Each PostgREST request of vcon-mcp is one statement in its own transaction: each
statement here runs on an autocommit connection, as the role the connection has (the
tests use ``authenticated``, with RLS on, as vcon-mcp's server does). The SQL follows
shared/reference/vcon-mcp-mapping.md sections 1 and 3: createVCon upserts the vcons row on
``id`` then each child table by ``(vcon_id, index)`` (one request each, nothing deleted);
addAnalysis/addDialog/addAttachment insert at ``max(index) + 1``; saveTags updates the
``type = 'tags'`` attachment (or inserts one) and then, in a request of its own, stamps
``vcons.updated_at`` with the client's clock; updateVCon updates subject, extensions,
critical and updated_at; updateAnalysis replaces one row (PUT: absent fields NULL);
removeAnalysis deletes from the index on and re-inserts the trailing rows shifted down;
deleteVCon deletes the vcons row (children cascade).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

_PARTY = ("tel", "sip", "stir", "mailto", "name", "did", "uuid", "validation", "gmlpos",
          "timezone")  # fmt: skip
_DIALOG = ("type", "originator", "mediatype", "filename", "encoding", "url", "disposition",
           "application", "message_id")  # fmt: skip
_ANALYSIS = ("type", "dialog_indices", "mediatype", "filename", "vendor", "product", "schema",
             "body", "encoding", "url", "content_hash")  # fmt: skip
_ATTACHMENT = ("type", "purpose", "party", "dialog", "filename", "encoding", "url")


def _clock() -> str:
    return datetime.now(UTC).isoformat()


def _body(body: Any, encoding: str | None) -> str | None:
    """serializeBody: a non-string body with encoding none or absent as its JSON text."""
    if body is None:
        return None
    if isinstance(body, str):
        return body
    return json.dumps(body, separators=(",", ":"))


def _text(value: Any) -> str | None:
    """A non-string value sent to a text column: PostgREST stores its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _jsonb(value: Any) -> Any:
    return None if value is None else Jsonb(value)


def _dialog_indices(value: Any) -> list[int] | None:
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


class VconMcp:
    """vcon-mcp's writes over ``conn`` (psycopg, autocommit)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def create(self, vcon: dict[str, Any]) -> None:
        """createVCon: the vcons upsert, then one bulk upsert per child table (each its own
        request; absent fields written as NULL, nothing deleted)."""
        u = vcon["uuid"]
        self._upsert("vcons", "id", {
            "id": u, "uuid": u, "vcon_version": vcon.get("vcon", "0.4.0"),
            "subject": vcon.get("subject"), "created_at": vcon["created_at"],
            "updated_at": vcon.get("updated_at") or _clock(),
            "extensions": vcon.get("extensions"), "critical": vcon.get("critical"),
            "redacted": Jsonb(vcon.get("redacted") or {}),
            "amended": Jsonb(vcon.get("amended") or {}), "tenant_id": None,
        })  # fmt: skip
        parties = [
            {"vcon_id": u, "party_index": i, **{c: p.get(c) for c in _PARTY},
             "jcard": _jsonb(p.get("jcard")), "civicaddress": _jsonb(p.get("civicaddress"))}
            for i, p in enumerate(vcon.get("parties", []))
        ]  # fmt: skip
        dialog = [
            {"vcon_id": u, "dialog_index": i, **{c: d.get(c) for c in _DIALOG},
             "start_time": d.get("start"), "duration_seconds": d.get("duration"),
             "parties": _dialog_indices(d.get("parties")),
             "content_hash": _text(d.get("content_hash")), "body": _text(d.get("body")),
             "session_id": _jsonb(d.get("session_id"))}
            for i, d in enumerate(vcon.get("dialog", []))
        ]  # fmt: skip
        analysis = [
            {"vcon_id": u, "analysis_index": i, **self._analysis_row(a)}
            for i, a in enumerate(vcon.get("analysis", []))
        ]
        attachments = [
            {"vcon_id": u, "attachment_index": i, **{c: t.get(c) for c in _ATTACHMENT},
             "start_time": t.get("start"), "mimetype": t.get("mediatype"),
             "content_hash": _text(t.get("content_hash")),
             "body": _body(t.get("body"), t.get("encoding"))}
            for i, t in enumerate(vcon.get("attachments", []))
        ]  # fmt: skip
        for table, key, rows in [
            ("parties", "vcon_id, party_index", parties),
            ("dialog", "vcon_id, dialog_index", dialog),
            ("analysis", "vcon_id, analysis_index", analysis),
            ("attachments", "vcon_id, attachment_index", attachments),
        ]:
            if rows:
                self._upsert(table, key, *rows)

    def _upsert(self, table: str, key: str, *rows: dict[str, Any]) -> None:
        """One PostgREST bulk upsert: INSERT ... ON CONFLICT (key) DO UPDATE every column."""
        columns = list(rows[0])
        values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
        keys = {k.strip() for k in key.split(",")}
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"
            f" ON CONFLICT ({key}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys),
            [row[c] for row in rows for c in columns],
        )

    @staticmethod
    def _analysis_row(a: dict[str, Any]) -> dict[str, Any]:
        return {
            **{c: a.get(c) for c in _ANALYSIS},
            "dialog_indices": _dialog_indices(a.get("dialog")),
            "content_hash": _text(a.get("content_hash")),
            "body": _body(a.get("body"), a.get("encoding")),
        }

    def _next(self, table: str, column: str, u: str) -> int:
        found = self.conn.execute(
            f"SELECT coalesce(max({column}), -1) + 1 FROM {table} WHERE vcon_id = %s", [u]
        ).fetchone()
        return int(found[0])

    def add_analysis(self, u: str, a: dict[str, Any]) -> None:
        """addAnalysis: an INSERT at the next index, created_at from the vcons row."""
        index = self._next("analysis", "analysis_index", u)
        self.conn.execute(
            "INSERT INTO analysis (vcon_id, analysis_index, type, dialog_indices, vendor,"
            " product, body, encoding, created_at)"
            " SELECT v.id, %s, %s, %s, %s, %s, %s, %s, v.created_at FROM vcons v WHERE v.uuid = %s",
            [index, a["type"], _dialog_indices(a.get("dialog")), a["vendor"], a.get("product"),
             _body(a.get("body"), a.get("encoding")), a.get("encoding"), u],
        )  # fmt: skip

    def add_dialog(self, u: str, d: dict[str, Any]) -> None:
        """addDialog: an INSERT at the next index (its party_history rows: not modelled)."""
        index = self._next("dialog", "dialog_index", u)
        self.conn.execute(
            "INSERT INTO dialog (vcon_id, dialog_index, type, start_time, parties, body, encoding)"
            " SELECT v.id, %s, %s, %s, %s, %s, %s FROM vcons v WHERE v.uuid = %s",
            [index, d["type"], d.get("start"), _dialog_indices(d.get("parties")), d.get("body"),
             d.get("encoding"), u],
        )  # fmt: skip

    def add_attachment(self, u: str, t: dict[str, Any]) -> None:
        """addAttachment: an INSERT at the next index."""
        index = self._next("attachments", "attachment_index", u)
        self.conn.execute(
            "INSERT INTO attachments (vcon_id, attachment_index, type, purpose, mimetype, body,"
            " encoding, created_at)"
            " SELECT v.id, %s, %s, %s, %s, %s, %s, v.created_at FROM vcons v WHERE v.uuid = %s",
            [index, t.get("type"), t.get("purpose"), t.get("mediatype"),
             _body(t.get("body"), t.get("encoding")), t.get("encoding"), u],
        )  # fmt: skip

    def save_tags(self, u: str, tags: list[str]) -> None:
        """saveTags: update (or add) the tags attachment, then stamp vcons.updated_at."""
        body = json.dumps(tags, separators=(",", ":"))
        found = self.conn.execute(
            "UPDATE attachments SET body = %s, encoding = 'json'"
            " WHERE vcon_id = %s AND type = 'tags' RETURNING attachment_index",
            [body, u],
        ).fetchall()
        if not found:
            self.add_attachment(u, {"type": "tags", "encoding": "json", "body": body})
        self.conn.execute("UPDATE vcons SET updated_at = %s WHERE uuid = %s", [_clock(), u])

    def update(self, u: str, **fields: Any) -> None:
        """updateVCon: subject, extensions, critical, and updated_at from the client."""
        sets = [f"{name} = %s" for name in fields] + ["updated_at = %s"]
        self.conn.execute(
            f"UPDATE vcons SET {', '.join(sets)} WHERE uuid = %s", [*fields.values(), _clock(), u]
        )

    def update_analysis(self, u: str, index: int, a: dict[str, Any]) -> None:
        """updateAnalysis: the row replaced (PUT semantics: absent fields become NULL)."""
        self.conn.execute(
            "UPDATE analysis SET " + ", ".join(f"{c} = %s" for c in _ANALYSIS)
            + " WHERE vcon_id = %s AND analysis_index = %s",
            [a["type"], _dialog_indices(a.get("dialog")), a.get("mediatype"), a.get("filename"),
             a["vendor"], a.get("product"), a.get("schema"),
             _body(a.get("body"), a.get("encoding")), a.get("encoding"), a.get("url"),
             a.get("content_hash"), u, index],
        )  # fmt: skip

    def remove_analysis(self, u: str, index: int) -> None:
        """removeAnalysis: delete from the index on, re-insert the trailing rows shifted."""
        rows = self.conn.execute(
            "SELECT " + ", ".join(_ANALYSIS) + " FROM analysis"
            " WHERE vcon_id = %s AND analysis_index > %s ORDER BY analysis_index",
            [u, index],
        ).fetchall()
        self.conn.execute(
            "DELETE FROM analysis WHERE vcon_id = %s AND analysis_index >= %s", [u, index]
        )
        if rows:
            values = ", ".join(["(%s, %s, " + ", ".join(["%s"] * len(_ANALYSIS)) + ")"] * len(rows))
            params: list[Any] = []
            for i, row in enumerate(rows):
                params += [u, index + i, *row]
            self.conn.execute(
                f"INSERT INTO analysis (vcon_id, analysis_index, {', '.join(_ANALYSIS)})"
                f" VALUES {values}",
                params,
            )

    def delete(self, u: str) -> None:
        """deleteVCon: the vcons row; children and our document row cascade."""
        self.conn.execute("DELETE FROM vcons WHERE uuid = %s", [u])
