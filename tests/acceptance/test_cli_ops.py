"""The operator commands get, exists, delete and cache stats/flush/warm, run as
subprocesses against real PostgreSQL and Redis: output and exit codes, failure modes
included."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase.testing import make_vcon

from ..support.cli import env, run
from ..support.services import redis_client

pytestmark = pytest.mark.integration


def saved(database_url: str, redis_url: str, count: int = 1) -> list[dict[str, Any]]:
    documents = [make_vcon(seed=i) for i in range(count)]
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_url}) as store:
        store.save_many(documents)
    return documents


def test_get_exists_delete(database_url: str, redis_json_url: str) -> None:
    (document,) = saved(database_url, redis_json_url)
    vcon_uuid = document["uuid"]
    where = env(database_url, redis_json_url)
    r = redis_client(redis_json_url)

    got = run("get", vcon_uuid, env=where)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == document

    r.delete(f"vcon:{vcon_uuid}")
    direct = run("get", vcon_uuid, "--no-cache", env=where)
    assert json.loads(direct.stdout) == document
    assert r.exists(f"vcon:{vcon_uuid}") == 0  # --no-cache leaves the cache alone
    assert run("get", vcon_uuid, env=where).returncode == 0
    assert r.exists(f"vcon:{vcon_uuid}") == 1  # a plain get fills it

    exists = run("exists", vcon_uuid, env=where)
    assert (exists.returncode, exists.stdout.strip()) == (0, f"vCon {vcon_uuid} exists")
    as_json = run("exists", vcon_uuid, "--json", env=where)
    assert json.loads(as_json.stdout) == {"uuid": vcon_uuid, "exists": True}

    unasked = run("delete", vcon_uuid, env=where)  # no terminal, no --yes
    assert unasked.returncode == 2
    assert "pass --yes" in unasked.stderr
    assert run("exists", vcon_uuid, env=where).returncode == 0

    deleted = run("delete", vcon_uuid, "--yes", env=where)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted vCon {vcon_uuid} (database and cache)"
    assert r.exists(f"vcon:{vcon_uuid}") == 0

    missing = run("get", vcon_uuid, env=where)
    assert (missing.returncode, missing.stdout) == (3, "")
    assert f"vCon {vcon_uuid} not found" in missing.stderr
    gone = run("exists", vcon_uuid, env=where)
    assert (gone.returncode, gone.stdout.strip()) == (3, f"vCon {vcon_uuid} does not exist")
    again = run("delete", vcon_uuid, "--yes", "--json", env=where)
    assert again.returncode == 3
    assert json.loads(again.stdout) == {"uuid": vcon_uuid, "deleted": False}


def test_a_bad_uuid_is_a_usage_error(database_url: str, redis_json_url: str) -> None:
    for command in (["get"], ["exists"], ["delete", "--yes"]):
        result = run(*command, "vcon:*", env=env(database_url, redis_json_url))
        assert result.returncode == 2, command
        assert "uuid" in result.stderr


def test_an_unreachable_database_is_exit_code_1(redis_json_url: str, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "config.yml"
    config.write_text(
        "storages:\n  supabase:\n    module: conserver_supabase\n    options:\n"
        f"      database_url: postgresql://postgres@127.0.0.1:{port}/postgres\n"
        f"      redis_url: {redis_json_url}\n"
        "      retry_deadline: 0.3\n"
    )
    result = run("get", make_vcon(seed=1)["uuid"], "--config", str(config))
    assert result.returncode == 1
    assert "database unavailable" in result.stderr


def test_cache_stats_flush_and_warm(database_url: str, redis_json_url: str) -> None:
    documents = saved(database_url, redis_json_url, count=3)
    where = env(database_url, redis_json_url)
    r = redis_client(redis_json_url)
    working = make_vcon(seed=99)
    r.json().set(f"vcon:{working['uuid']}", "$", working)  # a conserver's, never saved
    r.set("other:1", "not ours")

    stats = run("cache", "stats", "--json", env=where)
    assert stats.returncode == 0, stats.stderr
    usage = json.loads(stats.stdout)
    assert (usage["prefix"], usage["keys"], usage["saved"]) == ("vcon:", 4, 3)
    assert usage["memory_bytes"] > 0
    text = run("cache", "stats", env=where).stdout
    assert "keys under the prefix: 4" in text
    assert "working copies not saved yet:    1" in text

    assert run("cache", "flush", env=where).returncode == 2  # no terminal, no --yes
    r.config_resetstat()
    flushed = run("cache", "flush", "--yes", env=where)
    assert flushed.returncode == 0, flushed.stderr
    assert "removed 3 cached vCon(s) under 'vcon:'" in flushed.stdout
    assert "kept 1 key(s) without a saved version" in flushed.stdout
    commands = r.info("commandstats")
    assert "cmdstat_scan" in commands
    assert not {"cmdstat_keys", "cmdstat_flushdb", "cmdstat_flushall"} & set(commands)
    assert r.exists(f"vcon:{working['uuid']}", "other:1") == 2
    assert all(r.exists(f"vcon:{d['uuid']}") == 0 for d in documents)

    warmed = run("cache", "warm", env=where)
    assert warmed.returncode == 0, warmed.stderr
    assert warmed.stdout.strip() == "3 vCon(s) matched, 3 filled into the cache"
    assert all(r.json().get(f"vcon:{d['uuid']}") == d for d in documents)
    again = run("cache", "warm", "--json", env=where)
    assert json.loads(again.stdout) == {"matched": 3, "filled": 0}
    one = documents[0]["parties"][0]["tel"]
    subset = run("cache", "warm", "--tel", one, "--json", env=where)
    assert json.loads(subset.stdout)["matched"] >= 1
