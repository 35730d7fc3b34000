"""The client-side deadline of a call on the direct transport.

``statement_timeout`` and ``lock_timeout`` (set inside each transaction) bound what a
working server does. They cannot bound a server, pooler or network that stops
answering: psycopg then waits on its socket forever. :class:`Watchdog` does: one thread
per process holds the deadlines of the calls in flight and, when one passes, cuts that
call in a short-lived thread of its own:

1. a cancel request (psycopg's ``cancel_safe``, itself bounded by :data:`CANCEL_WAIT`);
2. if the call has not ended :data:`CANCEL_GRACE` later (or the cancel could not be
   sent), the connection's socket is shut down, which wakes the blocked psycopg call
   with an error.

A connection whose call was cut is closed once the call has ended, so the pool never
hands it out again (a late cancel must not hit the next call on it). The common path
costs a heap push and a flag: no thread per call.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["CANCEL_GRACE", "CANCEL_WAIT", "Watch", "Watchdog"]

#: How long a cancel request may take to reach the server.
CANCEL_WAIT: Final = 0.5
#: How long after a delivered cancel the call may take to end before its socket is cut.
CANCEL_GRACE: Final = 0.25
#: The longest a finished call waits for a cut already under way (then it closes the
#: connection anyway).
_CUT_WAIT: Final = CANCEL_WAIT + CANCEL_GRACE + 0.5


class Watch:
    """One call being watched: ``how`` is ``None`` while nothing was done to it, then
    ``"cancelled"`` (a cancel request was sent) or ``"cut"`` (its socket was shut down)."""

    __slots__ = ("_connection", "_cut_over", "_ended", "_lock", "at", "how")

    def __init__(self, connection: Any, at: float) -> None:
        self._connection = connection
        self.at = at
        self.how: str | None = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._cut_over = threading.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def cut(self) -> None:
        """Cancel the call, then shut its socket down if it goes on (watchdog side)."""
        try:
            with self._lock:
                if self._ended.is_set():
                    return
                self.how = "cancelled"
            cancelled = False
            with contextlib.suppress(Exception):  # not sent: cut the socket at once
                self._connection.cancel_safe(timeout=CANCEL_WAIT)
                cancelled = True
            if cancelled:
                self._ended.wait(CANCEL_GRACE)
            with self._lock:
                if not self._ended.is_set():
                    self.how = "cut"
                    _shut_down(self._connection)
        finally:
            self._cut_over.set()

    def end(self) -> None:
        """The call returned or raised (caller side): stop watching it; if it was cut,
        wait for the cut to finish and close the connection (the pool discards it)."""
        with self._lock:
            self._ended.set()
            cutting = self.how is not None
        if cutting:
            self._cut_over.wait(_CUT_WAIT)
            with contextlib.suppress(Exception):
                self._connection.close()


def _shut_down(connection: Any) -> None:
    """Shut the connection's socket down (both ways) without closing its descriptor,
    which stays psycopg's: a blocked read or write returns at once."""
    with contextlib.suppress(Exception):
        fd = connection.pgconn.socket
        duplicate = socket.socket(fileno=os.dup(fd))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()


class Watchdog:
    """Cuts the calls that outlive their deadline; one thread, started on first use."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, connection: Any, seconds: float) -> Iterator[Watch]:
        """Watch the block's calls on ``connection`` for ``seconds``; yield the
        :class:`Watch` (its ``how`` says whether the deadline cut them)."""
        watch = Watch(connection, time.monotonic() + seconds)
        with self._wake:
            heapq.heappush(self._heap, (watch.at, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="conserver-supabase-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._wake.notify()
        try:
            yield watch
        finally:
            watch.end()

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
            if due is not None:
                threading.Thread(target=due.cut, name="conserver-supabase-cut", daemon=True).start()

    def _next_due(self) -> Watch | None:
        """Wait (holding the condition) until a watched call passes its deadline, and
        return it; drop the calls that ended on the way."""
        while True:
            while self._heap and self._heap[0][2].ended:
                heapq.heappop(self._heap)
            if not self._heap:
                self._wake.wait()
                continue
            at, _, watch = self._heap[0]
            now = time.monotonic()
            if at > now:
                self._wake.wait(at - now)
                continue
            heapq.heappop(self._heap)
            return watch
