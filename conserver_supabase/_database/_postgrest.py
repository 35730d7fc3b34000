"""PostgREST transport (supabase-py), the default for hosted Supabase.

Each method is exactly one ``POST {url}/rest/v1/rpc/conserver_vcon_*`` request. The
HTTP client is ours (an ``httpx.Client`` with the configured timeout) so that
supabase-py builds no client lazily and no default-path deprecation warnings fire;
the PostgREST client is created once here, before the object is shared between
threads. supabase-py retries only GET/HEAD, never these POSTs: retry policy is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._config import StorageConfig
from .._errors import ConfigurationError
from ._errors import database_errors
from ._functions import Function, Transport

__all__ = ["PostgrestDatabase"]


class PostgrestDatabase(Transport):
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

    def call(self, function: Function, arguments: Sequence[Any], vcon_uuid: str | None) -> Any:
        params = dict(zip(function.params, arguments, strict=True))
        with database_errors(function.operation, vcon_uuid):
            return self._client.rpc(function.name, params).execute().data

    def close(self) -> None:
        self._http.close()
