"""The change log and documents that follow the rows (issue 16, first increment), on a real
PostgreSQL with vcon-mcp's layout (tests/sql/vcon_mcp_layout.sql) and vcon-mcp's write
paths reproduced as SQL (tests/support/vcon_mcp_writes.py), run as ``authenticated`` with
RLS on, as vcon-mcp's server runs them.

After each kind of foreign edit, our reads (``get_vcon(use_cache=False)``, ``get_many``
with a cold cache, ``search(include_vcons=True)``) return the edit, everything the rows
hold agrees with the rows, and what the rows cannot hold (group, meta, party_history,
unknown keys) and every field the edit did not touch keep the stored document's exact
value. Every change is logged once per transaction and vCon; saves log 'save', deletes
'delete', once.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import psycopg
import pytest

from conserver_supabase import StorageConfig, SupabaseStorage
from conserver_supabase import _migrations as migrations
from conserver_supabase._database._postgres import PostgresDatabase

from ...support.change_feed import (
    assert_agrees_with_rows,
    changes,
    head,
    our_vcon,
    reads,
    row_form,
)
from ...support.schema import run_sql
from ...support.services import TESTS
from ...support.sql_calls import SqlCalls
from ...support.vcon_mcp_writes import VconMcp
from ...support.vcons import all_samples, rich_vcon

pytestmark = pytest.mark.integration

LEGACY = sorted((TESTS / "data" / "legacy").glob("*.json"))


class TestForeignEdits:
    """Each of vcon-mcp's write paths on a vCon we saved: our reads return the edit, and
    keep everything else exactly as we saved it."""

    @pytest.fixture
    def saved(self, storage: SupabaseStorage, admin: Any) -> dict[str, Any]:
        document = our_vcon()
        assert storage.save_vcon(copy.deepcopy(document)) == 1
        assert changes(admin, document["uuid"]) == [("save", 1)]
        return document

    def check(
        self,
        storage: SupabaseStorage,
        redis_json_url: str,
        admin: Any,
        document: dict[str, Any],
        expected: dict[str, Any],
        logged: int,
    ) -> None:
        u = document["uuid"]
        got = reads(storage, redis_json_url, document)["vcon"]
        assert got == expected
        assert_agrees_with_rows(admin, got)
        assert changes(admin, u) == [("save", 1)] + [("rows", 2 + i) for i in range(logged)]
        assert head(admin, u) == (1 + logged, 1)

    def test_add_analysis(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                          saved: dict[str, Any]) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "added", "dialog": 0})
        added = {"type": "summary", "vendor": "vcon-mcp", "body": "added", "dialog": 0}
        expected = {**saved, "analysis": [*saved["analysis"], added]}
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_add_dialog(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                        saved: dict[str, Any]) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.add_dialog(u, {"type": "text", "start": "2026-03-06T10:00:00Z", "parties": [0, 1],
                           "body": "a later message", "encoding": "none"})  # fmt: skip
        expected = {**saved, "dialog": [*saved["dialog"], row_form(admin, "dialog", u, 4)]}
        assert expected["dialog"][4]["body"] == "a later message"
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_add_attachment(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                            saved: dict[str, Any]) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.add_attachment(u, {"purpose": "note", "body": {"k": 1}, "encoding": "none"})
        added = {"purpose": "note", "body": {"k": 1}, "encoding": "none"}
        expected = {**saved, "attachments": [*saved["attachments"], added]}
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_tags(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                  saved: dict[str, Any]) -> None:  # fmt: skip
        """saveTags: two requests (the attachment, then vcons.updated_at), two changes; a
        search by the new tag returns the vCon with it."""
        u = saved["uuid"]
        mcp.save_tags(u, ["category:billing", "priority:low"])
        updated_at = admin.execute(
            "SELECT conserver_vcon_assemble(%s) -> 'updated_at'", [u]
        ).fetchone()[0]
        tags = {**saved["attachments"][0], "body": '["category:billing","priority:low"]'}
        expected = {**saved, "updated_at": updated_at,
                    "attachments": [tags, *saved["attachments"][1:]]}  # fmt: skip
        self.check(storage, redis_json_url, admin, saved, expected, logged=2)
        page = storage.search(tags=["priority:low"], include_vcons=True)
        assert [v["attachments"][0]["body"] for v in page.items] == [tags["body"]]

    def test_update_subject(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                            saved: dict[str, Any]) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.update(u, subject="renamed by vcon-mcp", critical=["x-other"])
        updated_at = admin.execute(
            "SELECT conserver_vcon_assemble(%s) -> 'updated_at'", [u]
        ).fetchone()[0]
        expected = {**saved, "subject": "renamed by vcon-mcp", "critical": ["x-other"],
                    "updated_at": updated_at}  # fmt: skip
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_update_child_keeps_what_rows_cannot_hold(
        self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp, saved: dict[str, Any]
    ) -> None:
        """A child update of the same element: the changed key from the row, its
        party_history and its unchanged keys (the exact body, content_hash array) kept."""
        u = saved["uuid"]
        mcp.conn.execute(
            "UPDATE dialog SET mediatype = 'audio/mpeg' WHERE vcon_id = %s AND dialog_index = 0",
            [u],
        )
        first = {**saved["dialog"][0], "mediatype": "audio/mpeg"}
        assert "party_history" in first
        expected = {**saved, "dialog": [first, *saved["dialog"][1:]]}
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_update_analysis(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                             saved: dict[str, Any]) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.update_analysis(u, 1, {"type": "summary", "vendor": "openai", "body": "rewritten",
                                   "encoding": "none"})  # fmt: skip
        second = {"type": "summary", "vendor": "openai", "body": "rewritten", "encoding": "none"}
        expected = {**saved, "analysis": [saved["analysis"][0], second, saved["analysis"][2]]}
        self.check(storage, redis_json_url, admin, saved, expected, logged=1)

    def test_remove_analysis(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                             saved: dict[str, Any]) -> None:  # fmt: skip
        """removeAnalysis compacts: the shifted elements are other elements now (their
        identity differs), taken as the rows say."""
        u = saved["uuid"]
        mcp.remove_analysis(u, 0)
        expected = {**saved, "analysis": [row_form(admin, "analysis", u, 0),
                                          row_form(admin, "analysis", u, 1)]}  # fmt: skip
        assert [a["vendor"] for a in expected["analysis"]] == ["openai", "acme"]
        self.check(storage, redis_json_url, admin, saved, expected, logged=2)

    def test_create_again(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                          saved: dict[str, Any]) -> None:  # fmt: skip
        """createVCon of the same uuid (its vcons upsert, then one upsert per child table,
        five requests): the rows it overwrote are read as it wrote them."""
        u = saved["uuid"]
        theirs = copy.deepcopy(saved)
        theirs["subject"] = "created again"
        theirs["parties"][1]["name"] = "Renamed Agent"
        mcp.create(theirs)
        got = reads(storage, redis_json_url, saved)["vcon"]
        assert got["subject"] == "created again"
        assert got["parties"][1]["name"] == "Renamed Agent"
        assert got["group"] == saved["group"]
        assert got["meta"] == saved["meta"]
        assert got["dialog"][0]["party_history"] == saved["dialog"][0]["party_history"]
        assert_agrees_with_rows(admin, got)
        assert [op for op, _ in changes(admin, u)] == ["save"] + ["rows"] * 5

    def test_delete(self, storage: Any, redis_json_url: str, admin: Any, mcp: VconMcp,
                    saved: dict[str, Any]) -> None:  # fmt: skip
        """deleteVCon as authenticated: the cascade is logged once, as the tombstone's version."""
        u = saved["uuid"]
        mcp.delete(u)
        assert reads(storage, redis_json_url, saved)["vcon"] is None
        assert changes(admin, u) == [("save", 1), ("delete", 2)]
        assert admin.execute(
            "SELECT version FROM conserver_vcon_tombstones WHERE uuid = %s", [u]
        ).fetchone() == (2,)
        assert storage.save_vcon(copy.deepcopy(saved)) == 3  # after the delete
        assert changes(admin, u)[-1] == ("save", 3)


