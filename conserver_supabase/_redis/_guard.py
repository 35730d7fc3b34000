"""The one wrapper every Redis call goes through: :meth:`Guard.call`.

For each call it decides, in this order and nowhere else:

1. the circuit breaker: while Redis is skipped, the call does not reach it (a
   ``CacheError`` with ``skipped`` set stands for its failure);
2. the call itself, and the translation of what redis-py raised
   (:func:`._errors.translate`);
3. the breaker's bookkeeping: a failure to reach Redis counts towards opening the
   circuit; any answer (a reply or an error reply) means Redis is reachable, ending a
   probe and closing the circuit;
4. the incident log: a WARNING at an incident's first failure, DEBUG for the next ones,
   one INFO when Redis answers again, so an outage under load writes a few lines, not
   one per call;
5. the telemetry outcome (the ``errors`` counter, the operation's cache outcome);
6. fail-open: a call that has a fallback (the cache can be done without) returns it
   when ``cache_errors`` is ``log``, or raises the error with the context when it is
   ``raise``; a call without one (the working copy, chain lists, the journal) always
   raises.

The circuit: after ``TRIP_AFTER`` consecutive failures to reach Redis, calls skip it for
``cooldown`` seconds; then one call probes it, and its outcome (whatever the call is)
closes the circuit or opens it for another cool-down. ``cooldown`` 0 turns it off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, cast

from .._errors import CacheError
from .._telemetry import Telemetry, note_cache
from ._errors import redis_errors, translate

__all__ = ["RAISE", "Breaker", "Guard", "inside_guard"]

logger = logging.getLogger("conserver_supabase.redis")

#: ``fallback`` of a call that must raise whatever ``cache_errors`` says.
RAISE: Final[Any] = object()

_guarded: ContextVar[bool] = ContextVar("conserver_supabase_guarded", default=False)


def inside_guard() -> bool:
    """Whether the running code is a command :meth:`Guard.call` runs (tests check that
    every Redis command is)."""
    return _guarded.get()


class Breaker:
    """The circuit breaker's state; thread-safe."""

    TRIP_AFTER: Final = 3

    def __init__(self, cooldown: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until = 0.0  # 0: closed
        self._probing = False
        self.cooldown = cooldown
        self.clock: Callable[[], float] = time.monotonic

    def state(self) -> str:
        """``closed`` (Redis is called), ``open`` (skipped) or ``probing``."""
        if not self._open_until:
            return "closed"
        return "probing" if self._probing else "open"

    def skip_for(self) -> float | None:
        """Seconds Redis is still skipped, or ``None`` when this call may go to Redis
        (after the cool-down the first such call is the probe)."""
        if not self._open_until:  # the common case: closed, no lock
            return None
        with self._lock:
            if not self._open_until:
                return None
            remaining = self._open_until - self.clock()
            if remaining > 0 or self._probing:
                return max(remaining, 0.0)
            self._probing = True  # this call is the probe; the others keep skipping
            return None

    def unreachable(self) -> bool:
        """Record a failure to reach Redis; return whether the circuit opened now."""
        if self.cooldown <= 0:
            return False
        with self._lock:
            self._consecutive += 1
            if not (
                self._probing or (not self._open_until and self._consecutive >= self.TRIP_AFTER)
            ):
                return False
            opened = not self._open_until
            self._open_until = self.clock() + self.cooldown
            self._probing = False
            return opened

    def reached(self) -> bool:
        """Record that Redis answered; return whether the circuit was open."""
        if not self._consecutive and not self._open_until:  # the common case: no lock
            return False
        with self._lock:
            was_open = bool(self._open_until)
            self._consecutive, self._open_until, self._probing = 0, 0.0, False
            return was_open


class Guard:
    """Runs Redis calls for one storage: breaker, translation, incident log, telemetry
    and fail-open (see the module docstring)."""

    def __init__(
        self,
        location: str,
        *,
        cooldown: float,
        fail_open: bool,
        telemetry: Telemetry,
    ) -> None:
        #: Where Redis is, for messages (no password).
        self.location = location
        self.breaker = Breaker(cooldown)
        self.fail_open = fail_open
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._failures = 0  # in the current incident

    def call[R](
        self,
        operation: str,
        vcon_uuid: str | None,
        command: Callable[[], R],
        *,
        context: str | None = None,
        fallback: Any = RAISE,
        always: bool = False,
    ) -> R:
        """Return ``command()``, or apply the rules of this module to its failure.

        ``context`` says what the storage does instead (``reading the database
        instead``), for the log line and a raised error. ``always``: call Redis even
        while the circuit is open (the journal: a failed save must always be tried).
        """
        remaining = None if always else self.breaker.skip_for()
        if remaining is not None:
            error = CacheError(
                f"{operation}{_subject(vcon_uuid)} skipped: {self.location} failed "
                f"repeatedly and is skipped for another {remaining:.1f} s",
                operation=operation,
                vcon_uuid=vcon_uuid,
                unavailable=True,
                skipped=True,
            )
        else:
            token = _guarded.set(True)
            try:
                result = command()
            except redis_errors() as exc:
                error = translate(exc, operation, vcon_uuid, self.location)
            else:
                self.reached()
                return result
            finally:
                _guarded.reset(token)
        self.failed(error, context)
        return cast(R, self.excuse(error, context, fallback))

    def excuse(self, error: CacheError, context: str | None, fallback: Any) -> Any:
        """Fail-open for a failure already recorded: return ``fallback`` when the cache
        may be done without and ``cache_errors`` is ``log``; else raise."""
        if fallback is RAISE:
            raise error
        if self.fail_open:
            return fallback
        raise CacheError(
            f"{str(error).rstrip('.')}; {context}" if context else str(error),
            operation=error.operation,
            vcon_uuid=error.vcon_uuid,
            unavailable=error.unavailable,
            skipped=error.skipped,
        ) from error

    def failed(self, error: CacheError, context: str | None = None) -> None:
        """Record a failure: breaker, telemetry, incident log."""
        opened = False
        if error.unavailable and not error.skipped:
            opened = self.breaker.unreachable()
        elif not error.unavailable:
            self.breaker.reached()  # it answered: reachable
        self._telemetry.event("errors")
        note_cache("skipped" if error.skipped else "error")
        with self._lock:
            self._failures += 1
            first = self._failures == 1
        what = f"{str(error).rstrip('.')}; {context}" if context else str(error).rstrip(".")
        if first:
            logger.warning(
                "%s. The database stays the source of truth and operations continue "
                "without the cache; further Redis errors are logged at DEBUG until it "
                "answers again",
                what,
            )
        else:
            logger.debug("%s", what)
        if opened:
            logger.warning(
                "Redis failed %d times in a row: skipping it for %g s at a time until it "
                "answers again (circuit open)",
                self.breaker.TRIP_AFTER,
                self.breaker.cooldown,
            )

    def reached(self) -> None:
        """Record that Redis answered; log the end of an incident once."""
        was_open = self.breaker.reached()
        if not self._failures:  # the common case: no incident, no lock
            return
        with self._lock:
            failures, self._failures = self._failures, 0
        if failures:
            logger.info(
                "Redis answers again after %d failed cache operation(s)%s",
                failures,
                " (circuit closed)" if was_open else "",
            )


def _subject(vcon_uuid: str | None) -> str:
    return f" of vCon {vcon_uuid}" if vcon_uuid else ""
