"""Cache fills that a read does not wait for (issue 18).

A cache miss reads the database and fills the cache. Waiting for Redis to answer the
fill would add a second round trip carrying the whole document to every miss. So a
read's fill is written to a connection of its own and the read returns; Redis's answer
is read later: before the next fill is sent, and when the storage reports
(``stats()``) or closes (:meth:`DeferredFills.settle`).

Nothing about what is written changes: the fill is the same ``lua/write.lua`` call in
mode ``fill`` that a waited-for fill makes, so the version rule decides on the server,
in whatever order Redis runs it among other writers' commands (a save or a delete
that overtakes it leaves a version on record the fill cannot pass). The command is on
its way to Redis before the read returns: a command sent after the read is not sent
before it.

What changes is when its outcome is known: the ``fills`` counter and a failure's log
line come when the answer is read. A failure loses only the fill (the next read fills
again). Not used with Redis Cluster (the fill goes where the slot is: it waits), nor for
an entry that may be stale (its repair needs the answer), nor for ``warm_cache`` (which
counts what it filled).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any, Final

from .._telemetry import Telemetry
from ._cache import WRITTEN, Entry, HotTier
from ._connect import Connection, packed
from ._errors import translate
from ._guard import Guard

__all__ = ["DeferredFills"]

_CONTEXT: Final = "the vCon was read from the database"
#: Seconds after which the fills' connection is checked (PING) before it is written to:
#: a server that closes idle clients (its ``timeout``) would take the fill written to
#: a closed socket without a word, and the answer read later would be the error.
_IDLE_CHECK: Final = 5.0


def _reconnect_if_closed(connection: Any) -> None:
    """PING ``connection``; a closed one is dropped, so the fill's write connects again."""
    from redis.exceptions import ConnectionError as Closed

    try:
        connection.send_command("PING")
        connection.read_response()
    except Closed:
        connection.disconnect()


class DeferredFills:
    """Fills sent on one connection of their own, their answers read later; thread-safe."""

    def __init__(
        self, connection: Connection, cache: HotTier, guard: Guard, telemetry: Telemetry
    ) -> None:
        self._redis = connection
        self._cache = cache
        self._guard = guard
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._connection: Any = None
        self._owner = 0  # the process that took the connection (a fork takes its own)
        self._pending: collections.deque[Entry] = collections.deque()
        self._last_sent = 0.0  # time.monotonic() of the last fill sent

    def send(self, entry: Entry) -> None:
        """Send the fill of ``entry`` and return without its answer. A Redis failure is
        what a failed fill is (logged, counted; the read goes on)."""
        script = self._cache.write_script
        command = ("EVALSHA", script.sha, 3, *self._cache.keys_and_args(entry))
        self._guard.call(
            "cache fill", entry.vcon_uuid, lambda: self._send(entry, command),
            fallback=None, context=_CONTEXT,
        )  # fmt: skip

    def settle(self) -> None:
        """Read the answers of every fill sent (the ``fills`` counter, failures logged)."""
        if self._pending:
            self._guard.call("cache fill", None, self._settle, fallback=None, context=_CONTEXT)

    def close(self) -> None:
        """Settle, then give the connection back to the pool."""
        self.settle()
        with self._lock:
            if self._connection is not None and self._owner == os.getpid():
                self._redis.client.connection_pool.release(self._connection)
            self._connection = None

    def _send(self, entry: Entry, command: tuple[Any, ...]) -> None:
        with self._lock:
            connection = self._connection_locked()
            self._settle_locked(connection)
            if time.monotonic() - self._last_sent > _IDLE_CHECK:
                _reconnect_if_closed(connection)
            try:
                connection.send_packed_command([packed([command])])
            except BaseException:
                connection.disconnect()
                raise
            self._pending.append(entry)
            self._last_sent = time.monotonic()

    def _settle(self) -> None:
        with self._lock:
            if self._pending:
                self._settle_locked(self._connection_locked())

    def _connection_locked(self) -> Any:
        if self._connection is None or self._owner != os.getpid():
            self._pending.clear()  # a fork's copy: the parent reads those answers
            connection = self._redis.dedicated()
            self._connection, self._owner = connection, os.getpid()
            # Loaded now, so that the first fill is not a NOSCRIPT answered later (a
            # Redis restarted since: NOSCRIPT, filled again, waiting, at the settle).
            connection.send_command("SCRIPT", "LOAD", self._cache.write_script.script)
            connection.read_response()
        return self._connection

    def _settle_locked(self, connection: Any) -> None:
        from redis.exceptions import NoScriptError, ResponseError

        while self._pending:
            try:
                reply: Any = connection.read_response()
            except ResponseError as refused:
                reply = refused
            except BaseException:
                connection.disconnect()  # the answers left are lost with it: fills only
                self._pending.clear()
                raise
            entry = self._pending.popleft()
            if isinstance(reply, NoScriptError):  # a restarted Redis: load it, fill again
                reply = self._cache.write(entry, fallback=None, context=_CONTEXT)
            elif isinstance(reply, ResponseError):
                failure = translate(reply, "cache fill", entry.vcon_uuid, self._redis.location)
                self._guard.failed(failure, _CONTEXT)
                continue
            if reply == WRITTEN:
                self._telemetry.event("fills")
