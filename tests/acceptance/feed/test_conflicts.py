"""The conflict rule (issue 16, "No silent lost update"; docs/database.md, "Conflicts"), on a
real PostgreSQL with vcon-mcp's layout and its write paths reproduced as SQL, run as
``authenticated``.

A conserver save of a copy loaded BEFORE a foreign edit keeps the edit and applies its
own changes (a three-way merge in the save, under its lock); a copy loaded AFTER it (the
hook save knows the version it read) saves as it is; both sides changing the same field
differently is a :class:`VconConflictError`: nothing written, the database keeps the
other writer's change, our copy in the dead letters. (The replay and a random mix:
test_conflict_replay_and_mix.py.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from conserver_supabase import StorageConfig, SupabaseStorage, VconConflictError
from conserver_supabase._database._postgres import PostgresDatabase

from ...support.change_feed import (
    OURS,
    assert_agrees_with_rows,
    changes,
    dead_letter,
    has_ours,
    head,
    our_vcon,
    ours_on,
    stored,
)
from ...support.postgrest_standin import PostgrestStandIn
from ...support.services import redis_client
from ...support.vcon_mcp_writes import VconMcp

pytestmark = pytest.mark.integration

# Each foreign edit: (what vcon-mcp does, what must be seen after our stale save).
Edit = tuple[Callable[[VconMcp, dict[str, Any]], None], Callable[[dict[str, Any]], None]]


def _analysis_added(got: dict[str, Any]) -> None:
    vendors = [a.get("vendor") for a in got["analysis"]]
    assert vendors[:3] == ["deepgram", "openai", "acme"]
    assert sorted(vendors[3:]) == ["conserver", "vcon-mcp"]


def _dialog_added(got: dict[str, Any]) -> None:
    assert [d.get("body") for d in got["dialog"]][-1] == "a later message"
    assert len(got["dialog"]) == 5


def _attachment_added(got: dict[str, Any]) -> None:
    assert got["attachments"][-1]["purpose"] == "note"
    assert len(got["attachments"]) == 4


def _tagged(got: dict[str, Any]) -> None:
    assert json.loads(got["attachments"][0]["body"]) == ["category:billing", "priority:low"]


def _renamed(got: dict[str, Any]) -> None:
    assert got["subject"] == "renamed by vcon-mcp"
    assert got["critical"] == ["x-other"]


def _analysis_updated(got: dict[str, Any]) -> None:
    assert got["analysis"][1]["body"] == "rewritten"
    assert len(got["analysis"]) == 4


def _analysis_removed(got: dict[str, Any]) -> None:
    assert [a.get("vendor") for a in got["analysis"]] == ["openai", "acme", "conserver"]


def _created_again(got: dict[str, Any]) -> None:
    assert got["subject"] == "created again"
    assert got["parties"][1]["name"] == "Renamed Agent"


def _create_again(mcp: VconMcp, saved: dict[str, Any]) -> None:
    theirs = copy.deepcopy(saved)
    theirs["subject"] = "created again"
    theirs["parties"][1]["name"] = "Renamed Agent"
    mcp.create(theirs)


EDITS: dict[str, Edit] = {
    "add analysis": (
        lambda mcp, d: mcp.add_analysis(
            d["uuid"], {"type": "summary", "vendor": "vcon-mcp", "body": "x"}
        ),
        _analysis_added,
    ),
    "add dialog": (
        lambda mcp, d: mcp.add_dialog(
            d["uuid"],
            {
                "type": "text",
                "start": "2026-03-06T10:00:00Z",
                "parties": [0, 1],
                "body": "a later message",
                "encoding": "none",
            },
        ),
        _dialog_added,
    ),
    "add attachment": (
        lambda mcp, d: mcp.add_attachment(
            d["uuid"], {"purpose": "note", "body": "n", "encoding": "none"}
        ),
        _attachment_added,
    ),
    "tags": (
        lambda mcp, d: mcp.save_tags(d["uuid"], ["category:billing", "priority:low"]),
        _tagged,
    ),
    "update subject": (
        lambda mcp, d: mcp.update(d["uuid"], subject="renamed by vcon-mcp", critical=["x-other"]),
        _renamed,
    ),
    "update analysis": (
        lambda mcp, d: mcp.update_analysis(
            d["uuid"],
            1,
            {"type": "summary", "vendor": "openai", "body": "rewritten", "encoding": "none"},
        ),
        _analysis_updated,
    ),
    "remove analysis": (lambda mcp, d: mcp.remove_analysis(d["uuid"], 0), _analysis_removed),
    "create again": (_create_again, _created_again),
}


class TestAStaleCopy:
    """A copy loaded before each kind of foreign edit, with changes of its own: the save
    keeps the edit and applies ours; the stored document is the merged one."""

    @pytest.mark.parametrize("kind", list(EDITS))
    def test_keeps_the_foreign_edit(
        self, kind: str, storage: SupabaseStorage, admin: Any, mcp: VconMcp,
        saved: dict[str, Any],
    ) -> None:  # fmt: skip
        u = saved["uuid"]
        stale = stored(storage, u)  # loaded before the edit
        edit, seen = EDITS[kind]
        edit(mcp, saved)
        version = storage.save_vcon(ours_on(stale))
        got = stored(storage, u)
        seen(got)
        has_ours(got)
        assert got["analysis"][-1 if kind != "add analysis" else -2] == OURS
        assert got["group"] == saved["group"]  # what the rows cannot hold: ours
        assert head(admin, u) == (version, version)  # the document is the merged one
        assert changes(admin, u)[-1] == ("save", version)
        assert_agrees_with_rows(admin, got)
        assert storage.get_vcon(u) == got  # the cache holds what was saved
        assert storage.stats()["conflicts"] == 0

    def test_through_the_hook(
        self, storage: SupabaseStorage, redis_json_url: str, mcp: VconMcp, saved: dict[str, Any]
    ) -> None:
        """The conserver's save hook: the working copy at vcon:<uuid> (written by our save
        at version 1) is edited by a link after vcon-mcp added an analysis; the hook save
        merges it (the copy was read at version 1, the head is 2) and the working copy then
        holds the merged vCon."""
        u = saved["uuid"]
        EDITS["add analysis"][0](mcp, saved)
        client = redis_client(redis_json_url)
        try:
            client.json().arrappend(f"vcon:{u}", "$.analysis", dict(OURS))
            assert storage.save_working_copy(u) == 3
            working = client.json().get(f"vcon:{u}")
        finally:
            client.close()
        got = stored(storage, u)
        assert [a.get("vendor") for a in got["analysis"]][-2:] == ["conserver", "vcon-mcp"]
        assert working == got

    def test_a_links_edit_after_the_hooks_read_is_kept(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp, saved: dict[str, Any]
    ) -> None:
        """A link writes the working copy while the merged save is in the database: the
        cache write after it must not replace the link's copy with the merged vCon (it
        keeps it, marked as newer than the database, as for any save)."""
        u = saved["uuid"]
        EDITS["add analysis"][0](mcp, saved)
        client = redis_client(redis_json_url)
        newer = {**saved, "subject": "a link wrote this during the save"}
        config = StorageConfig.from_options({"database_url": mcp_url, "redis_url": redis_json_url})
        inner = PostgresDatabase(config)

        class LinkDuringSave:
            def save(self, *args: Any) -> Any:
                result = inner.save(*args)
                client.json().set(f"vcon:{u}", "$", newer)
                return result

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        database: Any = LinkDuringSave()
        try:
            with SupabaseStorage(config, database=database) as storage:
                assert storage.save_working_copy(u) == 3
                assert client.json().get(f"vcon:{u}") == newer  # kept
                assert int(client.get(f"conserver_supabase:version:{{vcon:{u}}}")) == -3
                got = stored(storage, u)
                assert got["analysis"][-1]["vendor"] == "vcon-mcp"  # merged in the database
        finally:
            client.close()


class TestAFreshCopy:
    """A copy loaded after the foreign edit (the hook save knows the version it read):
    saved as it is, even where it changes what the other writer changed."""

    def test_through_the_hook(
        self, storage: SupabaseStorage, redis_json_url: str, admin: Any, mcp: VconMcp,
        saved: dict[str, Any],
    ) -> None:  # fmt: skip
        u = saved["uuid"]
        mcp.update(u, subject="renamed by vcon-mcp")
        client = redis_client(redis_json_url)
        try:
            client.delete(f"vcon:{u}")
            assert stored(storage, u)["subject"] == "renamed by vcon-mcp"
            assert storage.get_vcon(u) is not None  # the miss path fills vcon:<uuid>
            # the conserver's miss path filled vcon:<uuid> at version 2; a link edits it
            client.json().set(f"vcon:{u}", "$.subject", "renamed again by a link")
            assert storage.save_working_copy(u) == 3
        finally:
            client.close()
        assert stored(storage, u)["subject"] == "renamed again by a link"
        assert head(admin, u) == (3, 3)

    @pytest.mark.parametrize("kind", list(EDITS))
    def test_without_a_base(
        self, kind: str, storage: SupabaseStorage, mcp: VconMcp, saved: dict[str, Any]
    ) -> None:
        """A copy read after the edit and saved through save_vcon (no version known): the
        merge finds ours = theirs on what the edit changed; our own changes apply."""
        u = saved["uuid"]
        edit, seen = EDITS[kind]
        edit(mcp, saved)
        fresh = stored(storage, u)
        storage.save_vcon(ours_on(fresh))
        got = stored(storage, u)
        seen(got)
        assert got["analysis"][-1] == OURS


class TestConflicts:
    """Both sides changed the same field or element differently: VconConflictError naming
    the vCon and the field, nothing written, our copy in the dead letters."""

    CASES: ClassVar[
        dict[str, tuple[Callable[[VconMcp, str], None], Callable[[dict[str, Any]], None], str]]
    ] = {
        "subject": (
            lambda mcp, u: mcp.update(u, subject="theirs"),
            lambda ours: ours.update(subject="ours"),
            "subject",
        ),
        "analysis": (
            lambda mcp, u: mcp.update_analysis(
                u, 1, {"type": "summary", "vendor": "openai", "body": "theirs", "encoding": "none"}
            ),
            lambda ours: ours["analysis"][1].update(body="ours"),
            "analysis[1]",
        ),
        "tags, one key": (
            lambda mcp, u: mcp.save_tags(u, ["category:billing", "priority:low"]),
            lambda ours: ours["attachments"][0].update(
                body=["category:billing", "priority:urgent"]
            ),
            "attachments[0].body",
        ),
        "dialog appended on both sides": (
            lambda mcp, u: mcp.add_dialog(
                u,
                {"type": "text", "start": "2026-03-06T10:00:00Z", "parties": [0], "body": "theirs"},
            ),
            lambda ours: ours["dialog"].append(
                {"type": "text", "start": "2026-03-06T10:01:00Z", "parties": [1], "body": "ours"}
            ),
            "dialog[4]",
        ),
        "removed there, changed here": (
            lambda mcp, u: mcp.remove_analysis(u, 1),
            lambda ours: ours["analysis"][1].update(body="ours"),
            "analysis[1]",
        ),
    }

    @pytest.mark.parametrize("case", list(CASES))
    def test_refused(
        self, case: str, storage: SupabaseStorage, redis_json_url: str, admin: Any,
        mcp: VconMcp, saved: dict[str, Any],
    ) -> None:  # fmt: skip
        u = saved["uuid"]
        stale = stored(storage, u)
        theirs_edit, ours_edit, field = self.CASES[case]
        theirs_edit(mcp, u)
        before = (stored(storage, u), head(admin, u), changes(admin, u))
        ours = copy.deepcopy(stale)
        ours_edit(ours)
        with pytest.raises(VconConflictError) as caught:
            storage.save_vcon(ours)
        error = caught.value
        assert (error.vcon_uuid, error.field, error.code, error.kept) == (u, field, "CSC01", True)
        assert u in str(error)
        assert field in str(error)
        assert "journal list --dead" in str(error)
        assert not error.journaled
        assert (stored(storage, u), head(admin, u), changes(admin, u)) == before  # theirs
        letter = dead_letter(redis_json_url, u)
        assert letter is not None
        assert letter["code"] == "CSC01"
        assert json.loads(letter["document"]) == ours
        assert [e["uuid"] for e in storage.journal_entries(dead=True)] == [u]
        assert storage.journal_entries() == []  # never journaled as an outage
        assert storage.stats()["conflicts"] == 1
        assert storage.stats()["retries"] == 0

    def test_logged(
        self, storage: SupabaseStorage, mcp: VconMcp, saved: dict[str, Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        u = saved["uuid"]
        stale = stored(storage, u)
        mcp.update(u, subject="theirs")
        with pytest.raises(VconConflictError):
            storage.save_vcon({**stale, "subject": "ours"})
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1
        assert u in errors[0].getMessage()
        assert "subject" in errors[0].getMessage()

    def test_tags_merged_as_a_set(
        self, storage: SupabaseStorage, mcp: VconMcp, saved: dict[str, Any]
    ) -> None:
        """Both changed the tags, different keys: theirs + what ours added - what ours
        removed."""
        u = saved["uuid"]
        stale = stored(storage, u)
        mcp.save_tags(u, ["category:billing", "priority:low", "by:mcp"])
        ours = copy.deepcopy(stale)
        ours["attachments"][0]["body"] = ["priority:high", "lang:fr"]  # drops category
        storage.save_vcon(ours)
        got = stored(storage, u)
        assert got["attachments"][0]["body"] == ["priority:low", "by:mcp", "lang:fr"]

    def test_a_head_row_without_a_base(
        self, storage: SupabaseStorage, mcp: VconMcp, admin: Any
    ) -> None:
        """A vCon only vcon-mcp wrote (a head row, no document of ours): arrays merge
        on their common prefix, a top-level field that differs is a conflict."""
        theirs = our_vcon()
        for key in ("group", "meta", "x_unknown_top_level", "redacted", "amended"):
            theirs.pop(key)
        mcp.create(theirs)
        u = theirs["uuid"]
        copy_ = stored(storage, u)
        mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "x"})
        ours = copy.deepcopy(copy_)
        ours["attachments"].append({"purpose": "ours", "body": "o", "encoding": "none"})
        version = storage.save_vcon(ours)
        got = stored(storage, u)
        assert got["analysis"][-1]["vendor"] == "vcon-mcp"
        assert got["attachments"][-1]["purpose"] == "ours"
        assert head(admin, u) == (version, version)
        mcp.update(u, subject="theirs again")
        with pytest.raises(VconConflictError) as caught:
            storage.save_vcon({**got, "subject": "ours"})  # got was our save: base known
        assert caught.value.field == "subject"

    def test_save_many_refuses_the_whole_batch(
        self, storage: SupabaseStorage, redis_json_url: str, admin: Any, mcp: VconMcp,
        saved: dict[str, Any],
    ) -> None:  # fmt: skip
        """save_many is all or nothing: one conflicting vCon refuses the batch; only its
        copy goes to the dead letters; the batch without it saves."""
        u = saved["uuid"]
        other = our_vcon()
        storage.save_vcon(copy.deepcopy(other))
        stale = stored(storage, u)
        mcp.update(u, subject="theirs")
        ours = {**stale, "subject": "ours"}
        changed = {**other, "subject": "another vCon, changed"}
        with pytest.raises(VconConflictError) as caught:
            storage.save_many([copy.deepcopy(changed), copy.deepcopy(ours)])
        assert caught.value.vcon_uuid == u
        assert "1 other vCon(s) not saved either" in str(caught.value)
        assert head(admin, other["uuid"]) == (1, 1)
        assert [e["uuid"] for e in storage.journal_entries(dead=True)] == [u]
        assert storage.save_many([changed]) == {other["uuid"]: 2}

    def test_postgrest(self, mcp_url: str, redis_json_url: str, mcp: VconMcp, admin: Any) -> None:
        """The same through the PostgREST transport (the stand-in): a merge, then a
        conflict, with the field."""
        key = "conflict-test-key"
        with (
            PostgrestStandIn(mcp_url, key=key) as server,
            SupabaseStorage({"url": server.url, "key": key, "redis_url": redis_json_url}) as store,
        ):
            document = our_vcon()
            u = document["uuid"]
            assert store.save_vcon(copy.deepcopy(document)) == 1
            mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "x"})
            assert store.save_vcon(ours_on(document)) == 3
            got = store.get_vcon(u)
            assert got is not None
            assert [a.get("vendor") for a in got["analysis"]][-2:] == ["conserver", "vcon-mcp"]
            mcp.update(u, subject="theirs")
            with pytest.raises(VconConflictError) as caught:
                store.save_vcon({**got, "subject": "ours"})
            assert (caught.value.vcon_uuid, caught.value.field) == (u, "subject")
            assert head(admin, u) == (4, 3)
