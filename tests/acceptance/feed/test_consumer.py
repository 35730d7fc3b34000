"""The change feed's consumer (issue 16): the database's change log drives every cache.

On a real PostgreSQL with vcon-mcp's layout and its write paths reproduced as SQL, and a
real Redis with RedisJSON. Every kind of foreign edit (create, add analysis, dialog and
attachment, tags, update, update and remove of an analysis, delete) is seen through
``get_vcon`` with the cache on, ``get_many`` and ``exists`` within a second while the
consumer runs, whatever the cached key is (the conserver's RedisJSON working copy under
``vcon:``, our cache under another prefix, vcon-mcp's SETEX string), and after the
consumer was stopped during the edits and restarted (it resumes from its cursor, it
does not rescan). A working copy under ``vcon:`` is never removed or rewritten; one
consumer per cursor holds the lease; the log is pruned once consumed and bounded; a
cursor that lost changes flushes its cache; polling works through PostgREST.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest

from conserver_supabase import SupabaseStorage

from ...support.change_feed import our_vcon
from ...support.cli import env, run
from ...support.postgrest_standin import PostgrestStandIn
from ...support.services import environment_without_services, redis_client
from ...support.vcon_mcp_writes import VconMcp

pytestmark = pytest.mark.integration

#: How soon a foreign edit must be seen (the issue's bound).
BOUND = 1.0

Edit = Callable[[VconMcp, str], None]

CREATED: Final = {
    "vcon": "0.4.0",
    "created_at": "2026-03-06T09:00:00Z",
    "subject": "created again by vcon-mcp",
    "parties": [{"tel": "+15550001111", "name": "Ann"}],
}
DIALOG: Final = {
    "type": "text",
    "start": "2026-03-06T10:00:00Z",
    "parties": [0, 1],
    "body": "a later message",
    "encoding": "none",
}
EDITS: dict[str, Edit] = {
    "create": lambda mcp, u: mcp.create({"uuid": u, **CREATED}),
    "add_analysis": lambda mcp, u: mcp.add_analysis(
        u, {"type": "summary", "vendor": "vcon-mcp", "body": "added", "dialog": 0}
    ),
    "add_dialog": lambda mcp, u: mcp.add_dialog(u, DIALOG),
    "add_attachment": lambda mcp, u: mcp.add_attachment(
        u, {"purpose": "note", "body": {"k": 1}, "encoding": "none"}
    ),
    "tags": lambda mcp, u: mcp.save_tags(u, ["category:billing", "priority:low"]),
    "update": lambda mcp, u: mcp.update(u, subject="renamed by vcon-mcp"),
    "update_analysis": lambda mcp, u: mcp.update_analysis(
        u, 0, {"type": "summary", "vendor": "vcon-mcp", "body": "rewritten"}
    ),
    "remove_analysis": lambda mcp, u: mcp.remove_analysis(u, 0),
    "delete": lambda mcp, u: mcp.delete(u),
}


def options(mcp_url: str, redis_url: str, **more: Any) -> dict[str, Any]:
    return {"database_url": mcp_url, "redis_url": redis_url, "feed_poll_interval": 0.1, **more}


def within(bound: float, seen: Callable[[], bool]) -> float:
    """Seconds until ``seen()`` holds; fails past ``bound`` (checked for twice as long,
    to tell slow from never)."""
    started = time.monotonic()
    while not seen():
        if time.monotonic() - started > 2 * bound:
            pytest.fail(f"not seen within {2 * bound} s")
        time.sleep(0.02)
    return time.monotonic() - started


def fresh(storage: SupabaseStorage, u: str, tel: str | None = None) -> Callable[[], bool]:
    """Whether the cached reads (get_vcon, get_many, exists; with ``tel``, a search by it
    with include_vcons) give what the database holds."""

    def check() -> bool:
        truth = storage.get_vcon(u, use_cache=False)
        if not (
            storage.get_vcon(u) == truth
            and storage.get_many([u]) == ({} if truth is None else {u: truth})
            and storage.exists(u) is (truth is not None)
        ):
            return False
        if tel is None:
            return True
        found = [v for v in storage.search(tel=tel, include_vcons=True).items if v["uuid"] == u]
        has_tel = truth is not None and any(p.get("tel") == tel for p in truth["parties"])
        return found == ([truth] if has_tel else [])

    return check


def saved_and_cached(storage: SupabaseStorage) -> dict[str, Any]:
    document = our_vcon()
    storage.save_vcon(copy.deepcopy(document))
    assert storage.get_vcon(document["uuid"]) == document  # served by the cache from now on
    return document


@pytest.fixture
def redis(redis_json_url: str) -> Iterator[Any]:
    client = redis_client(redis_json_url)
    yield client
    client.close()


class TestWhileItRuns:
    @pytest.mark.parametrize("kind", sorted(EDITS))
    @pytest.mark.parametrize("key", ["working copy", "own prefix", "vcon-mcp string"])
    def test_every_foreign_edit_is_seen_within_a_second(
        self, kind: str, key: str, mcp_url: str, redis_json_url: str, redis: Any, mcp: VconMcp
    ) -> None:
        prefix = "cache:" if key == "own prefix" else "vcon:"
        config = options(mcp_url, redis_json_url, feed=True, cache_key_prefix=prefix)
        with SupabaseStorage(config) as storage:
            document = saved_and_cached(storage)
            u = document["uuid"]
            if key == "vcon-mcp string":  # vcon-mcp's getVCon cached its rendition
                rendition = json.dumps(storage.get_vcon(u, use_cache=False))
                redis.delete(f"vcon:{u}")
                redis.set(f"vcon:{u}", rendition, ex=3600)  # its SETEX
            EDITS[kind](mcp, u)
            assert storage.get_vcon(u, use_cache=False) != document  # the edit is in the rows
            assert within(BOUND, fresh(storage, u, document["parties"][0]["tel"])) < BOUND
            if key == "vcon-mcp string":  # vcon-mcp's stale string is gone too
                assert redis.type(f"vcon:{u}") in (b"none", b"ReJSON-RL")

    def test_a_search_returns_the_vcon_as_edited(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp
    ) -> None:
        with SupabaseStorage(options(mcp_url, redis_json_url, feed=True)) as storage:
            document = saved_and_cached(storage)
            u = document["uuid"]
            mcp.save_tags(u, ["priority:urgent"])
            within(BOUND, fresh(storage, u))
            page = storage.search(tags=["priority:urgent"], include_vcons=True)
            assert [v["uuid"] for v in page.items] == [u]
            assert page.items[0] == storage.get_vcon(u)

    def test_our_other_processes_saves_reach_this_redis(
        self, mcp_url: str, redis_json_url: str
    ) -> None:
        """A process caching under another prefix (another Redis, as far as the cache
        goes) learns of this one's saves and deletes."""
        reader = options(mcp_url, redis_json_url, feed=True, cache_key_prefix="other:")
        writer = options(mcp_url, redis_json_url)
        with SupabaseStorage(reader) as other, SupabaseStorage(writer) as us:
            document = saved_and_cached(us)
            u = document["uuid"]
            assert other.get_vcon(u) == document  # cached there too
            us.save_vcon({**document, "subject": "saved again"})
            within(BOUND, fresh(other, u))
            assert other.get_vcon(u)["subject"] == "saved again"
            us.delete_vcon(u)
            within(BOUND, fresh(other, u))
            assert other.get_vcon(u) is None

    def test_a_working_copy_is_never_removed_or_rewritten(
        self, mcp_url: str, redis_json_url: str, redis: Any, mcp: VconMcp
    ) -> None:
        """A link's working copy under vcon: stays as the link wrote it; our reads ask the
        database meanwhile; the next save clears the mark."""
        with SupabaseStorage(options(mcp_url, redis_json_url, feed=True)) as storage:
            document = saved_and_cached(storage)
            u = document["uuid"]
            working = {**document, "subject": "a link is working on it"}
            redis.json().set(f"vcon:{u}", "$", working)
            mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "added"})
            within(BOUND, fresh(storage, u))
            assert redis.json().get(f"vcon:{u}") == working  # untouched
            assert storage.get_vcon(u)["analysis"][-1]["body"] == "added"  # the database's
            head = f"conserver_supabase:head:{{vcon:{u}}}"
            assert redis.exists(head) == 1
            storage.save_vcon(storage.get_vcon(u, use_cache=False))
            assert redis.exists(head) == 0
            assert storage.get_vcon(u)["analysis"][-1]["body"] == "added"


