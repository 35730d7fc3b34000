"""Fixtures of the change-feed tests: a database with vcon-mcp's layout and our
migrations, an admin connection, vcon-mcp's writes as authenticated, our storage."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase import _migrations as migrations

from ...support.change_feed import our_vcon
from ...support.schema import run_sql
from ...support.services import TESTS
from ...support.vcon_mcp_writes import VconMcp


@pytest.fixture
def mcp_url(empty_database_url: str) -> str:
    """vcon-mcp's layout, then our migrations (the order that works, test_migrations)."""
    run_sql(empty_database_url, (TESTS / "sql" / "vcon_mcp_layout.sql").read_text())
    # Supabase's default privileges: its API roles use every sequence (embedding_queue's).
    run_sql(empty_database_url, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO authenticated")
    migrations.apply(empty_database_url)
    return empty_database_url


@pytest.fixture
def admin(mcp_url: str) -> Iterator[Any]:
    with psycopg.connect(mcp_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def mcp(mcp_url: str) -> Iterator[VconMcp]:
    """vcon-mcp's writes, as authenticated (RLS on, no privilege on our tables)."""
    with psycopg.connect(mcp_url, autocommit=True) as conn:
        conn.execute("SET ROLE authenticated")
        yield VconMcp(conn)


@pytest.fixture
def storage(mcp_url: str, redis_json_url: str) -> Iterator[SupabaseStorage]:
    with SupabaseStorage({"database_url": mcp_url, "redis_url": redis_json_url}) as store:
        yield store


@pytest.fixture
def saved(storage: SupabaseStorage) -> dict[str, Any]:
    """Our vCon, saved (version 1): the copy a conserver link holds from now on."""
    document = our_vcon()
    assert storage.save_vcon(copy.deepcopy(document)) == 1
    return document
