"""Retrying transient database failures: exponential backoff with jitter, one deadline.

Only :class:`~conserver_supabase.errors.DatabaseUnavailableError` is retried (network,
timeouts, 5xx, failover, serialization and deadlock errors); a rejection or an invalid
vCon never is. Retrying a save is safe: ``conserver_vcon_save`` writes the same rows
from the same document whether or not an earlier attempt committed (only the version
counter moves on).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Final

from ._errors import DatabaseUnavailableError

__all__ = ["call_with_retry"]

logger = logging.getLogger("conserver_supabase.retry")

_FIRST_PAUSE: Final = 0.1
_MAX_PAUSE: Final = 2.0


def call_with_retry[T](
    call: Callable[[], T],
    *,
    deadline: float,
    operation: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Return ``call()``, retrying it while it raises ``DatabaseUnavailableError``.

    Pauses grow 0.1, 0.2, 0.4 ... up to 2 s, each drawn between half and all of that
    (jitter, so that many clients do not retry in step). No pause ends after
    ``deadline`` seconds from the first attempt; then the last error is raised, with
    ``attempts`` set on it. ``deadline`` 0 disables retrying. ``on_retry()`` is
    called before each retry (to count them).
    """
    started = clock()
    attempt = 0
    pause = _FIRST_PAUSE
    while True:
        attempt += 1
        try:
            return call()
        except DatabaseUnavailableError as exc:
            wait = pause * (0.5 + 0.5 * jitter())
            elapsed = clock() - started
            if elapsed + wait > deadline:
                exc.attempts = attempt
                if attempt > 1:
                    exc.add_note(
                        f"{operation}: gave up after {attempt} attempts in {elapsed:.1f} s "
                        f"(retry_deadline {deadline:g} s)"
                    )
                raise
            logger.debug(
                "%s failed (attempt %d), retrying in %.2f s: %s", operation, attempt, wait, exc
            )
            if on_retry is not None:
                on_retry()
            sleep(wait)
            pause = min(pause * 2, _MAX_PAUSE)
