"""Our saves and another writer's (vcon-mcp's, as SQL, as authenticated) on the same
vCons at the same time, on a real PostgreSQL with vcon-mcp's layout (issue 16, docs/
database.md, "Lock order"): no deadlock in the lock order both sides keep, a foreign
change committed during our save is not hidden, and the residual deadlock of a foreign
transaction of several statements ends cleanly."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import threading
import time
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage, VconConflictError

from ...support.change_feed import (
    assert_agrees_with_rows,
    changes,
    head,
    our_vcon,
)
from ...support.vcon_mcp_writes import VconMcp

pytestmark = pytest.mark.integration


def test_a_foreign_edit_committed_during_our_save_is_not_hidden(
    storage: SupabaseStorage, admin: Any, mcp_url: str
) -> None:
    """vcon-mcp adds an analysis in a transaction that is still open (its trigger holds the
    document row) while our save runs: the save waits at its document statement, then
    finds the head version moved since it read it and writes nothing (SQLSTATE 40001,
    docs/database.md, "Conflicts"); its retry merges the analysis in (ours removed every
    analysis of the base, theirs appended one: it stays)."""
    document = our_vcon()
    u = document["uuid"]
    storage.save_vcon(copy.deepcopy(document))
    ours = {**document, "subject": "saved while vcon-mcp writes", "analysis": []}
    done: list[Any] = []
    with psycopg.connect(mcp_url) as foreign:
        foreign.execute("SET ROLE authenticated")
        VconMcp(foreign).add_analysis(u, {"type": "summary", "vendor": "vcon-mcp", "body": "late"})
        saver = threading.Thread(target=lambda: done.append(storage.save_vcon(copy.deepcopy(ours))))
        saver.start()
        time.sleep(0.5)
        assert saver.is_alive()  # waiting for the foreign transaction's document row lock
        waiting = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%conserver_vcon_save%'"
        ).fetchone()
        assert waiting == (1,)
        foreign.commit()
    saver.join(30)
    assert done == [3]
    assert storage.stats()["retries"] >= 1
    assert changes(admin, u) == [("save", 1), ("rows", 2), ("save", 3)]
    assert head(admin, u) == (3, 3)
    got = storage.get_vcon(u, use_cache=False)
    assert got is not None
    assert got["subject"] == "saved while vcon-mcp writes"
    assert [a["vendor"] for a in got["analysis"]] == ["vcon-mcp"]
    assert_agrees_with_rows(admin, got)


def test_a_foreign_transaction_of_two_statements_that_deadlocks_fails_cleanly(
    storage: SupabaseStorage, admin: Any, mcp_url: str
) -> None:
    """The residual risk of docs/database.md, "Lock order": a foreign transaction changes an
    analysis row (its trigger takes the document row), our save then waits for that row
    while holding the vcons row, and the foreign transaction goes on to update the vcons
    row. PostgreSQL aborts one of the two after deadlock_timeout: either the foreign one
    gets a clean deadlock error, or our save's is retried; the save ends committed (or,
    when the foreign subject committed first, refused as a conflict: both changed it),
    and the database agrees with itself."""
    document = our_vcon()
    u = document["uuid"]
    storage.save_vcon(copy.deepcopy(document))
    ours = {**document, "subject": "ours"}
    saved: list[Any] = []
    refused: list[VconConflictError] = []
    foreign_error: list[BaseException] = []

    def save() -> None:
        try:
            saved.append(storage.save_vcon(copy.deepcopy(ours)))
        except VconConflictError as exc:
            refused.append(exc)

    with psycopg.connect(mcp_url) as foreign:
        foreign.execute(
            "UPDATE analysis SET product = 'p' WHERE vcon_id = %s AND analysis_index = 0", [u]
        )
        saver = threading.Thread(target=save)
        saver.start()
        time.sleep(0.5)  # the save holds the vcons row and waits for analysis 0
        try:
            foreign.execute("UPDATE vcons SET subject = 'theirs' WHERE uuid = %s", [u])
            foreign.commit()
        except psycopg.errors.DeadlockDetected as exc:
            foreign_error.append(exc)
            foreign.rollback()
        saver.join(30)
    assert len(saved) + len(refused) == 1  # committed, first time or retried, or refused
    assert foreign_error or storage.stats()["retries"] >= 1  # the deadlock did happen
    if refused:
        assert not foreign_error
        assert refused[0].field == "subject"
    ops = [op for op, _ in changes(admin, u)]
    assert ops[0] == "save"
    assert ops[-1] in ("save", "rows")
    got = storage.get_vcon(u, use_cache=False)
    assert got is not None
    assert_agrees_with_rows(admin, got)
    assert got["subject"] == ("ours" if saved else "theirs")


REFUSALS: dict[str, int] = {}


def _our_saves(documents: list[dict[str, Any]]) -> Any:
    """Our saves of some of ``documents``, one or a batch, each with its analyses cut or
    grown (at the indexes the other writer appends at)."""

    def step(conn: Any, rng: random.Random) -> None:
        batch = copy.deepcopy(rng.sample(documents, rng.randint(1, len(documents))))
        for d in batch:  # analyses at indexes another writer appends at
            d["analysis"] = d["analysis"][: rng.randint(1, 3)] + [
                {"type": "note", "vendor": "ours", "body": str(i)} for i in range(rng.randint(0, 3))
            ]
        try:
            if len(batch) == 1:
                conn.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(batch[0])])
            else:
                conn.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps(batch)])
        except psycopg.Error as exc:
            # The conflict rule refusing a save: the same field changed on both sides
            # (CSC01), or another writer's change committed during the save (40001, which
            # the storage retries). Nothing was written either way.
            if exc.sqlstate not in ("CSC01", "40001"):
                raise
            REFUSALS[exc.sqlstate] = REFUSALS.get(exc.sqlstate, 0) + 1

    return step


def _foreign_writes(order: list[str]) -> Any:
    """vcon-mcp's writes of each vCon in ``order``: add or replace an analysis, update
    the subject, or one statement over every vCon."""

    def step(conn: Any, rng: random.Random) -> None:
        mcp = VconMcp(conn)
        for u in order:
            kind = rng.randrange(4)
            if kind == 0:
                # addAnalysis reads max(index) and then inserts: two writers at once
                # may pick the same index (vcon-mcp's race, not ours).
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    mcp.add_analysis(u, {"type": "summary", "vendor": "vcon-mcp"})
            elif kind == 1:
                mcp.update_analysis(u, 0, {"type": "t", "vendor": "vcon-mcp"})
            elif kind == 2:
                mcp.update(u, subject=f"s{rng.random()}")
            else:  # one statement over every vCon, in this thread's order
                conn.execute(
                    "UPDATE dialog SET mediatype = %s WHERE dialog_index = 0"
                    " AND vcon_id = ANY(%s::uuid[])",
                    [f"m/{rng.randrange(9)}", order],
                )

    return step


class TestConcurrency:
    """Our saves and vcon-mcp's writes of the same vCons at the same time, in both orders:
    no deadlock, no error but the conflict rule's refusals, and every change logged with
    growing versions."""

    SECONDS = 3.0

    def test_no_deadlock(self, mcp_url: str, admin: Any) -> None:
        documents = [our_vcon() for _ in range(6)]
        uuids = sorted(d["uuid"] for d in documents)
        with psycopg.connect(mcp_url, autocommit=True) as conn:
            conn.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps(documents)])
        errors: list[BaseException] = []
        counts: dict[str, int] = {}
        stop = time.monotonic() + self.SECONDS

        def run(name: str, step: Any) -> None:
            rng = random.Random(name)  # noqa: S311 - a schedule, not cryptography
            try:
                with psycopg.connect(mcp_url, autocommit=True) as conn:
                    if name.startswith("mcp"):
                        conn.execute("SET ROLE authenticated")
                    while time.monotonic() < stop:
                        step(conn, rng)
                        counts[name] = counts.get(name, 0) + 1
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=("ours-1", _our_saves(documents))),
            threading.Thread(target=run, args=("ours-2", _our_saves(documents))),
            threading.Thread(target=run, args=("mcp-up", _foreign_writes(uuids))),
            threading.Thread(target=run, args=("mcp-down", _foreign_writes(uuids[::-1]))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.SECONDS + 60)
        assert not errors, errors
        assert all(
            counts.get(name, 0) > 3 for name in ("ours-1", "ours-2", "mcp-up", "mcp-down")
        ), counts
        for u in uuids:
            logged = changes(admin, u)
            versions = [v for _, v in logged]
            assert versions == list(range(1, len(versions) + 1)), u  # commit order, no gap
            version, document_version = head(admin, u)
            assert version == versions[-1]
            assert document_version <= version
            got = admin.execute("SELECT conserver_vcon_fetch(%s)", [u]).fetchone()[0]
            assert_agrees_with_rows(admin, got["vcon"])


def test_a_batch_goes_on_while_another_prunes_the_change_log(admin: Any, mcp_url: str) -> None:
    """Every 100th change prunes the log to its bound. A batch whose pruning meets
    another transaction's (still open, holding the changes it deleted and the bound's
    row) skips it instead of waiting: loading 1,000,000 vCons in two streams, such
    waits crossed and deadlocked. The next 100th change prunes, and the bound holds."""
    admin.execute("UPDATE conserver_vcon_feed_state SET keep_rows = 50, keep_rows_idle = 50")
    admin.execute(
        "SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps([our_vcon() for _ in range(300)])]
    )
    with psycopg.connect(mcp_url) as first, psycopg.connect(mcp_url) as second:
        batch = [our_vcon() for _ in range(150)]
        first.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps(batch)])
        second.execute("SET lock_timeout = '3s'")
        batch = [our_vcon() for _ in range(150)]
        second.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps(batch)])
        second.commit()  # while the first is open: it did not wait for it
        first.commit()
    admin.execute(
        "SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps([our_vcon() for _ in range(100)])]
    )
    kept = admin.execute("SELECT count(*) FROM conserver_vcon_changes").fetchone()[0]
    assert kept <= 150, kept  # 700 changes logged, pruned to the bound as they came
