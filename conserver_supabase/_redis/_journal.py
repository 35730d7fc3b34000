"""The failed-save journal: a Redis list of uuids whose save failed for good, with the
document of each (or the conserver's working copy, kept without a TTL).

Every call is made even while the circuit breaker skips Redis (``always``): a failed
save must always be tried. Replay policy (what to save again, and how) lives in the
storage; this module only keeps and hands back entries.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._connect import Connection
from ._guard import Guard

__all__ = ["Journal", "JournalEntry", "document_key"]

#: ``(uuid, working copy key or None, document JSON or None)``.
JournalEntry = tuple[str, str | None, str | None]


def document_key(journal_list: str, vcon_uuid: str) -> str:
    """Where the journal keeps a document that had no working copy in Redis."""
    return f"{journal_list}:vcon:{vcon_uuid}"


class Journal:
    """One journal list (``journal_list``) and its documents."""

    def __init__(self, connection: Connection, guard: Guard, name: str) -> None:
        self._redis = connection
        self._guard = guard
        self.name = name

    def keep(self, entries: Sequence[JournalEntry]) -> None:
        """Put failed saves on the journal, in one transaction; raises CacheError.

        A working copy loses its TTL (so Redis cannot expire it before the replay); a
        document handed in by a caller is kept at :func:`document_key`.

        With Redis Cluster these keys are in different slots, so there is no
        transaction: per entry the document (or the working copy's PERSIST) comes
        first, the list entry last. A failure in between leaves a document no list
        entry points to (nothing replays it; it stays, without a TTL), never a list
        entry without its document.
        """
        subject = entries[0][0] if len(entries) == 1 else None
        self._guard.call("journal", subject, lambda: self._keep(entries), always=True)

    def _keep(self, entries: Sequence[JournalEntry]) -> None:
        client = self._redis.client
        if self._redis.cluster:
            for vcon_uuid, working_copy, document in entries:
                if document is not None:
                    client.set(document_key(self.name, vcon_uuid), document)
                if working_copy is not None:
                    client.persist(working_copy)
                client.rpush(self.name, vcon_uuid)
            return
        pipe = client.pipeline(transaction=True)
        for vcon_uuid, working_copy, document in entries:
            if document is not None:
                pipe.set(document_key(self.name, vcon_uuid), document)
            if working_copy is not None:
                pipe.persist(working_copy)
            pipe.rpush(self.name, vcon_uuid)
        pipe.execute()

    def uuids(self) -> list[str]:
        """The journaled uuids, oldest first."""
        entries = self._guard.call(
            "replay", None, lambda: self._redis.client.lrange(self.name, 0, -1), always=True
        )
        return [u.decode() if isinstance(u, bytes) else str(u) for u in entries]

    def document(self, vcon_uuid: str) -> str | None:
        """The journaled document of ``vcon_uuid`` (None: its working copy was kept)."""
        key = document_key(self.name, vcon_uuid)
        text = self._guard.call(
            "replay", vcon_uuid, lambda: self._redis.client.get(key), always=True
        )
        return text.decode() if isinstance(text, bytes) else text

    def drop(self, vcon_uuid: str, working_copy: str, ttl: int) -> bool:
        """Take every entry of a deleted vCon off the journal, with its document, so no
        replay brings it back; the working copy an entry kept without a TTL gets ``ttl``
        again. Return whether there was an entry; raises CacheError. Unlike the rest of
        the journal it respects the circuit breaker (a delete during a Redis outage must
        not wait on it)."""
        client = self._redis.client

        def drop() -> bool:
            removed = int(client.lrem(self.name, 0, vcon_uuid) or 0)
            client.delete(document_key(self.name, vcon_uuid))
            if removed and client.ttl(working_copy) == -1:  # exists, without a TTL
                client.expire(working_copy, ttl)
            return removed > 0

        return self._guard.call("delete", vcon_uuid, drop)

    def remove(self, vcon_uuid: str) -> None:
        """Take one entry of ``vcon_uuid`` off the journal, with its document."""
        client = self._redis.client

        def remove() -> None:
            client.lrem(self.name, 1, vcon_uuid)
            client.delete(document_key(self.name, vcon_uuid))

        self._guard.call("replay", vcon_uuid, remove, always=True)
