"""The change feed's consumer: the database's change log drives this Redis.

Every committed change of a vCon, whoever makes it (our saves and deletes, vcon-mcp's
edits, another process of ours writing to another Redis), is a row of
``conserver_vcon_changes`` with the vCon's new head version (migration 0004). A consumer
reads that log from a durable cursor (``conserver_vcon_feed_poll``, migration 0005) and
applies each change to the cache (``_redis/lua/feed.lua``, fenced by version like every
other cache write):

* what this Redis already knows at that version or later (our own save cached it): nothing;
* no key: the version is put on record, so a read from before the change cannot fill it;
* a string (vcon-mcp's ``SETEX``) or a cache under a prefix other than ``vcon:``: removed,
  the next read fills it from the database;
* a RedisJSON key under ``vcon:`` (possibly the working copy a conserver link is editing):
  left as it is, and marked: our reads and ``exists`` ask the database until a save or a
  fill at that version clears the mark. The conserver's own readers keep seeing the copy
  until its next save (which merges, docs/database.md) or its TTL.

One round reads every change of the transactions at or above the cursor's watermark, page
by page, applies them, and advances the cursor at the next round's first call: a consumer
that stops resumes there (a change delivered twice does nothing). A cursor behind the
log's bound (or a new cursor, after changes were pruned) cannot know what it missed: the
round flushes the cache first (the working copies stay).

At most one consumer per cursor is active: a lease in Redis (``lease_seconds``), renewed
every round; a consumer that loses it stops applying until it gets it back. Wake-ups:
with ``database_url``, a LISTEN on a connection of its own (a round starts at each
notification); always, a round every ``feed_poll_interval`` seconds (through PostgREST
or a transaction pooler, polling alone: a notification is a hint, the cursor is the
truth).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ._config import StorageConfig
from ._database import Database
from ._errors import CacheError, ConserverSupabaseError
from ._redis import RedisTier
from ._telemetry import Telemetry

__all__ = ["ChangeFeed", "FeedRound", "default_feed_name"]

logger = logging.getLogger("conserver_supabase.feed")

#: The lease of a cursor lasts this long; it is renewed at every round (a consumer that
#: does not hold it tries again every feed_poll_interval).
LEASE_SECONDS: Final = 10.0
#: What the triggers NOTIFY (conserver_vcon_record_change).
CHANNEL: Final = "conserver_vcon_changes"


def default_feed_name(redis: RedisTier, prefix: str) -> str:
    """One cursor per Redis (and cache prefix) served: its location (no password)."""
    return f"{redis.location.removeprefix('Redis at ')} {prefix}"


@dataclasses.dataclass
class FeedRound:
    """What one round did."""

    #: Changes read from the log (a change of a transaction still running when the
    #: previous round ended comes again: applying it twice does nothing).
    changes: int = 0
    #: Of those, what feed.lua did: only the version put on record, the key removed, the
    #: key marked (a possible working copy); the others needed nothing.
    recorded: int = 0
    removed: int = 0
    marked: int = 0
    #: The cache was flushed first: the cursor had lost changes (pruned before it read them).
    flushed: bool = False

    def add(self, statuses: list[int]) -> None:
        self.changes += len(statuses)
        self.recorded += statuses.count(1)
        self.removed += statuses.count(2)
        self.marked += statuses.count(3)


class ChangeFeed:
    """The consumer of one cursor for one Redis: :meth:`poll` runs one round,
    :meth:`run` runs rounds until stopped (the ``feed`` command, the opt-in thread)."""

    def __init__(
        self,
        config: StorageConfig,
        database: Database,
        redis: RedisTier,
        telemetry: Telemetry,
        *,
        name: str | None = None,
    ) -> None:
        self._config = config
        self._database = database
        self._redis = redis
        self._telemetry = telemetry
        self.name = name or config.feed_name or default_feed_name(redis, config.cache_key_prefix)
        self._lease = redis.feed_lease(self.name, LEASE_SECONDS)
        #: The watermark the last applied round reached: stored at the next call.
        self._advance: str | None = None
        #: What the log had pruned when this consumer last flushed for it.
        self._seen_pruned: str | None = None
        self._listener: _Listener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        #: Whether this consumer held the lease at its last try.
        self.holding = False
        self.last_error: str | None = None

    # --- one round ---------------------------------------------------------------------

    def poll(self) -> FeedRound:
        """Read every change since the cursor, apply it to the cache; the cursor moves
        at the next call (or :meth:`stop`). Raises :class:`CacheError` or
        ``DatabaseError`` (then nothing moved: the next round reads it all again)."""
        done = FeedRound()
        state: dict[str, Any] = {"listen": self._listener is not None}
        if self._advance is not None:
            state["advance"] = self._advance
        if self._seen_pruned is not None:
            state["seen"] = self._seen_pruned
        page = self._database.feed_poll(self.name, state, self._config.feed_batch)
        self._advance = None  # stored by that call
        start, reached = page["from"], page["next"]
        applied = self._redis.feed_applied(self.name)
        if page.get("lost"):
            self._flush(done, "changes it had not read were pruned from the log (it was "
                        "stopped longer than the log keeps them, or it is new)")  # fmt: skip
            self._seen_pruned = page.get("pruned")  # once flushed: said at the next call
        elif int(start) > 0 and (applied is None or applied < int(start)):
            self._flush(done, "this Redis does not know how far it got (it restarted empty "
                        "or from an older snapshot)")  # fmt: skip
        while True:
            changes = page["changes"]
            if changes:
                statuses = self._redis.apply_changes([(c[0], int(c[1]), c[2]) for c in changes])
                done.add(statuses)
            if not page["more"]:
                break
            last = changes[-1]
            state = {"from": start, "xid": last[3], "seq": last[4]}
            page = self._database.feed_poll(self.name, state, self._config.feed_batch)
        self._redis.feed_applied(self.name, reached)
        self._advance = reached
        self.rounds += 1
        if done.changes:
            self._telemetry.event("feed_changes", done.changes)
        return done

    def _flush(self, done: FeedRound, why: str) -> None:
        """The cache may hold what changed before the cursor: remove every saved vCon
        (working copies stay; their reads are fenced by version)."""
        removed, kept = self._redis.flush()
        done.flushed = True
        logger.warning(
            "change feed %s: %s: flushed the cache (%d vCons removed, %d working copies "
            "kept) and went on", self.name, why, removed, kept,
        )  # fmt: skip

    # --- running -----------------------------------------------------------------------

    def run(self, *, on_round: Callable[[FeedRound], None] | None = None) -> None:
        """Run rounds until :meth:`stop`: each when a notification arrives, at the latest
        every ``feed_poll_interval`` seconds, while this consumer holds the lease."""
        self._stop.clear()
        self._listener = _Listener.open(self._config)
        try:
            while not self._stop.is_set():
                try:
                    self.holding = self._take_lease(self.holding)
                    if self.holding:
                        done = self.poll()
                        self.last_error = None
                        if on_round is not None:
                            on_round(done)
                except (CacheError, ConserverSupabaseError) as exc:
                    if str(exc) != self.last_error:
                        logger.warning("change feed %s: %s; trying again", self.name, exc)
                    self.last_error = str(exc)
                except Exception as exc:  # a bug must not end the thread silently
                    logger.exception("change feed %s: unexpected failure; trying again", self.name)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                self._wait(self._config.feed_poll_interval)
        finally:
            self._finish()

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread (the ``feed`` option)."""
        name = f"conserver-supabase feed {self.name}"
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop :meth:`run` (and its thread), storing how far it got."""
        self._stop.set()  # a LISTEN wait ends within feed_poll_interval
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _take_lease(self, holding: bool) -> bool:
        held = self._redis.leased(self._lease, holding)
        if not held:
            logger.debug("change feed %s: another consumer holds the lease", self.name)
        return held

    def _wait(self, seconds: float) -> None:
        if self.holding and self._listener is not None and self._listener.wait(seconds):
            return
        self._stop.wait(seconds)

    def checkpoint(self) -> None:
        """Store how far the last round got (the next round's first call does it too)."""
        if self._advance is not None:
            self._database.feed_poll(self.name, {"advance": self._advance}, 0)
            self._advance = None

    def _finish(self) -> None:
        """Store the watermark reached and give the lease up (best effort: a consumer
        that cannot resumes one round earlier, or after the lease ran out)."""
        try:
            if self.holding:
                self.checkpoint()
                self._redis.release(self._lease)
                self.holding = False
        except (CacheError, ConserverSupabaseError) as exc:
            logger.warning("change feed %s: stopping: %s", self.name, exc)
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class _Listener:
    """LISTEN conserver_vcon_changes on a connection of its own (direct transport only)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, config: StorageConfig) -> _Listener | None:
        if config.database_url is None:
            return None
        try:
            import psycopg

            from ._database._postgres import connection_parameters

            url = config.database_url.reveal()
            conn = psycopg.connect(url, **connection_parameters(url, config.timeout))
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # wake-ups are a hint: poll without them
            logger.info("change feed: no LISTEN connection (%s): polling only", exc)
            return None
        return cls(conn)

    def wait(self, seconds: float) -> bool:
        """Whether a notification came within ``seconds``; False (and polling only from
        then on) when the connection failed."""
        if self._conn is None:
            return False
        deadline = time.monotonic() + seconds
        try:
            for _ in self._conn.notifies(timeout=max(0.0, deadline - time.monotonic()),
                                         stop_after=1):  # fmt: skip
                return True
        except Exception as exc:  # see open()
            logger.info("change feed: the LISTEN connection failed (%s): polling only", exc)
            self.close()
        return False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()
