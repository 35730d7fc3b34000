"""Everything this package asks of Redis: the only modules that import redis-py.

* :mod:`._urls`: Sentinel and Cluster URLs (parsed for the configuration too);
* :mod:`._connect`: clients for one server, Sentinel and Cluster, failover waits,
  pipelines, the Lua scripts of ``lua/`` (the version rule in ``lua/fence.lua``);
* :mod:`._guard`: the one wrapper every Redis call goes through (circuit breaker,
  error translation by :mod:`._errors`, incident log, telemetry, fail-open);
* :mod:`._cache`: the hot tier (keys, RedisJSON or string, TTLs, fills, deletes);
* :mod:`._chains`, :mod:`._journal`, :mod:`._scan`: chain lists, the failed-save
  journal, reading keys for a backfill;
* :mod:`._tier`: :class:`RedisTier`, what the storage policy calls.
"""

from ._cache import CONSERVER_KEY_PREFIX, CacheUsage, Entry, WriteMode
from ._journal import DeadLetter, Journaled, JournalEntry
from ._numbers import holds_exactly
from ._scan import KeyScan, ScannedKey
from ._tier import RedisTier, StoreOutcome, WorkingCopy

__all__ = [
    "CONSERVER_KEY_PREFIX",
    "CacheUsage",
    "DeadLetter",
    "Entry",
    "JournalEntry",
    "Journaled",
    "KeyScan",
    "RedisTier",
    "ScannedKey",
    "StoreOutcome",
    "WorkingCopy",
    "WriteMode",
    "holds_exactly",
]
