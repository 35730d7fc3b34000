"""Direct PostgreSQL transport (psycopg 3 with a small thread-safe pool).

Used when ``database_url`` is set: self-hosted Supabase, Supabase's connection
pooler, bulk jobs, and the embedded database of the demo and the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._boundary import database_errors
from ..config import StorageConfig
from ..errors import ConfigurationError
from .base import Tenant, Versioned, versioned

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


class PostgresDatabase:
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
        from psycopg import sql
        from psycopg_pool import ConnectionPool

        schema = sql.Identifier(config.schema)
        self._sql = {
            name: sql.SQL("SELECT {}.{}(%s)").format(schema, sql.Identifier(function)).as_string()
            for name, function in {
                "save": "conserver_vcon_save",
                "save_many": "conserver_vcon_save_many",
                "load": "conserver_vcon_load",
                "load_many": "conserver_vcon_load_many",
                "delete": "conserver_vcon_remove",
                "exists": "conserver_vcon_exists",
                "search": "conserver_vcon_search",
                "saved_between": "conserver_vcon_saved_between",
                "fetch": "conserver_vcon_fetch",
                "fetch_many": "conserver_vcon_fetch_many",
            }.items()
        }
        # With the tenant as a second argument (migration 0008).
        for name, function in {
            "save_tenant": "conserver_vcon_save",
            "save_many_tenants": "conserver_vcon_save_many",
        }.items():
            self._sql[name] = (
                sql.SQL("SELECT {}.{}(%s, %s)").format(schema, sql.Identifier(function)).as_string()
            )
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

    def _call(
        self, name: str, argument: Any, operation: str, vcon_uuid: str | None, *more: Any
    ) -> Any:
        from psycopg.types.json import Jsonb

        arguments = [Jsonb(a) if isinstance(a, Mapping | list) else a for a in (argument, *more)]
        with database_errors(operation, vcon_uuid):
            self._ensure_open()
            with self._pool.connection() as conn:
                row = conn.execute(self._sql[name], arguments).fetchone()
        return None if row is None else row[0]

    def _ensure_open(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True

    def save(
        self, document: Mapping[str, Any], vcon_uuid: str, tenant: Tenant | None = None
    ) -> int:
        if tenant is None:
            return int(self._call("save", document, "save", vcon_uuid))
        return int(self._call("save_tenant", document, "save", vcon_uuid, tenant.as_json()))

    def save_many(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None = None,
    ) -> dict[str, int]:
        if tenants is None:
            result = self._call("save_many", list(documents), "save_many", None)
        else:
            stamps = [tenant.as_json() for tenant in tenants]
            result = self._call("save_many_tenants", list(documents), "save_many", None, stamps)
        return {uuid: int(version) for uuid, version in (result or {}).items()}

    def load(self, vcon_uuid: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call("load", vcon_uuid, "load", vcon_uuid)
        return result

    def load_many(self, vcon_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = (
            self._call("load_many", list(vcon_uuids), "load_many", None) or {}
        )
        return result

    def fetch(self, vcon_uuid: str) -> Versioned | None:
        entry = self._call("fetch", vcon_uuid, "load", vcon_uuid)
        return None if entry is None else versioned(entry)

    def fetch_many(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        entries = self._call("fetch_many", list(vcon_uuids), "load_many", None) or {}
        return {uuid: versioned(entry) for uuid, entry in entries.items()}

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("search", dict(query), "search", None)
        return result

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("saved_between", dict(query), "requeue", None)
        return result

    def exists(self, vcon_uuid: str) -> bool:
        return bool(self._call("exists", vcon_uuid, "exists", vcon_uuid))

    def delete(self, vcon_uuid: str) -> int:
        return int(self._call("delete", vcon_uuid, "delete", vcon_uuid) or 0)

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False
