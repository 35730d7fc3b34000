"""Replay is fenced: a journaled save lands only if the database acknowledged nothing
newer for its vCon since the failed save (a later save, a delete, by anyone), with the
tenant guard the failed save had; entries refused for their data become dead letters.

Outages are played by the PostgREST stand-in's ``faults`` (HTTP 503)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    SupabaseStorage,
)

from ..support.journaled import JOURNAL, KEY, in_database, storage
from ..support.journaled import server as server  # a fixture
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import environment_without_services, redis_client
from ..support.vcons import sample

pytestmark = pytest.mark.integration


def fail_once(server: PostgrestStandIn, store: SupabaseStorage, document: Any) -> None:
    """Save ``document`` while the database is unavailable: it is journaled."""
    server.faults = ["503"] * 1000
    with pytest.raises(DatabaseUnavailableError) as caught:
        store.save_vcon(document)
    assert caught.value.journaled is True
    server.faults = []


def forget_version(redis_url: str, store: SupabaseStorage, vcon_uuid: str) -> None:
    """What the cache knows of the vCon expired (its key and version key gone)."""
    key = f"{store.config.cache_key_prefix}{vcon_uuid}"
    redis_client(redis_url).delete(key, f"conserver_supabase:version:{{{key}}}")


@pytest.mark.parametrize("known", [True, False], ids=["base-known", "base-unknown"])
def test_a_save_acknowledged_after_the_failed_one_is_not_reverted(
    server: PostgrestStandIn, redis_json_url: str, database_url: str, known: bool
) -> None:
    """Saved at 1; a save fails and is journaled; a later save is acknowledged (2); the
    replay must not put the failed (older) document back, in the database or the cache.
    The fence is the version the cache knew (base-known) or, when it had expired, the
    time of the failed save against the database's (base-unknown)."""
    first = sample()
    failed, later = {**first, "subject": "failed"}, {**first, "subject": "later"}
    with storage(server, redis_json_url) as store:
        store.save_vcon(first)
        if not known:
            forget_version(redis_json_url, store, first["uuid"])
        fail_once(server, store, failed)
        assert store.save_vcon(later) == 2
        report = store.replay_journal()
        assert (report.total, report.replayed, len(report.superseded)) == (1, 0, 1)
        assert first["uuid"] in report.superseded[0]
        assert store.get_vcon(first["uuid"]) == later
        assert store.journal_entries() == []
    assert in_database(database_url, first["uuid"]) == later
    assert redis_client(redis_json_url).llen(JOURNAL) == 0


@pytest.mark.parametrize("known", [True, False], ids=["base-known", "base-unknown"])
def test_an_unchanged_vcon_gets_the_journaled_save(
    server: PostgrestStandIn, redis_json_url: str, database_url: str, known: bool
) -> None:
    """Nothing happened to the vCon since the failed save: the replay saves it, and the
    cache serves it (the counterpart of the test above: the fence lets it through)."""
    first = sample()
    failed = {**first, "subject": "failed, then replayed"}
    with storage(server, redis_json_url) as store:
        store.save_vcon(first)
        if not known:
            forget_version(redis_json_url, store, first["uuid"])
        fail_once(server, store, failed)
        [entry] = store.journal_entries()
        assert entry["base"] == (1 if known else None)
        report = store.replay_journal()
        assert (report.replayed, report.superseded, report.error) == (1, [], None)
        assert store.get_vcon(first["uuid"]) == failed
    assert in_database(database_url, first["uuid"]) == failed