class TestStoppedAndRestarted:
    def test_every_edit_made_while_it_was_stopped_is_seen_after_the_restart(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp, admin: Any
    ) -> None:
        config = options(mcp_url, redis_json_url)
        with SupabaseStorage(config) as storage:
            saved = {kind: saved_and_cached(storage) for kind in EDITS}
            first = storage.change_feed("restart")
            first.poll()
            first.checkpoint()  # the consumer stops here
            for kind, document in saved.items():
                EDITS[kind](mcp, document["uuid"])
            stale = [k for k, d in saved.items() if not fresh(storage, d["uuid"])()]
            assert len(stale) == len(EDITS)  # nothing tells this Redis without the consumer
            logged = admin.execute(
                "SELECT count(*) FROM conserver_vcon_changes WHERE xid >= "
                "(SELECT watermark FROM conserver_vcon_feed_cursors WHERE name = 'restart')"
            ).fetchone()[0]
        with SupabaseStorage(config) as restarted:
            again = restarted.change_feed("restart")
            done = again.poll()  # resumes: exactly what was logged since, no rescan
            assert done.changes == logged
            assert not done.flushed
            again.start()
            try:
                for document in saved.values():
                    tel = document["parties"][0]["tel"]
                    assert within(BOUND, fresh(restarted, document["uuid"], tel)) < BOUND
            finally:
                again.stop()


