"""Reads: the cache first, the database behind it, and filling the cache from what the
database answered, never over what a concurrent save wrote (the version rule of
``_redis/lua/fence.lua`` decides).

A read replica (``read_database_url`` / ``read_url``) answers the reads that may lag:
searches and the database reads behind cache misses. It must neither answer "not
found" for a vCon just saved nor put an older version in the cache, where the conserver
would process it and save it back over the newer one. So a replica's answer is written
with mode ``known``: the fence accepts it only where the cache has a version on record
that it is not older than (then it is filled), refuses it where it is older (the
primary answers instead), and where nothing is on record the answer is served but not
cached. "Not found" on the replica, and Redis unable to tell, go to the primary too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._database import Database, Versioned
from ._documents import dumps
from ._redis import Entry, RedisTier, holds_exactly
from ._telemetry import note_cache, note_subject
from ._validation import canonical_uuid

__all__ = ["Reads"]

logger = logging.getLogger("conserver_supabase.storage")

Retrying = Callable[[str, Callable[[], Any]], Any]

#: What ``lua/write.lua`` answers for a replica's answer older than what is on record.
_FENCED = -1


class Reads:
    """``get``, ``get_many``, ``exists`` and cache fills of one storage."""

    def __init__(
        self,
        database: Database,
        read_database: Database,
        redis: RedisTier,
        retrying: Retrying,
    ) -> None:
        self._database = database
        self._read_database = read_database
        self._redis = redis
        self._retrying = retrying

    def get(self, vcon_uuid: Any, *, use_cache: bool) -> dict[str, Any] | None:
        """The vCon from the cache, else the database (filling the cache), or ``None``.
        ``use_cache=False`` reads the primary and leaves the cache alone."""
        canonical = canonical_uuid(vcon_uuid)
        note_subject(canonical)
        if not use_cache:
            note_cache("bypassed")
            found = self._retrying("load", lambda: self._database.fetch([canonical]))
            versioned = found.get(canonical)
            return None if versioned is None else versioned[0]
        cached = self._redis.cached(canonical)
        if cached is not None:
            return cached
        return self.load_and_fill([canonical], operation="load", wait=False)[0].get(canonical)

    def get_many(self, vcon_uuids: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """``{uuid: vCon}`` for those that exist; the misses take one database call."""
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for vcon_uuid in dict.fromkeys(canonical_uuid(u) for u in vcon_uuids):
            cached = self._redis.cached(vcon_uuid)
            if cached is None:
                missing.append(vcon_uuid)
            else:
                found[vcon_uuid] = cached
        if missing:
            found.update(self.load_and_fill(missing, wait=False)[0])
        return found

    def exists(self, vcon_uuid: Any) -> bool:
        """Whether the database has the vCon; a vCon a save cached answers at once."""
        canonical = canonical_uuid(vcon_uuid)
        note_subject(canonical)
        if self._redis.holds_saved(canonical):
            return True
        return bool(self._retrying("exists", lambda: self._database.exists(canonical)))

    def missing_from_cache(self, vcon_uuids: Sequence[str]) -> list[str]:
        """Those of ``vcon_uuids`` the cache does not hold (for warming it)."""
        return [u for u in vcon_uuids if self._redis.cached(u) is None]

    def load_and_fill(
        self,
        missing: list[str],
        *,
        operation: str = "load_many",
        replica: bool = True,
        wait: bool = True,
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """Read ``missing`` (cache misses) from the database and fill the cache; return
        them and how many were written to the cache. ``replica=False``: the primary only.
        ``wait=False``: the primary's answers are filled without waiting for Redis (a
        read's miss: ``_redis/_fills.py``), and not counted."""
        found: dict[str, dict[str, Any]] = {}
        filled = 0
        pending = missing
        if replica and self._read_database is not self._database:
            answers = self._retrying(operation, lambda: self._read_database.fetch(missing))
            filled += self._take_known(answers, found)
            pending = [vcon_uuid for vcon_uuid in missing if vcon_uuid not in found]
        if pending:
            answers = self._retrying(operation, lambda: self._database.fetch(pending))
            for vcon_uuid in pending:
                if vcon_uuid not in answers:
                    self._redis.absent(vcon_uuid)  # repairs an entry that may be stale
                    continue
                document, version = answers[vcon_uuid]
                exact = holds_exactly(document)
                filled += self._redis.fill(
                    vcon_uuid, dumps(document), version, exact=exact, wait=wait
                )
                found[vcon_uuid] = document
        return found, filled

    def _take_known(
        self, answers: Mapping[str, Versioned], found: dict[str, dict[str, Any]]
    ) -> int:
        """Keep the replica's answers the fence does not refuse; return how many filled."""
        entries = [
            Entry(u, dumps(doc), "known", version, exact=holds_exactly(doc))
            for u, (doc, version) in answers.items()
        ]
        statuses = self._redis.fill_known(entries) if entries else []
        if statuses is None:
            return 0  # Redis cannot tell which versions it knows: the primary answers
        filled = 0
        for entry, status in zip(entries, statuses, strict=True):
            if status == _FENCED:
                logger.debug(
                    "vCon %s: the read replica's version %d is older than the cache knows: "
                    "reading the primary",
                    entry.vcon_uuid,
                    entry.version,
                )
                continue
            filled += status == 1
            found[entry.vcon_uuid] = answers[entry.vcon_uuid][0]
        return filled
