"""Fixtures of the search tests: one migrated database per PostgreSQL server holding the
corpus (1200 vCons) for the package, and storages on it through both transports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conserver_supabase import StorageConfig, SupabaseStorage
from conserver_supabase._database._postgres import PostgresDatabase

from ...support.postgrest_standin import PostgrestStandIn
from ...support.search_store import CORPUS, KEY, Searcher
from ...support.services import create_database, drop_database, with_database
from ...support.sql_calls import SqlCalls


@pytest.fixture(scope="package")
def corpus_url(pg_admin_url: str, _migrated_template: str) -> Iterator[str]:
    """A migrated database holding the corpus, once per PostgreSQL server."""
    name = create_database(pg_admin_url, template=_migrated_template)
    url = with_database(pg_admin_url, name)
    database = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": url})))
    try:
        for start in range(0, len(CORPUS), 200):
            database.save_many(CORPUS[start : start + 200])
    finally:
        database.close()
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="package")
def stand_in(corpus_url: str) -> Iterator[PostgrestStandIn]:
    """The PostgREST stand-in in front of the corpus database (stopping one takes 0.5 s,
    so the package shares it; tests count its requests relatively)."""
    with PostgrestStandIn(corpus_url, key=KEY) as server:
        yield server


@pytest.fixture(params=["postgres", "postgrest"])
def store(
    request: pytest.FixtureRequest, corpus_url: str, redis_json_url: str
) -> Iterator[Searcher]:
    """A SupabaseStorage on the corpus database, through psycopg or through PostgREST."""
    server: PostgrestStandIn | None = None
    if request.param == "postgres":
        options = {"database_url": corpus_url, "redis_url": redis_json_url}
    else:
        server = request.getfixturevalue("stand_in")
        options = {"url": server.url, "key": KEY, "redis_url": redis_json_url}
    with SupabaseStorage(options) as storage:
        yield Searcher(storage, options, server)
