"""The hot tier's calls, one Redis call each, for tests that drive it directly: a thin
adapter over :class:`conserver_supabase._redis.RedisTier`'s parts (every call still
goes through the guard; errors are raised, never swallowed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conserver_supabase import StorageConfig
from conserver_supabase._redis import Entry, RedisTier, WriteMode
from conserver_supabase._redis._journal import JournalEntry
from conserver_supabase._telemetry import Telemetry


class Cache:
    """``RedisTier`` parts for ``config`` (a redis-py client of its own, or ``client``)."""

    def __init__(self, config: StorageConfig, client: Any = None) -> None:
        self.tier = RedisTier(config, Telemetry(lambda: "closed"), client=client)
        self.hot = self.tier._cache
        self.client = self.tier._connection.client
        self.cluster = self.tier._connection.cluster
        self.location = self.tier.location

    @classmethod
    def from_options(cls, options: Mapping[str, Any], client: Any = None) -> Cache:
        return cls(StorageConfig.from_options(options), client)

    @property
    def pushes_in_write(self) -> bool:
        return self.hot.pushes_in_write

    def key(self, vcon_uuid: str) -> str:
        return self.hot.key(vcon_uuid)

    def version_key(self, vcon_uuid: str) -> str:
        return self.hot.version_key(vcon_uuid)

    def write(
        self,
        vcon_uuid: str,
        document: str,
        *,
        mode: WriteMode,
        version: int = 0,
        lists: Sequence[str] = (),
        read_version: int = 0,
    ) -> bool:
        """Whether the document was written (the fence may refuse it)."""
        entry = Entry(vcon_uuid, document, mode, version, read_version)
        return self.hot.write(entry, lists) == 1

    def read(self, key: str, vcon_uuid: str) -> Any:
        return self.hot.read(key, vcon_uuid)

    def read_versioned(self, vcon_uuid: str) -> tuple[str, int]:
        """(the exact text, the version on record) of the vCon's key, as the save hook
        reads its working copy."""
        _, text, version = self.hot.read_versioned(self.key(vcon_uuid), vcon_uuid)
        return text, version

    def recorded(self, vcon_uuid: str) -> int:
        """What the vCon's version key holds (0: nothing)."""
        return int(self.client.get(self.version_key(vcon_uuid)) or 0)

    def push(self, vcon_uuid: str, lists: Sequence[str]) -> dict[str, str]:
        return self.tier._chains.push([vcon_uuid], lists)

    def delete(self, vcon_uuid: str, version: int = 0) -> bool:
        return self.hot.delete(vcon_uuid, version)

    def holds_saved(self, vcon_uuid: str) -> bool:
        return self.hot.holds_saved(vcon_uuid)

    def has_json_module(self) -> bool:
        return self.hot.has_json_module()

    def journal(self, journal_list: str, entries: Sequence[JournalEntry]) -> None:
        assert journal_list == self.tier.journal_name
        self.tier.journal(entries)

    def close(self) -> None:
        self.tier.close()
