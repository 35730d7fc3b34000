"""Supabase/PostgreSQL storage with a Redis hot tier for the vCon conserver.

Reference it from a conserver's config.yml::

    storages:
      supabase:
        module: conserver_supabase
        options:
          url: ${SUPABASE_URL}
          key: ${SUPABASE_SERVICE_ROLE_KEY}

Importing this package has no side effects: it configures no logging, opens no
connection and does not import the ``vcon`` library.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .config import DEFAULT_OPTIONS, StorageConfig
from .errors import (
    CacheError,
    ChainPushError,
    ConfigurationError,
    ConserverSupabaseError,
    DatabaseError,
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    VconNotFoundError,
)
from .validation import validate_vcon

__all__ = [
    "CacheError",
    "ChainPushError",
    "ConfigurationError",
    "ConserverSupabaseError",
    "DatabaseError",
    "DatabaseRejectedError",
    "DatabaseUnavailableError",
    "InvalidVconError",
    "StorageConfig",
    "VconNotFoundError",
    "__version__",
    "default_options",
    "validate_vcon",
]

#: Read by the conserver. It may hand this very object back as ``opts``; nothing in
#: this package ever modifies it.
default_options: dict[str, Any] = {
    name: (list(value) if isinstance(value, list) else value)
    for name, value in DEFAULT_OPTIONS.items()
}