class TestForeignVcons:
    def test_a_vcon_only_vcon_mcp_wrote_gets_a_head_version(
        self, storage: SupabaseStorage, redis_json_url: str, admin: Any, mcp: VconMcp, mcp_url: str
    ) -> None:
        """createVCon of a new vCon: a head row (no document) at version 4 after its four
        requests; our reads assemble it; our first save continues from it."""
        theirs = our_vcon()
        for key in ("group", "meta", "x_unknown_top_level", "redacted", "amended"):
            theirs.pop(key)
        theirs["attachments"] = []
        mcp.create(theirs)
        u = theirs["uuid"]
        assert [op for op, _ in changes(admin, u)] == ["rows"] * 4
        assert admin.execute(
            "SELECT version, document IS NULL FROM conserver_vcon_documents WHERE uuid = %s", [u]
        ).fetchone() == (4, True)
        got = reads(storage, redis_json_url, theirs)["vcon"]
        assert got["subject"] == theirs["subject"]
        assert_agrees_with_rows(admin, got)
        db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": mcp_url})))
        try:
            assert db.fetch(u) == (got, 4)
        finally:
            db.close()
        assert storage.save_vcon(copy.deepcopy(got)) == 5
        assert changes(admin, u)[-1] == ("save", 5)
        assert head(admin, u) == (5, 5)

    def test_a_replay_does_not_overwrite_a_later_foreign_change(
        self, mcp: VconMcp, mcp_url: str
    ) -> None:
        """A journaled save of a vCon only vcon-mcp wrote (a head row, versioned since 0004)
        whose base is a time: another writer's change after that time supersedes it, as it
        did before head rows existed (the rows' updated_at, not the head row's)."""
        theirs = our_vcon()
        mcp.create(theirs)
        failed_at = time.time()
        time.sleep(0.01)
        mcp.update(theirs["uuid"], subject="changed after the failed save")
        db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": mcp_url})))
        try:
            version, why, _ = db.transport.replay(theirs, None, {"at": failed_at})
        finally:
            db.close()
        assert version == 0
        assert "another writer changed it" in str(why)


