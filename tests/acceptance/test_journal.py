"""The failed-save journal: a save that still fails after the retries leaves its vCon
in Redis for `replay`, or says that it could not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
)

from ..support.journaled import JOURNAL, KEY, RETENTION, in_database, storage
from ..support.journaled import server as server  # a fixture
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import environment_without_services, redis_client
from ..support.vcons import sample

pytestmark = pytest.mark.integration


def test_a_conserver_save_that_fails_is_journaled_and_replayed(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """The working copy is kept for the retention and the uuid is journaled; replay saves it and
    gives the key its TTL back."""
    r = redis_client(redis_json_url)
    document = sample()
    key = f"vcon:{document['uuid']}"
    r.json().set(key, "$", document)
    r.expire(key, 60)
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url) as store:
        with pytest.raises(DatabaseUnavailableError) as caught:
            store.save_working_copy(document["uuid"])
        assert caught.value.journaled is True
        assert "failed-save journal" in str(caught.value)
        assert "conserver-supabase replay" in str(caught.value)
        assert r.lrange(JOURNAL, 0, -1) == [document["uuid"].encode()]
        assert RETENTION - 5 <= r.ttl(key) <= RETENTION  # kept for the replay, not forever
        server.faults = []
        report = store.replay_journal()
        assert (report.total, report.replayed, report.error) == (1, 1, None)
        report_again = store.replay_journal()
        assert (report_again.total, report_again.replayed) == (0, 0)
    assert in_database(database_url, document["uuid"]) == document
    assert r.llen(JOURNAL) == 0
    assert 0 < r.ttl(key) <= 300


def test_a_document_handed_in_is_kept_by_the_journal(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    r = redis_client(redis_json_url)
    first, second = sample(), sample()
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url) as store:
        with pytest.raises(DatabaseUnavailableError):
            store.save_vcon(first)
        with pytest.raises(DatabaseUnavailableError):
            store.save_many([second])
        assert json.loads(r.get(f"{JOURNAL}:vcon:{first['uuid']}")) == first
        assert r.llen(JOURNAL) == 2
        server.faults = []
        assert store.replay_journal().replayed == 2
    for document in (first, second):
        assert in_database(database_url, document["uuid"]) == document
        assert r.exists(f"{JOURNAL}:vcon:{document['uuid']}") == 0


def test_a_replay_stops_when_the_database_is_still_down(
    server: PostgrestStandIn, redis_json_url: str
) -> None:
    r = redis_client(redis_json_url)
    documents = [sample(), sample()]
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url) as store:
        for document in documents:
            with pytest.raises(DatabaseUnavailableError):
                store.save_vcon(document)
        report = store.replay_journal()
    assert (report.replayed, report.total) == (0, 2)
    assert report.error is not None
    assert r.llen(JOURNAL) == 2  # nothing lost, nothing journaled twice


def test_the_journal_has_a_bound(server: PostgrestStandIn, redis_json_url: str) -> None:
    """journal_max_entries: once the journal holds that many entries, a failed save is
    not journaled; its error says so and how to make room, and the caller keeps it."""
    r = redis_client(redis_json_url)
    documents = [sample(), sample(), sample()]
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url, journal_max_entries=2) as store:
        for document in documents[:2]:
            with pytest.raises(DatabaseUnavailableError) as kept:
                store.save_vcon(document)
            assert kept.value.journaled
        with pytest.raises(DatabaseUnavailableError) as refused:
            store.save_vcon(documents[2])
        assert not refused.value.journaled
        assert "the journal is full (2 entries; journal_max_entries 2)" in str(refused.value)
        assert "conserver-supabase replay" in str(refused.value)
        assert r.llen(JOURNAL) == 2
        assert r.exists(f"{JOURNAL}:vcon:{documents[2]['uuid']}") == 0
        server.faults = []
        assert store.replay_journal().replayed == 2
        assert store.save_vcon(documents[2]) == 1  # room again once replayed


def test_when_redis_is_down_too_the_error_says_so(
    server: PostgrestStandIn, unreachable_redis_url: str
) -> None:
    server.faults = ["503"] * 1000
    with (
        storage(server, unreachable_redis_url) as store,
        pytest.raises(DatabaseUnavailableError) as caught,
    ):
        store.save_vcon(sample())
    assert caught.value.journaled is False
    assert "could NOT be journaled" in str(caught.value)


def test_refusals_and_invalid_vcons_are_not_journaled(
    server: PostgrestStandIn, redis_json_url: str
) -> None:
    """A refusal (a wrong key) is not transient: raised at once with the fix, never
    journaled (every replay would be refused too until the fix); an invalid vCon never
    can be saved. Nothing of either is kept."""
    r = redis_client(redis_json_url)
    with storage(server, redis_json_url, key="wrong") as store:
        with pytest.raises(DatabaseRejectedError) as caught:
            store.save_vcon(sample())
        assert caught.value.journaled is False
        assert caught.value.attempts == 1
        assert "service-role key" in str(caught.value)
        bad = sample()
        bad["dialog"][0]["type"] = "hologram"
        with pytest.raises(InvalidVconError):
            store.save_vcon(bad)
    assert r.llen(JOURNAL) == 0
    assert r.keys(f"{JOURNAL}*") == []


def test_the_replay_command(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    document = sample()
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url) as store, pytest.raises(DatabaseUnavailableError):
        store.save_vcon(document)
    server.faults = []
    environ = environment_without_services()
    environ.update(SUPABASE_URL=server.url, SUPABASE_SERVICE_ROLE_KEY=KEY, REDIS_URL=redis_json_url)
    result = subprocess.run(
        [sys.executable, "-m", "conserver_supabase", "replay"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 vCon(s) waiting" in result.stdout
    assert "saved again: 1" in result.stdout
    assert "replayed 1/1" in result.stderr
    assert in_database(database_url, document["uuid"]) == document


def test_a_replay_refused_by_the_configuration_stops_and_keeps_everything(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """Journaled during an outage, replayed with a wrong key: the refusal is the
    configuration's, not the vCons', so the replay stops at once and keeps every entry
    (none is dead-lettered); with the key fixed, the next replay saves everything."""
    r = redis_client(redis_json_url)
    documents = [sample(), sample()]
    server.faults = ["503"] * 1000
    with storage(server, redis_json_url) as store:
        for document in documents:
            with pytest.raises(DatabaseUnavailableError):
                store.save_vcon(document)
    server.faults = []
    with storage(server, redis_json_url, key="wrong") as store:
        report = store.replay_journal()
    assert (report.total, report.replayed, report.dead_lettered) == (2, 0, [])
    assert report.error is not None
    assert "service-role key" in report.error
    assert r.llen(JOURNAL) == 2
    with storage(server, redis_json_url) as store:
        assert store.replay_journal().replayed == 2
    for document in documents:
        assert in_database(database_url, document["uuid"]) == document


def test_a_delete_takes_its_vcon_off_the_journal(
    server: PostgrestStandIn, redis_json_url: str, database_url: str
) -> None:
    """Saved, then a later save fails and is journaled, then the vCon is deleted: the
    journaled document goes with it, so no replay brings the deleted vCon back."""
    r = redis_client(redis_json_url)
    document = sample()
    later = {**document, "subject": "the failed save"}
    with storage(server, redis_json_url) as store:
        store.save_vcon(document)
        server.faults = ["503"] * 1000
        with pytest.raises(DatabaseUnavailableError):
            store.save_vcon(later)
        assert r.lrange(JOURNAL, 0, -1) == [document["uuid"].encode()]
        server.faults = []
        assert store.delete_vcon(document["uuid"]) is True
        assert r.llen(JOURNAL) == 0
        assert r.exists(f"{JOURNAL}:vcon:{document['uuid']}") == 0
        assert store.replay_journal().total == 0
        assert store.get_vcon(document["uuid"]) is None
    assert in_database(database_url, document["uuid"]) is None


def test_a_delete_gives_a_journaled_working_copy_its_ttl_back(
    server: PostgrestStandIn, redis_json_url: str
) -> None:
    """The journal kept the conserver's working copy for the retention; once the vCon is
    deleted nothing replays it, and Redis expires it with the cache's TTL."""
    r = redis_client(redis_json_url)
    document = sample()
    key = f"vcon:{document['uuid']}"
    r.json().set(key, "$", document)
    r.expire(key, 60)
    with storage(server, redis_json_url, cache_key_prefix="app:") as store:
        server.faults = ["503"] * 1000
        with pytest.raises(DatabaseUnavailableError):
            store.save_working_copy(document["uuid"])
        assert r.ttl(key) > 300
        server.faults = []
        assert store.delete_vcon(document["uuid"]) is False  # never saved
        assert r.llen(JOURNAL) == 0
        assert 0 < r.ttl(key) <= 300
        assert store.replay_journal().total == 0
