"""Direct PostgreSQL transport (psycopg 3 with a small thread-safe pool).

Used when ``database_url`` is set: self-hosted Supabase, Supabase's connection
pooler, bulk jobs, and the embedded database of the demo and the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._config import StorageConfig
from .._errors import ConfigurationError
from ._errors import database_errors
from ._functions import Function, Transport

__all__ = ["PostgresDatabase", "import_psycopg"]


def import_psycopg() -> Any:
    """Return the psycopg module, or say which extra to install."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - checked here so both fail the same way
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "direct PostgreSQL access (database_url, migrate) needs psycopg: "
            "pip install 'conserver-supabase[postgres]'",
            option="database_url",
        ) from None
    return psycopg


class PostgresDatabase(Transport):
    """Calls the ``conserver_vcon_*`` SQL functions over a psycopg connection pool.

    The pool opens lazily on first use and is safe to share between threads.
    ``replica=True`` connects to ``read_database_url`` instead, read-only.
    Prepared statements are off, so the transport also works through PgBouncer or
    Supavisor in transaction mode.
    """

    def __init__(self, config: StorageConfig, *, replica: bool = False) -> None:
        option = "read_database_url" if replica else "database_url"
        url = config.read_database_url if replica else config.database_url
        if url is None:
            raise ConfigurationError(f"the PostgreSQL transport needs {option!r}", option=option)
        import_psycopg()
        from psycopg_pool import ConnectionPool

        self._schema = config.schema
        self._sql: dict[str, str] = {}
        settings = f"-c statement_timeout={int(config.timeout * 1000)}"
        if replica:
            # A replica only ever reads: a misconfigured writable "replica" refuses
            # writes too, instead of silently diverging from the primary.
            settings += " -c default_transaction_read_only=on"
        self._pool = ConnectionPool(
            url.reveal(),
            min_size=1,
            max_size=config.pool_size,
            timeout=config.timeout,
            open=False,
            name="conserver-supabase-replica" if replica else "conserver-supabase",
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, int(config.timeout)),
                "options": settings,
                "application_name": "conserver-supabase",
            },
        )
        self._open_lock = threading.Lock()
        self._opened = False

    def call(self, function: Function, arguments: Sequence[Any], vcon_uuid: str | None) -> Any:
        from psycopg.types.json import Jsonb

        values = [Jsonb(a) if isinstance(a, Mapping | list) else a for a in arguments]
        statement = self._sql.get(function.name) or self._statement(function)
        with database_errors(function.operation, vcon_uuid):
            self._ensure_open()
            with self._pool.connection() as conn:
                row = conn.execute(statement, values).fetchone()
        return None if row is None else row[0]

    def _statement(self, function: Function) -> str:
        """``SELECT schema.function(%s, ...)``, composed once per function."""
        from psycopg import sql

        placeholders = sql.SQL(", ").join(sql.Placeholder() for _ in function.params)
        statement = (
            sql.SQL("SELECT {}.{}({})")
            .format(sql.Identifier(self._schema), sql.Identifier(function.name), placeholders)
            .as_string()
        )
        self._sql[function.name] = statement
        return statement

    def _ensure_open(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False
