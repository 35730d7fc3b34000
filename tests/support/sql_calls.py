"""One SQL function per call, for tests of the SQL functions through a real transport:
an adapter over a :class:`~conserver_supabase.testing.Database` transport that keeps the
shape of each function (one document, one uuid) where the seam takes batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conserver_supabase._database import Tenant, Versioned
from conserver_supabase._database._functions import Function, Transport

_LOAD = Function("conserver_vcon_load", ("p_uuid",), "load")
_LOAD_MANY = Function("conserver_vcon_load_many", ("p_uuids",), "load_many")


class SqlCalls:
    """``save``/``load``/``fetch`` of one vCon, ``save_many``/``load_many``/``fetch_many``
    of several, over ``transport`` (each one request)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def save(
        self, document: Mapping[str, Any], vcon_uuid: str, tenant: Tenant | None = None
    ) -> int:
        tenants = None if tenant is None else [tenant]
        return self.transport.save([document], tenants)[vcon_uuid.lower()]

    def save_many(self, documents: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        # Through conserver_vcon_save_many whatever the count (the seam sends one vCon
        # to conserver_vcon_save).
        from conserver_supabase._database._functions import FUNCTIONS

        result = self.transport.call(FUNCTIONS["save_many"], [list(documents), None, None], None)
        return {uuid: int(v) for uuid, v in (result or {}).items() if uuid != "merged"}

    def load(self, vcon_uuid: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.transport.call(_LOAD, [vcon_uuid], vcon_uuid)
        return result

    def load_many(self, vcon_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = (
            self.transport.call(_LOAD_MANY, [list(vcon_uuids)], None) or {}
        )
        return result

    def fetch(self, vcon_uuid: str) -> Versioned | None:
        return self.transport.fetch([vcon_uuid]).get(vcon_uuid)

    def fetch_many(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        return self.transport.fetch(vcon_uuids)

    def exists(self, vcon_uuid: str) -> bool:
        return self.transport.exists(vcon_uuid)

    def delete(self, vcon_uuid: str) -> int:
        return self.transport.delete(vcon_uuid)

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        return self.transport.search(query)

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        return self.transport.saved_between(query)

    def feed_poll(self, name: str, state: Mapping[str, Any], limit: int) -> dict[str, Any]:
        return self.transport.feed_poll(name, state, limit)

    def close(self) -> None:
        self.transport.close()
