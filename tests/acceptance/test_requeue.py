"""requeue: the uuids of vCons saved in a time window go onto a chain list, oldest
first, page by page; through both transports and as a command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from conserver_supabase import ConfigurationError, SupabaseStorage
from conserver_supabase.testing import make_vcon

from ..support.cli import run
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "postgrest"])
def options(
    request: pytest.FixtureRequest, database_url: str, redis_json_url: str
) -> Iterator[dict[str, Any]]:
    if request.param == "postgres":
        yield {"database_url": database_url, "redis_url": redis_json_url}
        return
    with PostgrestStandIn(database_url, key="k") as server:
        yield {"url": server.url, "key": "k", "redis_url": redis_json_url}


def save(store: SupabaseStorage, seeds: range) -> list[str]:
    uuids = []
    for seed in seeds:
        document = make_vcon(seed=seed)
        store.save_vcon(document)
        uuids.append(document["uuid"])
    return uuids


def moment() -> datetime:
    time.sleep(0.02)
    now = datetime.now(UTC)
    time.sleep(0.02)
    return now


def test_the_window_goes_onto_the_list_oldest_first(
    options: dict[str, Any], redis_json_url: str
) -> None:
    r = redis_client(redis_json_url)
    with SupabaseStorage(options) as store:
        save(store, range(2))
        since = moment()
        inside = save(store, range(10, 15))
        until = moment()
        after = save(store, range(20, 21))
        assert store.requeue("recovery", since, until, page_size=2) == 5
        assert [u.decode() for u in r.lrange("recovery", 0, -1)] == inside
        assert store.requeue("later", until) == 1
        assert [u.decode() for u in r.lrange("later", 0, -1)] == after
        assert store.requeue("none", datetime.now(UTC)) == 0
        assert r.exists("none") == 0
        with pytest.raises(ConfigurationError, match="timezone"):
            store.requeue("x", datetime(2026, 1, 1))
        with pytest.raises(ConfigurationError, match="empty"):
            store.requeue(" ", since)


def test_the_command(database_url: str, redis_json_url: str) -> None:
    where = {"SUPABASE_DB_URL": database_url, "REDIS_URL": redis_json_url}
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        since = moment()
        inside = save(store, range(3))
        until = moment()
    result = run("requeue", "--since", since.isoformat(), "--until", until.isoformat(),
                 "--list", "recovery", env=where)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pushed 3 uuid(s) onto recovery (vCons saved from ")
    r = redis_client(redis_json_url)
    assert [u.decode() for u in r.lrange("recovery", 0, -1)] == inside
    as_json = run("requeue", "--since", since.isoformat().replace("+00:00", "Z"),
                  "--list", "again", "--json", env=where)  # fmt: skip
    assert json.loads(as_json.stdout)["pushed"] == 3
    bad = run("requeue", "--since", "yesterday", "--list", "x", env=where)
    assert (bad.returncode, "not an ISO 8601 time" in bad.stderr) == (2, True)
    naive = run("requeue", "--since", "2026-11-25T09:00:00", "--list", "x", env=where)
    assert (naive.returncode, "needs a timezone" in naive.stderr) == (2, True)
    r.set("a-string", "x")
    wrong = run("requeue", "--since", since.isoformat(), "--list", "a-string", env=where)
    assert wrong.returncode == 1
    assert "WRONGTYPE" in wrong.stderr or "wrong kind" in wrong.stderr
