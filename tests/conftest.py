"""Shared by both suites: ``unit/`` (no server; fakes and the in-memory database) and
``acceptance/`` (real PostgreSQL, Redis and the PostgREST stand-in, started by its
conftest). Plain helpers live in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support.services import close_opened, free_port


@pytest.fixture(autouse=True)
def _close_what_tests_opened() -> Iterator[None]:
    """Clients, caches and shared storages must not outlive a test's services."""
    yield
    from conserver_supabase import SupabaseStorage

    SupabaseStorage.close_shared()
    close_opened()


@pytest.fixture
def unreachable_redis_url() -> str:
    """A Redis URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    return f"redis://127.0.0.1:{free_port()}/0"
