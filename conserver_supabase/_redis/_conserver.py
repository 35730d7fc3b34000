"""What the conserver itself does to Redis, for the demo and for tests: it keeps the
vCon it processes at ``vcon:{uuid}`` (``VconRedis``: ``JSON.SET``, a string where
RedisJSON is missing), evicts it, and its chains read lists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._cache import CONSERVER_KEY_PREFIX
from ._connect import Connection
from ._guard import Guard

__all__ = ["ConserverSide"]


class ConserverSide:
    """The conserver's own use of the storage's Redis."""

    def __init__(self, connection: Connection, guard: Guard) -> None:
        self._redis = connection
        self._guard = guard

    def _call(self, command: Any) -> Any:
        return self._guard.call("conserver", None, command)

    def put(self, document: Mapping[str, Any]) -> None:
        """Store a vCon as the conserver's working copy (JSON.SET, else SET)."""
        key = f"{CONSERVER_KEY_PREFIX}{document['uuid']}"
        client = self._redis.client

        def put() -> None:
            try:
                client.json().set(key, "$", dict(document))
            except Exception:  # no RedisJSON: a JSON string is what the storage reads then
                client.set(key, json.dumps(document))

        self._call(put)

    def evict(self, vcon_uuid: str) -> None:
        """Remove the working copy (as Redis eviction or the TTL would)."""
        self._call(lambda: self._redis.client.delete(f"{CONSERVER_KEY_PREFIX}{vcon_uuid}"))

    def kind(self, vcon_uuid: str) -> str:
        """The Redis type of ``vcon:{uuid}`` (``ReJSON-RL``, ``string``, ``none``)."""
        kind = self._call(lambda: self._redis.client.type(f"{CONSERVER_KEY_PREFIX}{vcon_uuid}"))
        return kind.decode() if isinstance(kind, bytes) else str(kind)

    def length(self, list_name: str) -> int:
        """How many uuids wait on a chain list."""
        return int(self._call(lambda: self._redis.client.llen(list_name)))

    def drop(self, list_name: str) -> None:
        """Remove a chain list."""
        self._call(lambda: self._redis.client.delete(list_name))
