"""Supabase/PostgreSQL storage with a Redis hot tier for the vCon conserver.

Reference it from a conserver's config.yml::

    storages:
      supabase:
        module: conserver_supabase
        options:
          url: ${SUPABASE_URL}
          key: ${SUPABASE_SERVICE_ROLE_KEY}

The conserver calls :func:`save`, :func:`get` and :func:`delete`; custom chain
links use :class:`SupabaseStorage` (``SupabaseStorage.for_options(opts)`` shares one
instance per configuration, as these functions do).

Importing this package has no side effects: it configures no logging, opens no
connection and does not import the ``vcon`` library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._config import DEFAULT_OPTIONS as _DEFAULT_OPTIONS
from ._config import StorageConfig
from ._errors import (
    BulkSaveError,
    CacheError,
    ChainPushError,
    ConfigurationError,
    ConserverSupabaseError,
    DatabaseError,
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    SearchError,
    VconConflictError,
    VconNotFoundError,
)
from ._redis import CacheUsage
from ._search import SearchPage
from ._storage import SupabaseStorage
from ._validation import validate_vcon
from ._version import __version__
from ._writes import ReplayReport

if _TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any
    from uuid import UUID

__all__ = [
    "BulkSaveError",
    "CacheError",
    "CacheUsage",
    "ChainPushError",
    "ConfigurationError",
    "ConserverSupabaseError",
    "DatabaseError",
    "DatabaseRejectedError",
    "DatabaseUnavailableError",
    "InvalidVconError",
    "ReplayReport",
    "SearchError",
    "SearchPage",
    "StorageConfig",
    "SupabaseStorage",
    "VconConflictError",
    "VconNotFoundError",
    "__version__",
    "default_options",
    "delete",
    "get",
    "save",
    "search",
    "validate_vcon",
]

#: Read by the conserver. It may hand this very object back as ``opts``; nothing in
#: this package ever modifies it.
default_options: dict[str, Any] = {
    name: (list(value) if isinstance(value, list) else value)
    for name, value in _DEFAULT_OPTIONS.items()
}


def save(vcon_uuid: str | UUID, opts: Mapping[str, Any] | None = None) -> None:
    """Save the vCon the conserver holds in Redis at ``vcon:{vcon_uuid}``.

    Validates it, commits it to the database, refreshes the cache TTL and pushes
    the uuid onto the configured chain lists. Raises on any failure (the conserver
    logs it): :class:`InvalidVconError`, :class:`VconNotFoundError` (no working
    copy), :class:`DatabaseError`, :class:`ChainPushError`, :class:`CacheError`.
    """
    SupabaseStorage.for_options(opts).save_working_copy(vcon_uuid)


def get(vcon_uuid: str | UUID, opts: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Return the vCon (Redis first, then the database), or ``None`` when it does not exist."""
    found: dict[str, Any] | None = SupabaseStorage.for_options(opts).get_vcon(vcon_uuid)
    return found


def delete(vcon_uuid: str | UUID, opts: Mapping[str, Any] | None = None) -> bool:
    """Delete the vCon from the database, then from Redis; return whether it existed."""
    return SupabaseStorage.for_options(opts).delete_vcon(vcon_uuid)


def search(
    filters: Mapping[str, Any] | None = None,
    opts: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> SearchPage:
    """Search vCons in the database; see :meth:`SupabaseStorage.search`.

    ``kwargs`` holds more filters and ``limit``, ``cursor``, ``include_vcons``.
    """
    return SupabaseStorage.for_options(opts).search(filters, **kwargs)