def test_a_delete_made_elsewhere_after_the_failed_save_is_not_undone(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """The delete came from another writer (a process with another Redis, vcon-mcp, an
    operator in SQL): nothing took the entry off this journal, the fence still holds."""
    first = sample()
    with storage(server, redis_json_url) as store:
        store.save_vcon(first)
        fail_once(server, store, {**first, "subject": "failed"})
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT conserver_vcon_remove(%s)", [first["uuid"]])
        report = store.replay_journal()
        assert (report.replayed, len(report.superseded)) == (0, 1)
        assert "deleted" in report.superseded[0]
    assert in_database(database_url, first["uuid"]) is None


def test_a_new_vcon_whose_first_save_failed_is_saved(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    document = sample()
    with storage(server, redis_json_url) as store:
        fail_once(server, store, document)
        assert store.journal_entries()[0]["base"] is None
        assert store.replay_journal().replayed == 1
    assert in_database(database_url, document["uuid"]) == document


def test_a_links_newer_working_copy_whose_save_failed_is_replayed(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """A link writes a newer working copy while the hook's save of the older one is in
    flight: the touch keeps it and puts -2 on record. Its own hook save then fails and is
    journaled: -2 is no base (it is not a delete), so the time rule lets the replay
    save it, where "based on the delete at 2" would have dropped the link's work."""
    older = sample()
    newer = {**older, "subject": "the link's newer working copy"}
    key = f"vcon:{older['uuid']}"
    r = redis_client(redis_json_url)
    with storage(server, redis_json_url) as store:
        store.save_vcon(older)
        server.latency = 0.3  # the hook's save waits in the stand-in
        seen = len(server.requests)
        hook = threading.Thread(target=store.save_working_copy, args=(older["uuid"],))
        hook.start()
        deadline = time.monotonic() + 10
        while len(server.requests) == seen and time.monotonic() < deadline:
            time.sleep(0.005)  # until the hook read the working copy and called the database
        r.json().set(key, "$", newer)
        hook.join(10)
        server.latency = 0.0
        assert int(r.get(f"conserver_supabase:version:{{{key}}}")) == -2
        assert in_database(database_url, older["uuid"]) == older
        server.faults = ["503"] * 1000
        with pytest.raises(DatabaseUnavailableError) as caught:
            store.save_working_copy(older["uuid"])
        assert caught.value.journaled is True
        server.faults = []
        assert store.journal_entries()[0]["base"] is None
        report = store.replay_journal()
        assert (report.replayed, report.superseded) == (1, [])
        assert store.get_vcon(older["uuid"]) == newer
    assert in_database(database_url, older["uuid"]) == newer


def test_the_recorded_tenant_guard_holds_whatever_the_replay_runs_with(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """Tenant B's vCon; a tenant-A storage's save of it is refused (not journaled); a
    tenant-A save that failed in an outage is journaled with A's guard, and a replay
    from a storage without tenant options still applies it: refused, dead-lettered, B's
    vCon untouched."""
    owned = sample()
    mine = {**owned, "subject": "tenant A's document"}
    base = {"url": server.url, "key": KEY, "redis_url": redis_json_url, "retry_deadline": 0.2}
    with SupabaseStorage({**base, "tenant_id": "B"}) as tenant_b:
        tenant_b.save_vcon(owned)
    with SupabaseStorage({**base, "tenant_id": "A"}) as tenant_a:
        with pytest.raises(DatabaseRejectedError, match="another tenant") as caught:
            tenant_a.save_vcon(mine)
        assert caught.value.journaled is False
        assert redis_client(redis_json_url).llen(JOURNAL) == 0
        fail_once(server, tenant_a, mine)
        assert tenant_a.journal_entries()[0]["tenant"] == {"tenant_id": "A", "exclusive": True}
    with SupabaseStorage(base) as environment:
        report = environment.replay_journal()
        assert (report.replayed, len(report.dead_lettered)) == (0, 1)
        [letter] = environment.journal_entries(dead=True)
        assert letter["uuid"] == owned["uuid"]
        assert "another tenant" in letter["reason"]
        assert letter["code"] == "P0001"
    assert in_database(database_url, owned["uuid"]) == owned


def test_an_entry_refused_for_its_data_becomes_a_dead_letter(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """The database refuses the journaled document for what it holds (a CHECK added
    since): it moves to the dead letters with the reason and its document, and is not
    retried by the next replay."""
    document = sample()
    with storage(server, redis_json_url) as store:
        fail_once(server, store, document)
        with psycopg.connect(database_url, autocommit=True) as conn:
            check = "ALTER TABLE vcons ADD CONSTRAINT replay_subject_check CHECK (subject {})"
            refused = sql.SQL("IS DISTINCT FROM {}").format(sql.Literal(document["subject"]))
            conn.execute(sql.SQL(check + " NOT VALID").format(refused))
        try:
            report = store.replay_journal()
            assert (report.replayed, len(report.dead_lettered), report.error) == (0, 1, None)
            assert store.replay_journal().total == 0
            [letter] = store.journal_entries(dead=True)
            assert letter["code"] == "23514"
            assert "replay_subject_check" in letter["reason"]
            kept = redis_client(redis_json_url).get(f"{JOURNAL}:dead:{document['uuid']}")
            assert json.loads(json.loads(kept)["document"]) == document
        finally:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("ALTER TABLE vcons DROP CONSTRAINT replay_subject_check")
    assert in_database(database_url, document["uuid"]) is None


def test_the_journal_keeps_for_the_retention_and_the_commands_list_and_purge(
    server: PostgrestStandIn, redis_json_url: str, tmp_path: Path
) -> None:
    """Every key holding the vCon expires with journal_retention_days; `journal list`
    shows the entry without its document; `journal purge` removes what is older than
    --older-than (default: the retention), with its keys."""
    r = redis_client(redis_json_url)
    document = sample()
    with storage(server, redis_json_url, journal_retention_days=0.5) as store:
        fail_once(server, store, document)
    for key in (f"{JOURNAL}:vcon:{document['uuid']}", f"{JOURNAL}:meta:{document['uuid']}"):
        assert 43200 - 5 <= r.ttl(key) <= 43200
    config = tmp_path / "config.yml"
    options = {"url": server.url, "key": KEY, "redis_url": redis_json_url,
               "journal_retention_days": 0.5}  # fmt: skip
    config.write_text(json.dumps({"storages": {"s": {"module": "conserver_supabase",
                                                     "options": options}}}))  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conserver_supabase", *args, "--config", str(config)],
            capture_output=True, text=True, timeout=120, check=True,
            env=environment_without_services(),
        )  # fmt: skip

    shown = cli("journal", "list")
    assert document["uuid"] in shown.stdout
    assert "each kept at most 0.5 day(s)" in shown.stdout
    assert document["subject"] not in shown.stdout  # never a document: personal data
    [entry] = json.loads(cli("journal", "list", "--json").stdout)
    assert (entry["uuid"], entry["base"], entry["kept_as"]) == (document["uuid"], None, "document")
    assert json.loads(cli("journal", "purge", "--yes", "--json").stdout)["removed"] == 0
    purged = cli("journal", "purge", "--older-than", "0", "--yes", "--json")
    assert json.loads(purged.stdout) == {"removed": 1, "dead": False, "older_than_days": 0.0}
    assert "checked 1/1" in purged.stderr
    assert r.keys(f"{JOURNAL}*") == []


def test_the_fence_rule_on_both_transports(transport: Any) -> None:
    """conserver_vcon_replay itself, row by row of docs/reliability.md's table."""
    document = sample()
    vcon_uuid = document["uuid"]
    assert transport.save([document], None) == {vcon_uuid: 1}
    assert transport.replay(document, None, {"version": 1}) == (2, None, None)
    version, why, _ = transport.replay(document, None, {"version": 1})
    assert (version, "holds version 2" in str(why)) == (0, True)
    assert transport.replay(document, None, {"at": time.time() - 60})[0] == 0  # saved since
    assert transport.replay(document, None, {"at": time.time() + 60}) == (3, None, None)
    assert transport.replay(document, None, {})[0] == 0  # no base: only an unknown vCon
    assert transport.delete(vcon_uuid) == 4
    assert transport.replay(document, None, {"version": 3})[1] is not None
    assert transport.replay(document, None, {"version": -4}) == (5, None, None)
    assert transport.delete(vcon_uuid) == 6
    version, why, _ = transport.replay(document, None, {"version": -4})
    assert (version, "deleted it again (version 6)" in str(why)) == (0, True)
    fresh = sample()
    assert transport.replay(fresh, None, {}) == (1, None, None)
    with pytest.raises(InvalidVconError, match="replay base"):
        transport.replay(fresh, None, {"version": "1"})
