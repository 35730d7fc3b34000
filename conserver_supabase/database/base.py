"""The interface every database transport implements."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Database", "Tenant", "Versioned", "versioned"]

#: A vCon with the version the database stores for it.
Versioned = tuple[dict[str, Any], int]


def versioned(entry: Any) -> Versioned:
    """``{"version": n, "vcon": {...}}`` (what ``conserver_vcon_fetch`` returns) -> tuple."""
    return entry["vcon"], int(entry["version"])


@dataclasses.dataclass(frozen=True, slots=True)
class Tenant:
    """The tenant a save stamps on a vCon's rows (``tenant_id`` ``None``: NULL).

    ``exclusive``: refuse the save when the vCon belongs to another (non-NULL) tenant
    (a storage with a fixed ``tenant_id``). Travels next to the document, never in it.
    """

    tenant_id: str | None
    exclusive: bool = False

    def as_json(self) -> dict[str, Any]:
        """The object the SQL functions take (``{"tenant_id", "exclusive"}``)."""
        return {"tenant_id": self.tenant_id, "exclusive": self.exclusive}


@runtime_checkable
class Database(Protocol):
    """One round trip per method; every method raises only ``DatabaseError`` subclasses
    (or ``InvalidVconError`` when the SQL guards reject a document)."""

    def save(
        self, document: Mapping[str, Any], vcon_uuid: str, tenant: Tenant | None = None
    ) -> int:
        """Write one validated vCon (document + rows, one transaction); return its version.

        ``tenant`` ``None``: the rows' ``tenant_id`` is left as it is."""
        ...

    def save_many(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None = None,
    ) -> dict[str, int]:
        """Write validated vCons in one transaction; return ``{uuid: version}``.

        ``tenants``: ``None``, or one :class:`Tenant` per document."""
        ...

    def load(self, vcon_uuid: str) -> dict[str, Any] | None:
        """Return the vCon, or ``None`` when it does not exist."""
        ...

    def load_many(self, vcon_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return ``{uuid: vCon}`` for those of ``vcon_uuids`` that exist."""
        ...

    def fetch(self, vcon_uuid: str) -> Versioned | None:
        """Like :meth:`load`, with the stored version (0: created by another writer)."""
        ...

    def fetch_many(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        """Like :meth:`load_many`, with the stored versions."""
        ...

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``conserver_vcon_search(query)``; return its JSON result."""
        ...

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``conserver_vcon_saved_between(query)`` (a page of uuids saved in a time
        window, oldest first); return its JSON result."""
        ...

    def exists(self, vcon_uuid: str) -> bool:
        """Return whether the vCon exists, without reading it."""
        ...

    def delete(self, vcon_uuid: str) -> int:
        """Delete the vCon and its rows; return the delete's version (the vCon's last
        version + 1). When it did not exist: minus the version of its last delete, or 0."""
        ...

    def close(self) -> None:
        """Release connections. The object is unusable afterwards."""
        ...
