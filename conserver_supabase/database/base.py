"""The interface every database transport implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Database"]


@runtime_checkable
class Database(Protocol):
    """One round trip per method; every method raises only ``DatabaseError`` subclasses
    (or ``InvalidVconError`` when the SQL guards reject a document)."""

    def save(self, document: Mapping[str, Any], vcon_uuid: str) -> int:
        """Write one validated vCon (document + rows, one transaction); return its version."""
        ...

    def save_many(self, documents: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Write validated vCons in one transaction; return ``{uuid: version}``."""
        ...

    def load(self, vcon_uuid: str) -> dict[str, Any] | None:
        """Return the vCon, or ``None`` when it does not exist."""
        ...

    def load_many(self, vcon_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return ``{uuid: vCon}`` for those of ``vcon_uuids`` that exist."""
        ...

    def exists(self, vcon_uuid: str) -> bool:
        """Return whether the vCon exists, without reading it."""
        ...

    def delete(self, vcon_uuid: str) -> bool:
        """Delete the vCon and its rows; return whether it existed."""
        ...

    def close(self) -> None:
        """Release connections. The object is unusable afterwards."""
        ...
