"""The failed-save journal and its dead letters, in Redis.

Keys, for the journal list ``J`` (option ``journal_list``):

* ``J``: the uuids of the saves that failed for good, oldest first;
* ``J:vcon:<uuid>``: the document of a save handed in by a caller (a save of the
  conserver's working copy keeps that key instead: ``vcon:<uuid>``);
* ``J:meta:<uuid>``: what the failed save was based on (JSON: ``base``, the version the
  cache knew, or ``null``; ``at``, when the save started; ``tenant``, its tenant guard;
  ``working_copy``), which fences the replay (``conserver_vcon_replay``);
* ``J:dead`` and ``J:dead:<uuid>``: the dead letters, entries the database refused for
  their data (JSON: ``reason``, ``code``, ``at``, ``journaled_at``, ``document``).

Every key that holds a vCon (documents, dead letters, the working copies the journal
keeps) expires after the retention (``journal_retention_days``); a list entry whose keys
expired is dropped by the replay and by ``journal purge``.

Every call is made even while the circuit breaker skips Redis (``always``): a failed
save must always be tried. Replay policy (what to save again, and how) lives in the
storage; this module keeps, hands back and buries entries.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._errors import CacheError
from ._connect import Connection
from ._guard import Guard

__all__ = ["DeadLetter", "Journal", "JournalEntry", "Journaled", "document_key", "meta_key"]


@dataclasses.dataclass(frozen=True, slots=True)
class JournalEntry:
    """A failed save to keep: the document (JSON text), or the key of the working copy
    that holds it; the tenant guard it had (``Tenant.as_json()``, or ``None``: left as
    is); when it started (epoch seconds)."""

    vcon_uuid: str
    working_copy: str | None
    document: str | None
    tenant: dict[str, Any] | None = None
    at: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Journaled:
    """One entry as the journal holds it. ``meta`` is ``None`` for an entry journaled
    before 0.2 (no base, no time, no tenant guard recorded)."""

    vcon_uuid: str
    document: str | None
    meta: dict[str, Any] | None

    @property
    def working_copy(self) -> str | None:
        return None if self.meta is None else self.meta.get("working_copy")


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter (the envelope without its document, unless asked)."""

    vcon_uuid: str
    reason: str
    code: str | None
    at: float
    journaled_at: float | None
    size: int
    document: str | None = None


def document_key(journal_list: str, vcon_uuid: str) -> str:
    """Where the journal keeps a document that had no working copy in Redis."""
    return f"{journal_list}:vcon:{vcon_uuid}"


def meta_key(journal_list: str, vcon_uuid: str) -> str:
    """Where the journal keeps what a failed save was based on."""
    return f"{journal_list}:meta:{vcon_uuid}"


