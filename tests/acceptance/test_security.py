"""Secrets never leak: a whole session at DEBUG with known fake secrets, and none of them
appears in logs, reprs, error messages or command output."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conserver_supabase import (
    ConserverSupabaseError,
    StorageConfig,
    SupabaseStorage,
)
from conserver_supabase.testing import EmbeddedRedis

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import environment_without_services, redis_client, unavailable
from ..support.vcons import sample

pytestmark = pytest.mark.integration

SERVICE_KEY = "sk-FAKE-service-role-4f1c9a7e2b"
REDIS_PASSWORD = "redis-FAKE-pass-8d2e61"
PG_PASSWORD = "pg-FAKE-pass-31b7c0"
SECRETS = (SERVICE_KEY, REDIS_PASSWORD, PG_PASSWORD)


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[str]:
    """A Redis of its own that requires a password."""
    try:
        server = EmbeddedRedis()
        server.__enter__()
    except Exception as exc:  # report, do not hide
        unavailable(f"embedded Redis did not start: {exc}")
    try:
        client = redis_client(server.url)
        client.config_set("requirepass", REDIS_PASSWORD)
        client.close()
        yield server.url.replace("redis://", f"redis://:{REDIS_PASSWORD}@")
    finally:
        server.__exit__(None, None, None)


def with_password(database_url: str) -> str:
    """The same database, with a password in the URL (trust auth ignores it)."""
    parts = urlsplit(database_url)
    netloc = f"postgres:{PG_PASSWORD}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def test_a_whole_session_at_debug_leaks_nothing(
    database_url: str, redis_with_password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, psycopg, redis
    seen: list[str] = []
    document = sample()
    with PostgrestStandIn(database_url, key=SERVICE_KEY) as server:
        options = {
            "url": server.url,
            "key": SERVICE_KEY,
            "redis_url": redis_with_password,
            "chain_lists": ["egress"],
            "retry_deadline": 0.2,
        }
        with SupabaseStorage(options) as store:
            seen += [repr(store), str(store.config), str(store.config.describe())]
            store.save_vcon(document)
            store.get_vcon(document["uuid"])
            redis_client(redis_with_password).delete(f"vcon:{document['uuid']}")
            store.get_vcon(document["uuid"])
            store.search(text="billing", include_vcons=True)
            store.delete_vcon(document["uuid"])
        failing: list[dict[str, Any]] = [
            {**options, "key": SERVICE_KEY + "-wrong"},  # rejected key
            {**options, "url": "http://127.0.0.1:9"},  # database unreachable
            {**options, "redis_url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0"},
            {**options, "redis_url": redis_with_password.replace(REDIS_PASSWORD, "wrong")},
        ]
        for bad in failing:
            with SupabaseStorage(bad) as store:
                for call in (lambda: store.save_vcon(sample()), lambda: store.get_vcon(
                        document["uuid"])):  # fmt: skip
                    try:
                        call()
                    except ConserverSupabaseError as exc:
                        seen += [str(exc), repr(exc), *getattr(exc, "__notes__", [])]
    with SupabaseStorage(
        {"database_url": with_password(database_url), "redis_url": redis_with_password}
    ) as store:
        seen += [repr(store), str(store.config.describe())]
        store.save_vcon(sample())
    for index, text in enumerate(seen):
        assert_clean(text, f"message {index}")
    assert_clean(caplog.text, "the logs")
    assert SERVICE_KEY not in repr(StorageConfig.from_options({"key": SERVICE_KEY}))


def test_commands_print_no_secret(database_url: str, redis_with_password: str) -> None:
    environ = environment_without_services()
    environ.update(
        SUPABASE_DB_URL=with_password(database_url),
        REDIS_URL=redis_with_password,
        SUPABASE_SERVICE_ROLE_KEY=SERVICE_KEY,
    )
    for args in (
        ["-v", "doctor"],
        ["-v", "search", "--text", "billing"],
        ["-v", "replay"],
        ["-v", "migrate"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "conserver_supabase", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=environ,
            check=False,
        )
        assert result.returncode in (0, 1), result.stderr
        assert_clean(result.stdout + result.stderr, " ".join(args))
