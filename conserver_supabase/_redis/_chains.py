"""Chain lists: RPUSH a vCon's uuid onto the lists a conserver chain reads.

On one Redis the save's push travels in the cache write's script (all or nothing, see
:mod:`._cache`); these are the pushes that go on their own: with Redis Cluster (the
lists are in other hash slots), to tell a broken list from a broken cache key, and for
``requeue``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import CacheError
from ._connect import Connection
from ._guard import Guard

__all__ = ["ChainLists"]


class ChainLists:
    """Pushes onto chain lists, through the guard."""

    def __init__(self, connection: Connection, guard: Guard) -> None:
        self._redis = connection
        self._guard = guard

    def push(self, vcon_uuids: Sequence[str], lists: Sequence[str]) -> dict[str, str]:
        """RPUSH the uuids (in order, one command per list) onto each list separately;
        return ``{list: reason}`` for the lists that did not get them (never raises)."""
        if not lists or not vcon_uuids:
            return {}
        subject = vcon_uuids[0] if len(vcon_uuids) == 1 else None
        commands = [("RPUSH", name, *vcon_uuids) for name in lists]
        try:
            replies = self._guard.call(
                "chain push", subject, lambda: self._redis.pipelined(commands)
            )
        except CacheError as exc:
            return dict.fromkeys(lists, str(exc))
        return {
            name: str(reply)
            for name, reply in zip(lists, replies, strict=True)
            if isinstance(reply, Exception)
        }

    def append(self, name: str, vcon_uuids: Sequence[str], operation: str = "requeue") -> None:
        """RPUSH the uuids onto one list; raises :class:`CacheError`."""
        self._guard.call(operation, None, lambda: self._redis.client.rpush(name, *vcon_uuids))

    def kinds(self, names: Sequence[str]) -> list[tuple[str, str, int]]:
        """``(name, Redis type, length)`` of each list (``none`` when absent), in one
        round trip; raises :class:`CacheError`."""

        def ask() -> list[object]:
            pipe = self._redis.client.pipeline(transaction=False)
            for name in names:
                pipe.type(name)
                pipe.llen(name)
            return list(pipe.execute(raise_on_error=False))

        replies = self._guard.call("chain list check", None, ask)
        found = []
        for index, name in enumerate(names):
            kind, length = replies[2 * index], replies[2 * index + 1]
            text = kind.decode() if isinstance(kind, bytes) else str(kind)
            found.append((name, text, int(length) if isinstance(length, int) else 0))
        return found
