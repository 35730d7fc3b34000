"""Helpers of the change-feed tests (tests/acceptance/feed/): our test vCon, the change
log and head version of a vCon, our three reads, the agreement of a vCon with the rows,
and (the conflict rule) a link's own changes of a copy and the dead letter of a vCon."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from conserver_supabase import SupabaseStorage

from .journaled import JOURNAL
from .services import redis_client
from .vcons import rich_vcon


def our_vcon() -> dict[str, Any]:
    """The rich vCon (group, meta, party_history, unknown keys, awkward values) with a tel
    of its own, to search it by."""
    document = rich_vcon()
    document["parties"][0]["tel"] = "+1" + str(uuid.UUID(document["uuid"]).int)[:10]
    return document


def changes(conn: Any, u: str, *, once: bool = True) -> list[tuple[str, int]]:
    """(op, version) of each change row of ``u``, in order; with ``once``, every
    transaction at most once."""
    found = conn.execute(
        "SELECT op, version, xid::text FROM conserver_vcon_changes WHERE vcon_uuid = %s"
        " ORDER BY seq",
        [u],
    ).fetchall()
    xids = [x for _, _, x in found]
    if once:
        assert len(xids) == len(set(xids)), found  # one change row per transaction
    return [(op, version) for op, version, _ in found]


def head(conn: Any, u: str) -> Any:
    """(version, document_version) of ``u``'s document row."""
    return conn.execute(
        "SELECT version, document_version FROM conserver_vcon_documents WHERE uuid = %s", [u]
    ).fetchone()


def reads(storage: SupabaseStorage, redis_url: str, document: dict[str, Any]) -> dict[str, Any]:
    """Our three reads of ``document``'s vCon, which must agree; the vCon they return."""
    u = document["uuid"]
    direct = storage.get_vcon(u, use_cache=False)
    client = redis_client(redis_url)
    try:
        client.flushall()  # get_many with a cold cache
    finally:
        client.close()
    many = storage.get_many([u]).get(u)
    page = storage.search(tel=document["parties"][0]["tel"], include_vcons=True)
    found = [v for v in page.items if v["uuid"] == u]
    assert direct == many, "get_vcon(use_cache=False) and get_many disagree"
    assert found == ([] if direct is None else [direct]), "search(include_vcons) disagrees"
    return {"vcon": direct}


def assert_agrees_with_rows(conn: Any, vcon: dict[str, Any]) -> None:
    """Everything the rows hold says what the rows say: our vCon, written again as the
    rows (conserver_vcon_project), is what the rows read back (conserver_vcon_assemble)."""
    projected, assembled = conn.execute(
        "SELECT conserver_vcon_project(%s::jsonb, NULL), conserver_vcon_assemble(%s)",
        [json.dumps(vcon), vcon["uuid"]],
    ).fetchone()
    if "updated_at" not in vcon:
        assembled.pop("updated_at")
    assert projected == assembled


def row_form(conn: Any, table: str, u: str, index: int) -> dict[str, Any]:
    """Element ``index`` of ``table`` as conserver_vcon_assemble reads it."""
    key = {"analysis": "analysis", "dialog": "dialog", "attachments": "attachments"}[table]
    return conn.execute(
        "SELECT conserver_vcon_assemble(%s) -> %s -> %s", [u, key, index]
    ).fetchone()[0]


#: The analysis a link of ours appends.
OURS = {"type": "note", "vendor": "conserver", "body": "ours"}


def dead_letter(redis_url: str, u: str) -> dict[str, Any] | None:
    """The dead letter of ``u`` (its envelope, document included), or None."""
    client = redis_client(redis_url)
    try:
        raw = client.get(f"{JOURNAL}:dead:{u}")
    finally:
        client.close()
    return None if raw is None else dict(json.loads(raw))


def stored(storage: SupabaseStorage, u: str) -> dict[str, Any]:
    """The vCon as the database holds it now (``get_vcon(use_cache=False)``)."""
    got = storage.get_vcon(u, use_cache=False)
    assert got is not None
    return got


def ours_on(copy_: dict[str, Any]) -> dict[str, Any]:
    """Our own changes on a copy: an analysis appended, a party renamed, meta changed."""
    ours = copy.deepcopy(copy_)
    ours["analysis"].append(dict(OURS))
    ours["parties"][0]["name"] = "Renamed by the conserver"
    ours["meta"] = {**ours["meta"], "link": "ours"}
    return ours


def has_ours(got: dict[str, Any]) -> None:
    """``got`` holds the changes of :func:`ours_on`."""
    assert OURS in got["analysis"]
    assert got["parties"][0]["name"] == "Renamed by the conserver"
    assert got["meta"]["link"] == "ours"
