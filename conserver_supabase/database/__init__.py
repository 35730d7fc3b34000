"""The seam to the database: one small interface, one implementation per transport.

Both transports call the same SQL functions (``conserver_vcon_*``, shipped in
``conserver_supabase/sql``), so they behave alike; they differ only in how the
call travels (psycopg over the PostgreSQL protocol, or supabase-py over PostgREST).
"""

from __future__ import annotations

from ..config import StorageConfig
from .base import Database

__all__ = ["Database", "open_database"]


def open_database(config: StorageConfig) -> Database:
    """Return the transport ``config`` asks for: psycopg when ``database_url`` is set,
    else PostgREST. Raises :class:`~conserver_supabase.errors.ConfigurationError`
    when neither is configured. Makes no network call."""
    config.require_database()
    if config.transport == "postgres":
        from .postgres import PostgresDatabase

        return PostgresDatabase(config)
    from .postgrest import PostgrestDatabase

    return PostgrestDatabase(config)
