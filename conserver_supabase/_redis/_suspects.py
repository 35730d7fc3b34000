"""The vCons whose cache entry this process knows may be stale.

A cache write or invalidation after a database commit can be skipped (the circuit
breaker is open) or fail (Redis answered an error, or timed out: its outcome unknown).
Then Redis may still hold what was there before, the database has moved on, and when
Redis comes back (with its data: a freeze, a failover to a replica that kept it) that
older entry would be served. :class:`Suspects` remembers such uuids; the hot tier does
not serve them (a read goes to the database and repairs the entry at the database's
version through the fence) until a repair is confirmed by Redis.

Bounded: a mark older than ``cache_ttl`` is forgotten (every entry written before it has
expired by then: see :meth:`Suspects.trusted` for what renews a TTL), and past
``capacity`` marks the process stops trusting any cache hit until ``cache_ttl`` seconds
after the last mark, when every entry that could be stale has expired.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Suspects"]

logger = logging.getLogger("conserver_supabase.cache")


class Suspects:
    """uuid -> when its cache write or invalidation was skipped or failed."""

    def __init__(
        self, capacity: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._marks: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._distrust_until = 0.0
        self._lock = threading.Lock()
        self.marked = 0  #: marks made since the start
        self.repaired = 0  #: entries repaired since the start
        self.overflows = 0  #: times the set overflowed

    def mark(self, vcon_uuids: Iterable[str]) -> None:
        """The cache entries of ``vcon_uuids`` may be stale from now on."""
        now = self._clock()
        with self._lock:
            for vcon_uuid in vcon_uuids:
                self.marked += 1
                if self._distrusting(now):
                    self._distrust_until = now + self.ttl  # an entry older than now may be stale
                    continue
                self._marks.pop(vcon_uuid, None)
                self._marks[vcon_uuid] = now
            self._expire(now)
            if len(self._marks) > self.capacity:
                self.overflows += 1
                self._marks.clear()
                self._distrust_until = now + self.ttl
                logger.warning(
                    "more than %d cached vCons may be stale after Redis failures: no cache "
                    "hit is served for %g s (cache_ttl), reads go to the database",
                    self.capacity,
                    self.ttl,
                )

    def trusted(self, vcon_uuid: str) -> bool:
        """Whether the cache entry of ``vcon_uuid`` may be served.

        False while it is marked, or while the set has overflowed. A mark lasts until a
        repair or ``cache_ttl``: an entry written before the mark has expired by then,
        since nothing renews the TTL of an entry without rewriting it at the database's
        version (a fill writes only an absent key; the save hook renews only the text it
        read and saved) except the journal, which keeps a working copy whose save failed
        (newer than the database, not staler).
        """
        if not self._marks and not self._distrust_until:
            return True  # the common case, read without the lock (every cache hit asks)
        now = self._clock()
        with self._lock:
            if self._distrusting(now):
                return False
            self._expire(now)
            return vcon_uuid not in self._marks

    def repaired_one(self, vcon_uuid: str) -> None:
        """Redis confirmed a rewrite or removal of the entry at the database's version."""
        with self._lock:
            if self._marks.pop(vcon_uuid, None) is not None:
                self.repaired += 1

    def summary(self) -> dict[str, Any]:
        """For ``stats()``: marks held, whether every hit is refused, counters."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            distrusting = self._distrusting(now)
            return {
                "tracked": len(self._marks),
                "distrusting_all": distrusting,
                "distrust_seconds_left": round(max(0.0, self._distrust_until - now), 1),
                "marked": self.marked,
                "repaired": self.repaired,
                "overflows": self.overflows,
            }

    def _distrusting(self, now: float) -> bool:
        return now < self._distrust_until

    def _expire(self, now: float) -> None:
        while self._marks:
            vcon_uuid, since = next(iter(self._marks.items()))
            if now - since < self.ttl:
                return
            del self._marks[vcon_uuid]