class TestOneConsumerPerCursor:
    def test_the_lease_lets_one_apply_and_passes_on_at_stop(
        self, mcp_url: str, redis_json_url: str
    ) -> None:
        config = options(mcp_url, redis_json_url, feed=True, feed_name="leased")
        with SupabaseStorage(config) as one, SupabaseStorage(config) as two:
            within(BOUND, lambda: one.change_feed().holding or two.change_feed().holding)
            time.sleep(0.3)
            holders = [s for s in (one, two) if s.change_feed().holding]
            assert len(holders) == 1
            waiting = two if holders[0] is one else one
            before = waiting.change_feed().rounds
            assert before == 0
            holders[0].change_feed().stop()
            assert within(BOUND, lambda: waiting.change_feed().holding) < BOUND


class TestTheLog:
    def test_consumed_changes_are_pruned(
        self, mcp_url: str, redis_json_url: str, admin: Any
    ) -> None:
        with SupabaseStorage(options(mcp_url, redis_json_url)) as storage:
            for _ in range(5):
                storage.save_vcon(our_vcon())
            feed = storage.change_feed("pruning")

            def pruned() -> bool:
                """Each round stores the previous one's watermark, then prunes below it.
                (A transaction still running anywhere on the server holds the watermark
                back: xids are the server's, so on a shared server this takes a round
                or two more.)"""
                feed.poll()
                count = "SELECT count(*) FROM conserver_vcon_changes"
                return admin.execute(count).fetchone()[0] == 0

            within(2.0, pruned)

    def test_the_log_is_bounded_and_a_cursor_behind_it_flushes(
        self, mcp_url: str, redis_json_url: str, redis: Any, admin: Any, mcp: VconMcp
    ) -> None:
        admin.execute("UPDATE conserver_vcon_feed_state SET keep_rows = 50, keep_rows_idle = 50")
        with SupabaseStorage(options(mcp_url, redis_json_url)) as storage:
            feed = storage.change_feed("behind")
            feed.poll()
            feed.checkpoint()
            cached = saved_and_cached(storage)
            working = our_vcon()  # a working copy the conserver holds, never saved
            redis.json().set(f"vcon:{working['uuid']}", "$", working)
            mcp.update(cached["uuid"], subject="changed while the consumer was behind")
            for _ in range(300):
                storage.save_vcon(our_vcon())
            size = admin.execute("SELECT count(*) FROM conserver_vcon_changes").fetchone()[0]
            assert size <= 50 + 100  # pruned every 100th change down to keep_rows
            done = feed.poll()
            assert done.flushed
            assert redis.exists(f"vcon:{cached['uuid']}") == 0  # flushed: it had lost the change
            assert redis.json().get(f"vcon:{working['uuid']}") == working  # kept
            assert fresh(storage, cached["uuid"])()
            assert not feed.poll().flushed  # once

    def test_a_redis_that_forgot_how_far_it_got_is_flushed(
        self, mcp_url: str, redis_json_url: str, redis: Any, mcp: VconMcp
    ) -> None:
        """Redis restored from an older snapshot: its entries may predate changes the
        cursor already passed; it no longer knows how far it got, so the round flushes."""
        with SupabaseStorage(options(mcp_url, redis_json_url)) as storage:
            feed = storage.change_feed("snapshot")
            document = saved_and_cached(storage)
            feed.poll()
            assert not feed.poll().flushed
            mark = "conserver_supabase:feed:applied:snapshot"
            older = redis.get(mark)
            mcp.update(document["uuid"], subject="changed after the snapshot")
            feed.poll()
            snapshot = json.dumps(document)  # the snapshot's entry, before the change
            redis.delete(f"conserver_supabase:head:{{vcon:{document['uuid']}}}")
            redis.json().set(f"vcon:{document['uuid']}", "$", json.loads(snapshot))
            redis.set(mark, int(older) - 1)  # the snapshot's mark
            assert not fresh(storage, document["uuid"])()
            assert feed.poll().flushed
            assert fresh(storage, document["uuid"])()
            assert not feed.poll().flushed

    def test_a_failed_round_moves_nothing(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp, admin: Any
    ) -> None:
        """Redis down during a round: the cursor stays; the next round delivers it all."""
        with SupabaseStorage(options(mcp_url, redis_json_url)) as storage:
            feed = storage.change_feed("outage")
            feed.poll()
            feed.checkpoint()
            document = saved_and_cached(storage)
            mcp.update(document["uuid"], subject="during the outage")
        down = options(mcp_url, "redis://127.0.0.1:1/0", redis_timeout=0.2)
        with SupabaseStorage(down) as cut:
            feed = cut.change_feed("outage")
            with pytest.raises(Exception, match=r"(?i)redis|connect"):
                feed.poll()
            feed.checkpoint()  # nothing to store: the round did not finish
        with SupabaseStorage(options(mcp_url, redis_json_url)) as storage:
            assert not fresh(storage, document["uuid"])()
            assert storage.change_feed("outage").poll().changes >= 2  # the save and the edit
            assert fresh(storage, document["uuid"])()