class Journal:
    """One journal list (``journal_list``), its documents and its dead letters."""

    def __init__(
        self, connection: Connection, guard: Guard, name: str, retention: int, most: int = 0
    ) -> None:
        self._redis = connection
        self._guard = guard
        self.name = name
        #: Seconds a journaled vCon, a dead letter or a kept working copy is kept.
        self.retention = retention
        #: The most entries the list may hold (``journal_max_entries``; 0: no bound).
        self.most = most

    @property
    def dead_list(self) -> str:
        return f"{self.name}:dead"

    def _dead_key(self, vcon_uuid: str) -> str:
        return f"{self.name}:dead:{vcon_uuid}"

    # --- keeping ------------------------------------------------------------------------

    def keep(self, entries: Sequence[JournalEntry], bases: dict[str, int | None]) -> None:
        """Put failed saves on the journal, in one transaction; raises CacheError.

        ``bases``: per uuid, the version the cache knew (``None``: unknown). A working
        copy's TTL becomes the retention (Redis must not expire it before the replay);
        a document handed in by a caller is kept at :func:`document_key`.

        With Redis Cluster these keys are in different slots, so there is no
        transaction: per entry the document and its record (or the working copy's
        EXPIRE) come first, the list entry last. A failure in between leaves keys no
        list entry points to (they expire with the retention), never a list entry
        without its document.
        """
        subject = entries[0].vcon_uuid if len(entries) == 1 else None
        if self.most:
            held = int(
                self._guard.call(
                    "journal", subject, lambda: self._redis.client.llen(self.name), always=True
                )
            )
            if held + len(entries) > self.most:
                raise CacheError(
                    f"the journal is full ({held} entries; journal_max_entries {self.most}): "
                    "not journaled; run `conserver-supabase replay` once the database is "
                    "back, or `journal purge`, or raise journal_max_entries",
                    operation="journal",
                    vcon_uuid=subject,
                )
        commands: list[tuple[Any, ...]] = []
        for entry in entries:
            meta = {
                "base": bases.get(entry.vcon_uuid),
                "at": entry.at,
                "tenant": entry.tenant,
                "working_copy": entry.working_copy,
            }
            if entry.document is not None:
                key = document_key(self.name, entry.vcon_uuid)
                commands.append(("SET", key, entry.document, "EX", self.retention))
            if entry.working_copy is not None:
                commands.append(("EXPIRE", entry.working_copy, self.retention))
            meta_text = json.dumps(meta, separators=(",", ":"))
            commands.append(("SET", meta_key(self.name, entry.vcon_uuid), meta_text,
                             "EX", self.retention))  # fmt: skip
            commands.append(("RPUSH", self.name, entry.vcon_uuid))
        self._guard.call("journal", subject, lambda: self._run(commands), always=True)

    def _run(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The commands in one MULTI/EXEC; with Redis Cluster one after the other."""
        client = self._redis.client
        if self._redis.cluster:
            return [client.execute_command(*command) for command in commands]
        pipe = client.pipeline(transaction=True)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())

    # --- reading ------------------------------------------------------------------------

    def uuids(self, dead: bool = False) -> list[str]:
        """The journaled (or dead-lettered) uuids, oldest first."""
        name = self.dead_list if dead else self.name
        entries = self._guard.call(
            "replay", None, lambda: self._redis.client.lrange(name, 0, -1), always=True
        )
        return [_text(u) for u in entries]

    def entry(self, vcon_uuid: str) -> Journaled:
        """The entry of ``vcon_uuid`` (its document ``None``: a working copy was kept, or
        it expired)."""
        keys = [document_key(self.name, vcon_uuid), meta_key(self.name, vcon_uuid)]
        document, meta = self._guard.call("replay", vcon_uuid, lambda: self._get(keys), always=True)
        return Journaled(vcon_uuid, document, None if meta is None else json.loads(meta))

    def _get(self, keys: Sequence[str]) -> list[str | None]:
        replies = Connection.checked(self._redis.pipelined([("GET", key) for key in keys]))
        return [None if reply is None else _text(reply) for reply in replies]

    def sizes(self, vcon_uuids: Sequence[str]) -> Iterator[tuple[Journaled, int]]:
        """Each entry with its document's size in bytes (a kept working copy: 0), in
        pages; for ``journal list``."""
        for start in range(0, len(vcon_uuids), 200):
            page = vcon_uuids[start : start + 200]
            commands: list[tuple[Any, ...]] = []
            for vcon_uuid in page:
                commands.append(("STRLEN", document_key(self.name, vcon_uuid)))
                commands.append(("GET", meta_key(self.name, vcon_uuid)))
            ask = lambda c=commands: Connection.checked(self._redis.pipelined(c))  # noqa: E731
            replies = self._guard.call("journal list", None, ask, always=True)
            for vcon_uuid, size, meta in zip(page, replies[::2], replies[1::2], strict=True):
                record = None if meta is None else json.loads(_text(meta))
                yield Journaled(vcon_uuid, None, record), int(size or 0)

    def dead_letters(self, with_documents: bool = False) -> list[DeadLetter]:
        """The dead letters still kept (an expired one is left out), oldest first."""
        uuids = self.uuids(dead=True)
        commands = [("GET", self._dead_key(u)) for u in dict.fromkeys(uuids)]
        ask = lambda: Connection.checked(self._redis.pipelined(commands))  # noqa: E731
        replies = self._guard.call("journal list", None, ask, always=True) if commands else []
        letters = []
        for vcon_uuid, reply in zip(dict.fromkeys(uuids), replies, strict=True):
            if reply is None:
                continue
            envelope = json.loads(_text(reply))
            document = envelope.get("document")
            letters.append(
                DeadLetter(
                    vcon_uuid, envelope.get("reason", ""), envelope.get("code"),
                    float(envelope.get("at") or 0), envelope.get("journaled_at"),
                    len((document or "").encode()), document if with_documents else None,
                )
            )  # fmt: skip
        return letters

    # --- removing -----------------------------------------------------------------------

    def remove(self, vcon_uuid: str) -> None:
        """Take every entry of ``vcon_uuid`` off the journal, with its document and record
        (one replay saved the document they share)."""
        self._forget(vcon_uuid, "replay")

    def bury(self, entry: Journaled, document: str | None, reason: str, code: str | None) -> None:
        """Move an entry to the dead letters (with ``document``, the text the replay
        read), then take every entry of it off the journal."""
        envelope = {
            "reason": reason,
            "code": code,
            "at": time.time(),
            "journaled_at": None if entry.meta is None else entry.meta.get("at"),
            "document": document,
        }
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        commands: list[tuple[Any, ...]] = [
            ("SET", self._dead_key(entry.vcon_uuid), text, "EX", self.retention),
            ("LREM", self.dead_list, 0, entry.vcon_uuid),
            ("RPUSH", self.dead_list, entry.vcon_uuid),
        ]
        self._guard.call("replay", entry.vcon_uuid, lambda: self._run(commands), always=True)
        self._forget(entry.vcon_uuid, "replay")

    def drop(self, vcon_uuid: str, working_copy: str, ttl: int) -> bool:
        """Take every entry of a deleted vCon off the journal, with its document, record
        and dead letter, so no replay brings it back; a working copy the journal kept
        gets ``ttl`` again. Return whether there was an entry; raises CacheError. Unlike
        the rest of the journal it respects the circuit breaker (a delete during a Redis
        outage must not wait on it)."""
        client = self._redis.client

        def drop() -> bool:
            removed = self._forget_now(vcon_uuid)
            client.lrem(self.dead_list, 0, vcon_uuid)
            client.delete(self._dead_key(vcon_uuid))
            if removed and not 0 <= client.ttl(working_copy) <= ttl:  # kept by the journal
                client.expire(working_copy, ttl)
            return removed

        return bool(self._guard.call("delete", vcon_uuid, drop))

    def purge(
        self,
        older_than: float,
        *,
        dead: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Remove the entries (or dead letters) kept for at least ``older_than`` seconds,
        and those whose keys expired; return how many uuids were removed."""
        cutoff = time.time() - older_than
        uuids = list(dict.fromkeys(self.uuids(dead=dead)))
        letters = {d.vcon_uuid: d for d in self.dead_letters()} if dead else {}
        removed = 0
        for index, vcon_uuid in enumerate(uuids, start=1):
            if dead:
                letter = letters.get(vcon_uuid)
                if letter is None or letter.at <= cutoff:
                    self._unbury(vcon_uuid)
                    removed += 1
            else:
                entry = self.entry(vcon_uuid)
                at = None if entry.meta is None else entry.meta.get("at")
                if (entry.meta is None and entry.document is None) or (at or 0) <= cutoff:
                    self._forget(vcon_uuid, "journal purge")
                    removed += 1
            if progress is not None:
                progress(index, len(uuids))
        return removed

    def _unbury(self, vcon_uuid: str) -> None:
        client = self._redis.client

        def unbury() -> None:
            client.lrem(self.dead_list, 0, vcon_uuid)
            client.delete(self._dead_key(vcon_uuid))

        self._guard.call("journal purge", vcon_uuid, unbury, always=True)

    def _forget(self, vcon_uuid: str, operation: str) -> None:
        self._guard.call(operation, vcon_uuid, lambda: self._forget_now(vcon_uuid), always=True)

    def _forget_now(self, vcon_uuid: str) -> bool:
        """Every entry of ``vcon_uuid`` off the list, its document and record deleted;
        whether there was an entry."""
        client = self._redis.client
        removed = int(client.lrem(self.name, 0, vcon_uuid) or 0)
        client.delete(document_key(self.name, vcon_uuid))
        client.delete(meta_key(self.name, vcon_uuid))
        return removed > 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
