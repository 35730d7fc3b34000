"""PostgREST transport (supabase-py), the default for hosted Supabase.

Each method is exactly one ``POST {url}/rest/v1/rpc/conserver_vcon_*`` request. The
HTTP client is ours (an ``httpx.Client`` with the configured timeout) so that
supabase-py builds no client lazily and no default-path deprecation warnings fire;
the PostgREST client is created once here, before the object is shared between
threads. supabase-py retries only GET/HEAD, never these POSTs: retry policy is ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._boundary import database_errors
from ..config import StorageConfig
from ..errors import ConfigurationError
from .base import Tenant, Versioned, versioned

__all__ = ["PostgrestDatabase"]


class PostgrestDatabase:
    """Calls the ``conserver_vcon_*`` SQL functions through PostgREST's RPC endpoint.

    ``replica=True`` calls the read replica's API (``read_url``) with the same key.
    """

    def __init__(self, config: StorageConfig, *, replica: bool = False) -> None:
        config.require_database()
        url = config.read_url if replica else config.url
        if url is None or config.key is None:
            raise ConfigurationError(
                f"the PostgREST transport needs {'read_url' if replica else 'url'!r} and 'key'",
                option=("read_url" if replica else "url") if url is None else "key",
            )
        import httpx
        from supabase import ClientOptions, create_client

        self._http = httpx.Client(timeout=httpx.Timeout(config.timeout))
        options = ClientOptions(
            schema=config.schema,
            httpx_client=self._http,
            postgrest_client_retry=False,
            auto_refresh_token=False,
            persist_session=False,
        )
        self._client = create_client(url, config.key.reveal(), options=options)
        self._client.postgrest  # noqa: B018 - build it now, not lazily in a worker thread

    def _rpc(
        self, function: str, params: dict[str, Any], operation: str, vcon_uuid: str | None
    ) -> Any:
        with database_errors(operation, vcon_uuid):
            return self._client.rpc(function, params).execute().data

    def save(
        self, document: Mapping[str, Any], vcon_uuid: str, tenant: Tenant | None = None
    ) -> int:
        params: dict[str, Any] = {"p_document": document}
        if tenant is not None:  # the overload of migration 0008
            params["p_tenant"] = tenant.as_json()
        return int(self._rpc("conserver_vcon_save", params, "save", vcon_uuid))

    def save_many(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None = None,
    ) -> dict[str, int]:
        params: dict[str, Any] = {"p_documents": list(documents)}
        if tenants is not None:
            params["p_tenants"] = [tenant.as_json() for tenant in tenants]
        result = self._rpc("conserver_vcon_save_many", params, "save_many", None)
        return {uuid: int(version) for uuid, version in (result or {}).items()}

    def load(self, vcon_uuid: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._rpc(
            "conserver_vcon_load", {"p_uuid": vcon_uuid}, "load", vcon_uuid
        )
        return result

    def load_many(self, vcon_uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = (
            self._rpc("conserver_vcon_load_many", {"p_uuids": list(vcon_uuids)}, "load_many", None)
            or {}
        )
        return result

    def fetch(self, vcon_uuid: str) -> Versioned | None:
        entry = self._rpc("conserver_vcon_fetch", {"p_uuid": vcon_uuid}, "load", vcon_uuid)
        return None if entry is None else versioned(entry)

    def fetch_many(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        entries = (
            self._rpc("conserver_vcon_fetch_many", {"p_uuids": list(vcon_uuids)}, "load_many", None)
            or {}
        )
        return {uuid: versioned(entry) for uuid, entry in entries.items()}

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._rpc(
            "conserver_vcon_saved_between", {"p_query": dict(query)}, "requeue", None
        )
        return result

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._rpc(
            "conserver_vcon_search", {"p_query": dict(query)}, "search", None
        )
        return result

    def exists(self, vcon_uuid: str) -> bool:
        return bool(self._rpc("conserver_vcon_exists", {"p_uuid": vcon_uuid}, "exists", vcon_uuid))

    def delete(self, vcon_uuid: str) -> int:
        return int(
            self._rpc("conserver_vcon_remove", {"p_uuid": vcon_uuid}, "delete", vcon_uuid) or 0
        )

    def close(self) -> None:
        self._http.close()