class TestTheLog:
    def test_our_saves_log_save_once_each(
        self, storage: SupabaseStorage, admin: Any, mcp_url: str
    ) -> None:
        one, two = our_vcon(), our_vcon()
        storage.save_vcon(copy.deepcopy(one))
        storage.save_vcon(copy.deepcopy(one))
        db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": mcp_url})))
        try:
            assert db.save_many([two, one]) == {two["uuid"]: 1, one["uuid"]: 3}
        finally:
            db.close()
        assert changes(admin, one["uuid"]) == [("save", 1), ("save", 2), ("save", 3)]
        assert changes(admin, two["uuid"]) == [("save", 1)]
        assert head(admin, one["uuid"]) == (3, 3)

    def test_one_change_per_transaction(self, storage: SupabaseStorage, admin: Any) -> None:
        """An upsert (INSERT and UPDATE triggers), a transaction of several statements: one
        'rows' each. A statement after our save in the same transaction is still logged."""
        document = our_vcon()
        u = document["uuid"]
        storage.save_vcon(copy.deepcopy(document))
        admin.execute(
            "INSERT INTO parties (vcon_id, party_index, name) VALUES (%s, 0, 'a'), (%s, 5, 'b')"
            " ON CONFLICT (vcon_id, party_index) DO UPDATE SET name = EXCLUDED.name",
            [u, u],
        )
        assert changes(admin, u) == [("save", 1), ("rows", 2)]
        with admin.transaction():
            admin.execute("UPDATE vcons SET subject = 'x' WHERE uuid = %s", [u])
            admin.execute("DELETE FROM parties WHERE vcon_id = %s AND party_index = 5", [u])
        assert changes(admin, u)[2:] == [("rows", 3)]
        with admin.transaction():
            admin.execute("UPDATE vcons SET subject = 'y' WHERE uuid = %s", [u])
            admin.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(document)])
            admin.execute("UPDATE vcons SET subject = 'z' WHERE uuid = %s", [u])
        assert changes(admin, u, once=False)[3:] == [("rows", 4), ("save", 5), ("rows", 6)]
        assert storage.get_vcon(u, use_cache=False)["subject"] == "z"

    def test_our_delete_is_logged_once(self, storage: SupabaseStorage, admin: Any) -> None:
        document = our_vcon()
        storage.save_vcon(copy.deepcopy(document))
        assert storage.delete_vcon(document["uuid"])
        assert changes(admin, document["uuid"]) == [("save", 1), ("delete", 2)]

    def test_closed_to_vcon_mcps_roles(self, mcp: VconMcp) -> None:
        for table in ("conserver_vcon_changes", "conserver_vcon_documents"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                mcp.conn.execute(f"SELECT * FROM {table}")


@pytest.mark.parametrize("layout", ["ours", "vcon_mcp"])
def test_the_projection_is_what_the_write_stores(
    layout: str, database_url: str, empty_database_url: str
) -> None:
    """project(d) = assemble after write(d), for every sample, the rich vCon and the
    legacy-shape corpus (tests/data/legacy: 0.0.1 names), on both layouts: the merge
    compares like with like, so an untouched field never flips to its lossy row form."""
    url = database_url
    if layout == "vcon_mcp":
        run_sql(empty_database_url, (TESTS / "sql" / "vcon_mcp_layout.sql").read_text())
        migrations.apply(empty_database_url)
        url = empty_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        legacy = [json.loads(p.read_text("utf-8"))["input"] for p in LEGACY]
        for document in [*all_samples(), rich_vcon(), *legacy]:
            conn.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(document)])
            found = conn.execute(
                "SELECT conserver_vcon_project(d.document, d.updated_at),"
                " conserver_vcon_assemble(d.uuid),"
                " conserver_vcon_merge(d.document, conserver_vcon_assemble(d.uuid), d.updated_at),"
                " d.document FROM conserver_vcon_documents d WHERE d.uuid = %s",
                [document["uuid"]],
            ).fetchone()
            assert found is not None
            projected, assembled, merged, stored = found
            if "created_at" not in document:  # the write keeps the row's: none projected
                assembled.pop("created_at")
            assert projected == assembled, document["uuid"]
            assert merged == stored  # nothing changed: the document, exactly
