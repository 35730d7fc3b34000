"""The seam to the database: one small interface, one implementation per transport.

* :mod:`._seam`: :class:`Database`, what the storage policy calls;
* :mod:`._functions`: the SQL functions behind each method, in one table both
  transports share (they behave alike; they differ only in how a call travels);
* :mod:`._postgres` (psycopg over the PostgreSQL protocol) and :mod:`._postgrest`
  (supabase-py over PostgREST);
* :mod:`._errors`: where the drivers' exceptions become ours (transient or rejected).

A read replica is a second instance of the same transport; which call goes where is
decided by the storage policy.
"""

from __future__ import annotations

from .._config import StorageConfig
from .._errors import ConfigurationError
from ._seam import Database, Saved, Tenant, Versioned, merged_of

__all__ = ["Database", "Saved", "Tenant", "Versioned", "merged_of", "open_database"]


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
        from ._postgres import PostgresDatabase

        return PostgresDatabase(config, replica=replica)
    from ._postgrest import PostgrestDatabase

    return PostgrestDatabase(config, replica=replica)