class TestThroughPostgrest:
    def test_polling_through_postgrest(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp
    ) -> None:
        with PostgrestStandIn(mcp_url, key="service-key") as api:
            config = {"url": api.url, "key": "service-key", "redis_url": redis_json_url,
                      "feed": True, "feed_poll_interval": 0.1}  # fmt: skip
            with SupabaseStorage(config) as storage:
                document = saved_and_cached(storage)
                u = document["uuid"]
                mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "added"})
                assert within(BOUND, fresh(storage, u)) < BOUND


class TestTheCommand:
    def test_feed_once_catches_up_and_prints_what_it_did(
        self, mcp_url: str, redis_json_url: str, mcp: VconMcp
    ) -> None:
        with SupabaseStorage(options(mcp_url, redis_json_url, cache_key_prefix="c:")) as storage:
            document = saved_and_cached(storage)
            mcp.update(document["uuid"], subject="edited")
            where = env(mcp_url, redis_json_url)
            first = run("feed", "--once", "--json", "--name", "cli", env=where)
            assert first.returncode == 0, first.stderr
            line = json.loads(first.stdout)
            assert line["cursor"] == "cli"
            assert line["changes"] >= 2  # our save, vcon-mcp's edit
            again = run("feed", "--once", "--json", "--name", "cli", env=where)
            assert json.loads(again.stdout)["changes"] == 0  # resumed from the cursor

    def test_feed_runs_until_sigterm(self, mcp_url: str, redis_json_url: str) -> None:
        where = {**environment_without_services(), **env(mcp_url, redis_json_url)}
        command = [sys.executable, "-m", "conserver_supabase", "feed", "--name", "sigterm"]
        with subprocess.Popen(command, env=where, stderr=subprocess.PIPE, text=True) as process:
            try:
                time.sleep(2.0)
                assert process.poll() is None  # still running
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=10) == 0
            finally:
                if process.poll() is None:
                    process.kill()
