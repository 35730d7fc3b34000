"""vCons in the 0.0.1 shape saved through SupabaseStorage (issue 17), on a real PostgreSQL
with vcon-mcp's layout: the document is stored as given, and vcon-mcp's reader
(tests/support/vcon_mcp_reads.py) reads the rows as it reads the same vCon in the current
shape (vcon-server's normalize_legacy_fields of it, tests/data/legacy). The rows' merge
state agrees with the write, so a legacy vCon never looks changed by another writer, and
another writer's change reaches our copy under the document's own (old) spelling."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from conserver_supabase import SupabaseStorage

from ...support.change_feed import assert_agrees_with_rows, changes, head
from ...support.vcon_mcp_reads import get_vcon as vcon_mcp_get
from ...support.vcon_mcp_writes import VconMcp

pytestmark = pytest.mark.integration

CASES = sorted((Path(__file__).resolve().parents[2] / "data" / "legacy").glob("*.json"))


def case(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def legacy_document() -> dict[str, Any]:
    return case(next(p for p in CASES if p.stem == "legacy-0.0.1"))["input"]


def test_every_case_reads_in_vcon_mcp_as_its_current_shape(
    storage: SupabaseStorage, admin: Any
) -> None:
    """Each input and its normalized form (another uuid) saved: vcon-mcp reads the same vCon
    from both, and our reads return each document exactly as saved."""
    differ = 0
    for path in CASES:
        loaded = case(path)
        given, current = loaded["input"], copy.deepcopy(loaded["normalized"])
        current["uuid"] = str(uuid.uuid5(uuid.UUID(given["uuid"]), "current"))
        for document in (given, current):
            storage.save_vcon(copy.deepcopy(document))
            assert storage.get_vcon(document["uuid"], use_cache=False) == document, path.stem
        ours, theirs = vcon_mcp_get(admin, given["uuid"]), vcon_mcp_get(admin, current["uuid"])
        assert ours is not None
        assert theirs is not None
        theirs["uuid"] = ours["uuid"]
        for stamp in ("created_at", "updated_at"):
            if stamp not in given:  # stamped by each save
                theirs[stamp] = ours[stamp]
        # An attachment's type and purpose are stored as given (vcon-mcp writes each on its
        # own; a column filled from the other could not be read back): the same value.
        for read in (ours, theirs):
            for t in read["attachments"]:
                t["type"] = t.pop("type") or t.pop("purpose")
                t.pop("purpose", None)
        assert ours == theirs, path.stem
        differ += given != current
    assert differ >= 6  # the old shapes, not only current ones


def test_vcon_mcp_reads_the_old_names_as_the_spec_names(
    storage: SupabaseStorage, admin: Any
) -> None:
    document = legacy_document()
    storage.save_vcon(copy.deepcopy(document))
    got = vcon_mcp_get(admin, document["uuid"])
    assert got is not None
    assert got["critical"] == ["x-legacy"]
    assert [d["mediatype"] for d in got["dialog"]] == ["audio/mp3", "text/plain"]
    first = got["analysis"][0]
    assert (first["schema"], first["mediatype"]) == ("whisper-1", "application/json")
    assert first["body"] == [{"speaker": 0, "text": "hi"}]  # native body, encoding none
    assert got["analysis"][1]["body"] == {"summary": "a call", "score": 0.25}
    kinds = [(t["type"], t["purpose"], t["mediatype"]) for t in got["attachments"]]
    assert kinds == [("tags", None, None), ("generation_info", None, "application/json"),
                     (None, "note", None)]  # fmt: skip
    appended = admin.execute(
        "SELECT amended, appended FROM vcons WHERE uuid = %s", [document["uuid"]]
    ).fetchone()
    assert appended == (document["appended"], document["appended"])
    page = storage.search(tags=["priority:low"])
    assert page.items == [document["uuid"]]


def test_saving_a_legacy_vcon_again_is_not_a_foreign_change(
    storage: SupabaseStorage, admin: Any
) -> None:
    """The merge state matches the write: a re-save neither merges nor logs 'rows'."""
    document = legacy_document()
    assert storage.save_vcon(copy.deepcopy(document)) == 1
    assert_agrees_with_rows(admin, document)
    again = {**copy.deepcopy(document), "subject": "saved again"}
    assert storage.save_vcon(copy.deepcopy(again)) == 2
    assert storage.get_vcon(document["uuid"], use_cache=False) == again
    assert changes(admin, document["uuid"]) == [("save", 1), ("save", 2)]
    assert head(admin, document["uuid"]) == (2, 2)


def test_a_foreign_change_keeps_the_documents_old_spelling(
    storage: SupabaseStorage, admin: Any, mcp: VconMcp
) -> None:
    """vcon-mcp changes a dialog's and an attachment's media type and an analysis'
    schema: our copy takes the new values under mimetype / schema_version, as it was
    spelled, and everything else as saved."""
    document = legacy_document()
    u = document["uuid"]
    storage.save_vcon(copy.deepcopy(document))
    mcp.conn.execute(
        "UPDATE dialog SET mediatype = 'audio/mpeg' WHERE vcon_id = %s AND dialog_index = 0", [u]
    )
    mcp.conn.execute(
        "UPDATE analysis SET schema = 'whisper-2' WHERE vcon_id = %s AND analysis_index = 0", [u]
    )
    mcp.conn.execute(
        "UPDATE attachments SET mimetype = 'text/x' WHERE vcon_id = %s AND attachment_index = 1",
        [u],
    )
    got = storage.get_vcon(u, use_cache=False)
    expected = copy.deepcopy(document)
    expected["dialog"][0]["mimetype"] = "audio/mpeg"
    expected["analysis"][0]["schema_version"] = "whisper-2"
    expected["attachments"][1]["mimetype"] = "text/x"
    assert got == expected
    assert_agrees_with_rows(admin, got)
    # Our copy saved again (a link's edit on top) is not a conflict and keeps theirs.
    ours = {**copy.deepcopy(got), "subject": "ours"}
    storage.save_vcon(ours)
    assert storage.get_vcon(u, use_cache=False) == ours
