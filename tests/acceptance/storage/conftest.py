"""Fixtures of the storage tests: a counting database on each transport, real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conserver_supabase._database import Database

from ...support.counting import CountingDatabase
from ...support.redis_kinds import RedisUnderTest, real
from ...support.services import redis_client


@pytest.fixture
def db(transport: Database) -> CountingDatabase:
    """The behaviour suite runs on every transport (``transport``: psycopg, supabase-py
    over real HTTP to the PostgREST stand-in in front of the same database, and psycopg
    through a real PgBouncer in transaction mode with its default configuration)."""
    return CountingDatabase(transport)


@pytest.fixture
def database(db: CountingDatabase) -> CountingDatabase:
    """The database of the shared suite (tests/behaviour/storage.py)."""
    return db


@pytest.fixture
def redis_kind(redis_url: str, _redis_servers: dict[str, str]) -> RedisUnderTest:
    """The real Redis of ``redis_url`` for the shared suite."""
    kind = next(name for name, url in _redis_servers.items() if url == redis_url)
    return real(kind, redis_url)


@pytest.fixture
def r(redis_url: str) -> Iterator[Any]:
    client = redis_client(redis_url)
    yield client
    client.close()
