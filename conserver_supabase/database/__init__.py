"""The seam to the database: one small interface, one implementation per transport.

Both transports call the same SQL functions (``conserver_vcon_*``, shipped in
``conserver_supabase/sql``), so they behave alike; they differ only in how the
call travels (psycopg over the PostgreSQL protocol, or supabase-py over PostgREST).
A read replica is a second instance of the same transport; which call goes where is
decided in :mod:`conserver_supabase.storage`.
"""

from __future__ import annotations

from ..config import StorageConfig
from ..errors import ConfigurationError
from .base import Database

__all__ = ["Database", "open_database"]


def open_database(config: StorageConfig, *, replica: bool = False) -> Database:
    """Return the transport ``config`` asks for: psycopg when ``database_url`` is set,
    else PostgREST. ``replica=True``: the same transport to the read replica
    (``read_database_url`` or ``read_url``), with its own pool. Raises
    :class:`~conserver_supabase.errors.ConfigurationError` when that is not
    configured. Makes no network call."""
    config.require_database()
    if replica and not config.replica:
        option = "read_database_url" if config.transport == "postgres" else "read_url"
        raise ConfigurationError(f"no read replica configured: set {option!r}", option=option)
    if config.transport == "postgres":
        from .postgres import PostgresDatabase

        return PostgresDatabase(config, replica=replica)
    from .postgrest import PostgrestDatabase

    return PostgrestDatabase(config, replica=replica)
