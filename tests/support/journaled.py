"""Helpers of the journal tests: a storage on the PostgREST stand-in (whose ``faults``
play a database outage) and the database's own answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage

from .postgrest_standin import PostgrestStandIn

KEY = "journal-test-key"
JOURNAL = "conserver_supabase:journal"
RETENTION = 7 * 86400  # the default journal_retention_days, in seconds


@pytest.fixture
def server(database_url: str) -> Iterator[PostgrestStandIn]:
    """The PostgREST stand-in on the test database (a fixture of the journal tests)."""
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        yield stand_in


def storage(server: PostgrestStandIn, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {
            "url": server.url,
            "key": KEY,
            "redis_url": redis_url,
            "retry_deadline": 0.2,
            "cache_ttl": 300,
            **options,
        }
    )


def in_database(database_url: str, vcon_uuid: str) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()[0]
