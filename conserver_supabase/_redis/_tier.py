"""RedisTier: everything the storage asks of Redis, in the storage's words.

The storage policy (``conserver_supabase._storage``) never sees a redis-py client: it
asks this class for a cached vCon, a fill, a store after a save, a push, the journal.
Each answer already went through the one guard (breaker, translation, incident log,
telemetry, fail-open); what is left to the caller is what only it can decide (what a
failure means for the operation, what to raise).

How a store is done (one Redis or Cluster, one entry or a batch, in one script with the
chain lists or apart, and which part failed when Redis answered an error) is decided
here, in :meth:`RedisTier.store`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from .._config import StorageConfig
from .._errors import CacheError
from .._telemetry import Telemetry, note_cache
from ._cache import CONSERVER_KEY_PREFIX, FENCED, CacheUsage, Entry, HotTier
from ._chains import ChainLists
from ._connect import Connection, connect, location
from ._conserver import ConserverSide
from ._fills import DeferredFills
from ._guard import Guard
from ._journal import DeadLetter, Journal, Journaled, JournalEntry
from ._scan import KeyScan
from ._suspects import Suspects

__all__ = ["RedisTier", "StoreOutcome", "WorkingCopy"]

_FAILED: Final[Any] = object()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkingCopy:
    """What :meth:`RedisTier.working_copy` read."""

    key: str
    value: Any  #: the JSON value, ``None`` when the key is absent
    #: The exact text Redis answered: a touch after the save compares the key with it,
    #: so the save never stamps its version on a body it did not save (lua/write.lua).
    text: str
    #: What the vCon's version key held at the read (0: nothing).
    version: int


@dataclasses.dataclass
class StoreOutcome:
    """What :meth:`RedisTier.store` could not do."""

    #: uuid -> {chain list: reason} for the lists that did not get the uuid.
    unpushed: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    #: uuid -> why its cache entry was not written (recorded by the guard already; the
    #: caller applies ``cache_errors`` with :meth:`RedisTier.excuse`).
    failures: dict[str, CacheError] = dataclasses.field(default_factory=dict)


class RedisTier:
    """The hot tier, the chain lists and the journal of one storage."""

    def __init__(self, config: StorageConfig, telemetry: Telemetry, client: Any = None) -> None:
        self._connection = Connection(
            connect(config) if client is None else client, location(config)
        )
        self._telemetry = telemetry
        self._guard = Guard(
            self._connection.location,
            cooldown=config.redis_cooldown,
            fail_open=config.cache_errors == "log",
            telemetry=telemetry,
        )
        self._cache = HotTier(
            self._connection,
            self._guard,
            prefix=config.cache_key_prefix,
            ttl=config.cache_ttl,
            new_key_format=config.cache_format,
        )
        #: The vCons whose entry may be stale after a skipped or failed write (_suspects).
        self.suspects = Suspects(config.cache_suspect_limit, config.cache_ttl)
        self._chains = ChainLists(self._connection, self._guard)
        self._journal = Journal(
            self._connection,
            self._guard,
            config.journal_list,
            config.journal_retention,
            config.journal_max_entries,
        )
        #: What the conserver itself does to this Redis (for the demo and tests).
        self.conserver = ConserverSide(self._connection, self._guard)
        self._fills = (
            None
            if self._connection.cluster
            else DeferredFills(self._connection, self._cache, self._guard, telemetry)
        )

    # --- what the storage reports -----------------------------------------------------

    @property
    def location(self) -> str:
        """Where Redis is, for messages (no password)."""
        return self._connection.location

    @property
    def breaker(self) -> Any:
        """The circuit breaker (``state()``: closed, open or probing)."""
        return self._guard.breaker

    def cache_key(self, vcon_uuid: str) -> str:
        """The vCon's cache key."""
        return self._cache.key(vcon_uuid)

    def excuse(self, error: CacheError, context: str) -> None:
        """Apply ``cache_errors`` to a cache failure the caller got back: nothing when it
        is ``log`` (the guard logged it), else raise it with ``context``."""
        self._guard.excuse(error, context, None)

    # --- reads ------------------------------------------------------------------------

    def cached(self, vcon_uuid: str) -> dict[str, Any] | None:
        """The cached vCon (a hit), or ``None``: a miss, Redis failed (fail-open), or the
        entry may be stale (this process skipped or failed a write of it: the database
        answers, and :meth:`fill` repairs the entry)."""
        if not self.suspects.trusted(vcon_uuid):
            self._outcome("misses", "miss")
            return None
        context = "reading the database instead"
        value = self._cache.read(
            self._cache.key(vcon_uuid), vcon_uuid, fallback=_FAILED, context=context
        )
        if value is _FAILED:
            return None
        if value is None:
            self._outcome("misses", "miss")
            return None
        if not isinstance(value, dict):
            error = CacheError(
                f"cache read of vCon {vcon_uuid} failed: the cached value is not a JSON object",
                operation="cache read",
                vcon_uuid=vcon_uuid,
            )
            self._guard.failed(error, context)
            self._guard.excuse(error, context, None)
            return None
        self._outcome("hits", "hit")
        return value

    def working_copy(self, vcon_uuid: str) -> WorkingCopy:
        """The conserver's working copy at ``vcon:{uuid}`` (value ``None`` when absent).
        Raises :class:`CacheError` (never fails open: without it there is nothing to
        save); a value that is not JSON has a ValueError as cause."""
        key = f"{CONSERVER_KEY_PREFIX}{vcon_uuid}"
        value, text, version = self._cache.read_versioned(key, vcon_uuid, "working copy read")
        return WorkingCopy(key, value, text, version)

    def holds_saved(self, vcon_uuid: str) -> bool | None:
        """Whether the cache holds the vCon as a save left it; ``None``: Redis cannot say
        (it failed, or the entry may be stale)."""
        if not self.suspects.trusted(vcon_uuid):
            return None
        held = self._cache.holds_saved(
            vcon_uuid, fallback=None, context="asking the database instead"
        )
        if held is not None:
            note_cache("hit" if held else "miss")
        return held

    def fill(
        self, vcon_uuid: str, document: str, version: int, *, exact: bool = True, wait: bool = True
    ) -> bool:
        """Cache a vCon read from the database, unless a key or a newer version is there;
        return whether it was written. An entry that may be stale is overwritten instead
        (the fence keeps anything newer) and trusted again once Redis confirms it.
        ``wait=False``: sent without waiting for Redis's answer (``_fills.py``; returns
        ``False``: not known yet), except for an entry that may be stale."""
        suspect = not self.suspects.trusted(vcon_uuid)
        if not wait and not suspect and self._fills is not None:
            self._fills.send(Entry(vcon_uuid, document, "fill", version, exact=exact))
            return False
        status = self._cache.write(
            Entry(vcon_uuid, document, "overwrite" if suspect else "fill", version, exact=exact),
            fallback=None,
            context="the vCon was read from the database",
        )
        if suspect and status is not None:
            self.suspects.repaired_one(vcon_uuid)
        if status == 1:
            self._telemetry.event("fills")
        return status == 1

    def absent(self, vcon_uuid: str) -> None:
        """The database does not have the vCon: an entry that may be stale goes (the
        delete whose invalidation was skipped); trusted again once Redis confirms it."""
        if self.suspects.trusted(vcon_uuid):
            return
        removed = self._cache.delete(
            vcon_uuid, 0, fallback=None, context="the vCon is not in the database"
        )
        if removed is not None:
            self.suspects.repaired_one(vcon_uuid)

    def fill_known(self, entries: Sequence[Entry]) -> list[int] | None:
        """Write a read replica's answers where a version on record proves them not older
        (mode ``known``); return each one's status (-1: older than what is on record:
        read the primary), or ``None`` when Redis cannot tell. An entry that may be stale
        is not written and reads the primary (-1), which repairs it."""
        suspect = [not self.suspects.trusted(entry.vcon_uuid) for entry in entries]
        if any(suspect):
            kept = [entry for entry, s in zip(entries, suspect, strict=True) if not s]
            answers = self.fill_known(kept) if kept else []
            if answers is None:
                return None
            answered = iter(answers)
            return [FENCED if s else next(answered) for s in suspect]
        if len(entries) == 1:
            status = self._cache.write(
                entries[0], fallback=None, context="reading the primary database instead"
            )
            statuses: list[int | None] | None = None if status is None else [status]
        else:
            try:
                statuses = self._cache.write_many(entries)
            except CacheError as exc:
                self._guard.excuse(exc, "reading the primary database instead", None)
                statuses = None
        if statuses is None or any(s is None for s in statuses):
            return None
        written = [int(s) for s in statuses if s is not None]
        self._telemetry.event("fills", sum(s == 1 for s in written))
        return written

    def forget(self, vcon_uuid: str, version: int) -> bool:
        """Remove a deleted vCon from the cache, leaving its tombstone (see _cache); return
        whether Redis answered (a failure is excused as the cache's are)."""
        removed = self._cache.delete(
            vcon_uuid, version, fallback=None, context="the vCon is deleted from the database"
        )
        if removed is None:  # the entry may still be there: not served until repaired
            self.suspects.mark([vcon_uuid])
        else:
            self.suspects.repaired_one(vcon_uuid)
        return removed is not None

    # --- writes -----------------------------------------------------------------------

    def store(self, entries: Sequence[Entry], lists: Sequence[str]) -> StoreOutcome:
        """Write the entries to the cache and push their uuids onto ``lists``, after their
        save committed; return what failed (never raises)."""
        outcome = StoreOutcome()
        together = lists if self._cache.pushes_in_write else ()
        if len(entries) == 1:
            redo = list(entries)
        else:
            try:
                replies = self._cache.write_many(
                    entries, together, context="the vCons are saved in the database"
                )
            except CacheError as exc:
                for entry in entries:
                    outcome.failures[entry.vcon_uuid] = exc
                    if lists:
                        outcome.unpushed[entry.vcon_uuid] = dict.fromkeys(lists, str(exc))
                return outcome
            redo = [entry for entry, reply in zip(entries, replies, strict=True) if reply is None]
            if lists and not together:  # Redis Cluster: push what was written, in one go
                done = {entry.vcon_uuid for entry in redo}
                apart = [entry.vcon_uuid for entry in entries if entry.vcon_uuid not in done]
                missed = self._push(apart, lists)
                outcome.unpushed.update(dict.fromkeys(apart, missed) if missed else {})
        for entry in redo:
            self._store_one(entry, lists, together, outcome)
        if outcome.failures:  # what was there before may be served: not until repaired
            self.suspects.mark(outcome.failures)
        else:
            note_cache("written")
        return outcome

    def _store_one(
        self, entry: Entry, lists: Sequence[str], together: Sequence[str], outcome: StoreOutcome
    ) -> None:
        context = f"the vCon is saved in the database (version {entry.version})"
        try:
            self._cache.write(entry, together, context=context)
        except CacheError as exc:
            failure: CacheError | None = exc
            missed: dict[str, str] = {}
            if lists and exc.unavailable:
                missed = dict.fromkeys(lists, str(exc))
            elif lists:
                if together:
                    # Redis answered with an error: the script checked every key before
                    # it wrote anything, so do the two parts apart to see which is broken.
                    try:
                        self._cache.write(entry, context=context)
                        failure = None
                    except CacheError as cache_exc:
                        failure = cache_exc
                missed = self._push([entry.vcon_uuid], lists)
            if failure is not None:
                outcome.failures[entry.vcon_uuid] = failure
            if missed:
                outcome.unpushed[entry.vcon_uuid] = missed
            return
        if lists and not together:
            missed = self._push([entry.vcon_uuid], lists)
            if missed:
                outcome.unpushed[entry.vcon_uuid] = missed

    def _push(self, vcon_uuids: Sequence[str], lists: Sequence[str]) -> dict[str, str]:
        missed = self._chains.push(vcon_uuids, lists)
        if missed:
            self._telemetry.event("errors")
        return missed

    def requeue(self, list_name: str, vcon_uuids: Sequence[str]) -> None:
        """RPUSH the uuids onto ``list_name``; raises :class:`CacheError`."""
        self._chains.append(list_name, vcon_uuids)

    # --- the journal --------------------------------------------------------------------

    @property
    def journal_name(self) -> str:
        return self._journal.name

    @property
    def journal_retention(self) -> int:
        """Seconds the journal keeps a vCon (documents, dead letters, working copies)."""
        return self._journal.retention

    def distrust(self, vcon_uuids: Iterable[str]) -> None:
        """A database call on these vCons ended with its outcome unknown (it may have
        committed): their cache entries are not served until a read repairs them."""
        self.suspects.mark(vcon_uuids)

    def journal(self, entries: Sequence[JournalEntry]) -> None:
        """Keep failed saves on the journal, each with the version the cache knew of it
        (its base: what the replay is fenced on); raises :class:`CacheError`."""
        recorded = self._cache.recorded([entry.vcon_uuid for entry in entries])
        # Only a saved version n is a base. A -n on record is a delete's tombstone or a
        # link's working copy newer than version n (lua/write.lua, touch), and neither
        # the key nor its absence tells them apart (the touch removes what it read,
        # a link writes after a delete): the time rule fences those instead. Based on
        # "deleted at n", the replay of a link's newer copy would be dropped.
        # A version this process knows may be stale (_suspects) is no base either.
        bases = {
            u: n if n is not None and n > 0 and self.suspects.trusted(u) else None
            for u, n in recorded.items()
        }
        self._journal.keep(entries, bases)

    def journaled(self, dead: bool = False) -> list[str]:
        """The journaled (or dead-lettered) uuids, oldest first, each once; raises
        :class:`CacheError`."""
        return list(dict.fromkeys(self._journal.uuids(dead=dead)))

    def journaled_entry(self, vcon_uuid: str) -> Journaled:
        """What the journal keeps for ``vcon_uuid``; raises :class:`CacheError`."""
        return self._journal.entry(vcon_uuid)

    def journal_sizes(self) -> list[tuple[Journaled, int]]:
        """Every journal entry with its document's size; raises :class:`CacheError`."""
        return list(self._journal.sizes(self.journaled()))

    def dead_letters(self, with_documents: bool = False) -> list[DeadLetter]:
        """The dead letters kept; raises :class:`CacheError`."""
        return self._journal.dead_letters(with_documents)

    def bury(self, entry: Journaled, document: str | None, reason: str, code: str | None) -> None:
        """Move a journal entry the database refused for its data to the dead letters."""
        self._journal.bury(entry, document, reason, code)

    def purge_journal(
        self, older_than: float, dead: bool, progress: Callable[[int, int], None] | None
    ) -> int:
        """Remove journal entries (or dead letters) older than ``older_than`` seconds."""
        return self._journal.purge(older_than, dead=dead, progress=progress)

    def drop_journaled(self, vcon_uuid: str) -> None:
        """A deleted vCon leaves the journal (every entry, its document; a working copy
        the journal kept gets its TTL back). A Redis failure is excused as the cache's
        are: the delete is done in the database."""
        if not self._journal.name:
            return
        try:
            self._journal.drop(vcon_uuid, f"{CONSERVER_KEY_PREFIX}{vcon_uuid}", self._cache.ttl)
        except CacheError as exc:
            self._guard.excuse(exc, "the vCon is deleted from the database", None)

    def unjournal(self, vcon_uuid: str) -> None:
        """Take one journal entry of ``vcon_uuid`` off, with its document."""
        self._journal.remove(vcon_uuid)

    # --- operations -----------------------------------------------------------------------

    def usage(self) -> CacheUsage:
        """Keys under the prefix, their memory, the server's figures; raises CacheError."""
        return self._cache.usage()

    def flush(self) -> tuple[int, int]:
        """Remove the cached vCons the database holds; ``(removed, kept)``."""
        return self._cache.flush()

    # --- the change feed (conserver_supabase._feed) ---------------------------------------

    def apply_changes(self, changes: Sequence[tuple[str, int, str]]) -> list[int]:
        """Apply changes of the database's change log to the cache (``lua/feed.lua``);
        raises :class:`CacheError`."""
        return self._cache.apply_changes(changes)

    def feed_lease(self, name: str, seconds: float) -> Any:
        """The lease of a change-feed cursor (a redis-py ``Lock`` that is not blocking
        and not thread-local): call it through :meth:`leased`."""
        return self._connection.client.lock(
            f"conserver_supabase:feed:lease:{name}", timeout=seconds, thread_local=False
        )

    def leased(self, lease: Any, held: bool) -> bool:
        """Take ``lease`` (``held``: renew it for another term); return whether this
        consumer holds it now. Raises :class:`CacheError`."""
        from redis.exceptions import LockError

        def take() -> bool:
            if not held:
                return bool(lease.acquire(blocking=False))
            try:
                return bool(lease.reacquire())
            except LockError:  # it ran out and another consumer took it
                return False

        return self._guard.call("feed lease", None, take)

    def feed_applied(self, name: str, watermark: str | None = None) -> int | None:
        """How far this Redis got in a change-feed cursor (``None``: it does not know,
        e.g. it restarted empty or from an old snapshot); with ``watermark``, record it.
        Raises :class:`CacheError`."""
        key = f"conserver_supabase:feed:applied:{name}"
        client = self._connection.client
        if watermark is not None:
            self._guard.call("feed", None, lambda: client.set(key, watermark))
            return int(watermark)
        found = self._guard.call("feed", None, lambda: client.get(key))
        return None if found is None else int(found)

    def release(self, lease: Any) -> None:
        """Give ``lease`` up (when it is still this consumer's)."""
        from redis.exceptions import LockError

        def give_up() -> None:
            with contextlib.suppress(LockError):
                lease.release()

        self._guard.call("feed lease", None, give_up)

    def has_json_module(self) -> bool:
        """Whether the server runs RedisJSON; raises :class:`CacheError`."""
        return self._cache.has_json_module()

    def probe(self, vcon_uuid: str) -> None:
        """Write and remove a probe key (scripts and JSON.SET allowed?); raises CacheError."""
        self._cache.write(Entry(vcon_uuid, '{"probe": true}', "fill", 0))
        self._cache.forget(vcon_uuid)  # no tombstone: it never was a vCon

    def list_kinds(self, names: Sequence[str]) -> list[tuple[str, str, int]]:
        """``(name, type, length)`` of each chain list; raises :class:`CacheError`."""
        return self._chains.kinds(names)

    def scan_keys(self, pattern: str, batch: int) -> KeyScan:
        """The keys matching ``pattern``, read one SCAN page at a time (backfill)."""
        return KeyScan(self._connection, self._guard, pattern, batch)

    def settle_fills(self) -> None:
        """Read Redis's answers to the fills sent without waiting (``stats()`` counts them)."""
        if self._fills is not None:
            self._fills.settle()

    def close(self) -> None:
        """Settle the fills sent, then release the connection pool."""
        if self._fills is not None:
            self._fills.close()
        self._connection.close()

    def _outcome(self, event: str, outcome: str) -> None:
        self._telemetry.event(event)
        note_cache(outcome)
