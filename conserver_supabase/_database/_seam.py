"""The seam to the database: what the storage policy calls, and nothing more.

Every method is one round trip to one SQL function (see :mod:`._functions`) and raises
only :class:`~conserver_supabase.DatabaseError` subclasses (or
:class:`~conserver_supabase.InvalidVconError` when the SQL guards refuse a document).
:class:`conserver_supabase.testing.MemoryDatabase` implements it in memory and is
type-checked against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Database", "Saved", "Tenant", "Versioned", "merged_of"]

#: A vCon with the version the database stores for it (0: another writer made it and
#: it has no version of ours).
Versioned = tuple[dict[str, Any], int]


class Saved(dict[str, int]):
    """What :meth:`Database.save` returns: ``{uuid: version}``, and in ``merged`` the
    vCons the database saved merged with another writer's changes (``{uuid: vCon as
    saved}``, docs/database.md, "Conflicts"): what the cache must hold, not the copy
    handed in."""

    def __init__(
        self,
        versions: Mapping[str, int] | None = None,
        merged: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(versions or {})
        self.merged: dict[str, dict[str, Any]] = dict(merged or {})


def merged_of(versions: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """The merged vCons of a save's result (none from a database that does not merge)."""
    return versions.merged if isinstance(versions, Saved) else {}


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
    """One round trip per method."""

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Write validated vCons (documents and rows) in one transaction; return
        ``{uuid: version}`` (a uuid given twice is saved twice, in order, and maps to
        its last version), a :class:`Saved` when some were merged with another writer's
        changes. A conflict raises :class:`~conserver_supabase.VconConflictError`
        (nothing written).

        ``tenants``: one :class:`Tenant` per document, or ``None``: every row's
        ``tenant_id`` is left as it is. Always passed, never guessed from the options.
        ``bases``: ``None``, or per document the version its copy was read at (``None``:
        not known), a hint that spares a copy read after another writer's change a
        merge (``conserver_vcon_save``'s ``p_base``). ``texts``: ``None``, or per
        document the JSON text it is saved as, which :meth:`fetch` returns parsed as it
        is (key order, numbers); without it, what the database's own rendition gives."""
        ...

    def replay(
        self,
        document: Mapping[str, Any],
        tenant: Tenant | None,
        base: Mapping[str, Any],
        text: str | None = None,
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        """Save one journaled vCon again only if the database acknowledged nothing newer
        since the failed save (``base``: ``{"version": n}``, ``{"at": epoch}`` or ``{}``,
        see ``conserver_vcon_replay``); return ``(version, None, merged)`` when it saved
        (``merged``: the vCon as saved when it was merged with another writer's changes,
        else ``None``), ``(0, why, None)`` when it wrote nothing (superseded).
        ``tenant`` and ``text`` as for :meth:`save`."""
        ...

    def fetch(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        """Return ``{uuid: (vCon, version)}`` for those of ``vcon_uuids`` that exist, each
        vCon as saved: parsed from the text it was saved as, when the database has it."""
        ...

    def exists(self, vcon_uuid: str) -> bool:
        """Return whether the vCon exists, without reading it."""
        ...

    def delete(self, vcon_uuid: str) -> int:
        """Delete the vCon and its rows; return the delete's version (the vCon's last
        version + 1). When it did not exist: minus the version of its last delete, or 0."""
        ...

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``conserver_vcon_search(query)``; return its JSON result."""
        ...

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``conserver_vcon_saved_between(query)`` (a page of uuids saved in a time
        window, oldest first); return its JSON result."""
        ...

    def feed_poll(self, name: str, state: Mapping[str, Any], limit: int) -> dict[str, Any]:
        """Run ``conserver_vcon_feed_poll(name, state, limit)``: a page of the change log
        for the consumer cursor ``name`` (see :mod:`conserver_supabase._feed`); return its
        JSON result. Always the primary."""
        ...

    def close(self) -> None:
        """Release connections. The object is unusable afterwards."""
        ...
