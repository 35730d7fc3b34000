"""Reading every key that matches a pattern, for ``backfill --redis-pattern``: one SCAN
page at a time, each key's vCon (RedisJSON or a JSON string), with a position to resume
after; on Redis Cluster each primary in turn, starting over when the slot layout
changes."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from .._errors import CacheError
from ._connect import Connection
from ._guard import Guard

__all__ = ["KeyScan", "ScannedKey"]


class ScannedKey(NamedTuple):
    """One key read by :class:`KeyScan`."""

    key: str
    text: str | None  #: the vCon as JSON text, or None when it could not be read
    error: str | None  #: why it could not be read
    position: Any  #: where to resume after this key, or None (not a safe place)


#: How many times a Redis Cluster backfill starts its scan over because the slot layout
#: changed under it before it gives up.
_LAYOUT_CHANGES_TOLERATED: Final = 10


class KeyScan:
    """Every key matching a pattern (``SCAN``), a vCon per key (RedisJSON or a JSON
    string); resumes at the SCAN cursor after the last page done. On Redis Cluster each
    primary is scanned in turn (by name) and the position is ``[layout, primary, cursor]``."""

    def __init__(self, connection: Connection, guard: Guard, pattern: str, batch: int) -> None:
        self._client = connection.client
        self._cluster = connection.cluster
        self._guard = guard
        self.pattern = pattern
        self._batch = batch

    def _call[R](self, command: Callable[[], R]) -> R:
        return self._guard.call("backfill read", None, command)

    def items(self, resume: Any) -> Iterator[ScannedKey]:
        """Yield ``(key, text, error, position)`` for each key after ``resume``."""
        if self._cluster:
            yield from self._cluster_items(resume)
            return
        cursor = int(resume or 0)
        while True:
            scan = functools.partial(
                self._client.scan, cursor, match=self.pattern, count=self._batch
            )
            cursor, keys = self._call(scan)
            names = [k.decode() if isinstance(k, bytes) else k for k in keys]
            for index, key in enumerate(names):
                last = index == len(names) - 1
                position = (cursor if cursor else "end") if last else None
                yield self._read(key, position)
            if not cursor:
                return

    def _cluster_items(self, resume: Any) -> Iterator[ScannedKey]:
        """A SCAN cursor belongs to one node, and a key is found only on the primary
        that serves its slot when that primary is scanned. So the position records the
        slot layout too (``[layout, primary, cursor]``), and a layout that changed, since
        the checkpoint or during the scan (a failover, a resharding), makes the scan
        start over from the first primary: saving a vCon twice is harmless, missing one
        is not. The last page of the last primary has no position: a run stopped there
        reads that page again."""
        if resume == "end":  # written by an earlier version when it had finished
            return
        for _attempt in range(_LAYOUT_CHANGES_TOLERATED + 1):
            layout = self._layout()
            nodes = sorted(node.name for node in self._call(self._client.get_primaries))
            index, cursor = 0, 0
            if (
                isinstance(resume, list)
                and len(resume) == 3
                and resume[0] == layout
                and resume[1] in nodes
            ):
                index, cursor = nodes.index(resume[1]), int(resume[2])
            stable = True
            for number in range(index, len(nodes)):
                yield from self._scan_primary(layout, nodes, number, cursor)
                cursor = 0
                if self._layout() != layout:
                    stable = False
                    break
            if stable:
                return
            resume = None
        raise CacheError(
            f"the Redis Cluster's slot layout changed {_LAYOUT_CHANGES_TOLERATED + 1} times "
            "while the backfill scanned it; run it again once the cluster is stable "
            "(vCons already saved are skipped by the checkpoint or saved again, harmlessly)",
            operation="backfill read",
        )

    def _scan_primary(
        self, layout: str, nodes: list[str], number: int, cursor: int
    ) -> Iterator[ScannedKey]:
        name = nodes[number]
        node = self._client.get_node(node_name=name)
        while True:
            scan = functools.partial(
                self._client.scan, cursor, match=self.pattern, count=self._batch, target_nodes=node
            )
            cursors, keys = self._call(scan)
            cursor = int(cursors[name])
            names = [k.decode() if isinstance(k, bytes) else k for k in keys]
            after: Any = None
            if cursor:
                after = [layout, name, cursor]
            elif number + 1 < len(nodes):
                after = [layout, nodes[number + 1], 0]
            for position, key in enumerate(names):
                yield self._read(key, after if position == len(names) - 1 else None)
            if not cursor:
                return

    def _layout(self) -> str:
        """A digest of which primary serves which slots (``CLUSTER SLOTS``)."""
        primary = sorted(self._call(self._client.get_primaries), key=lambda n: n.name)[0]
        reply = self._call(lambda: self._client.cluster_slots(target_nodes=primary))
        if isinstance(reply, dict):  # redis-py parses it into {(start, end): {...}}
            ranges = [[a, b, list(v["primary"][:2])] for (a, b), v in reply.items()]
        else:  # the raw reply: [start, end, [host, port, id], replicas...]
            ranges = [[r[0], r[1], list(r[2][:2])] for r in reply]
        text = json.dumps(sorted(ranges), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _read(self, key: str, position: Any) -> ScannedKey:
        kind, text = self._call(lambda: self._read_key(key))
        if kind not in ("ReJSON-RL", "string"):
            return ScannedKey(key, None, f"holds a {kind}, not a vCon", position)
        if text is None:
            return ScannedKey(key, None, "disappeared while reading", position)
        return ScannedKey(key, text, None, position)

    def _read_key(self, key: str) -> tuple[str, str | None]:
        kind = self._client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        text: Any = None
        if kind == "ReJSON-RL":
            text = self._client.execute_command("JSON.GET", key)
        elif kind == "string":
            text = self._client.get(key)
        return kind, text.decode() if isinstance(text, bytes) else text
