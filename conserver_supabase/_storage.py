"""SupabaseStorage: the public face of the storage, and where its parts meet.

The methods here are thin: each names its operation for telemetry and hands over to
the part that decides (file names say where):

* saves and deletes: the write pipeline, :mod:`._writes`;
* reads (cache first, the database behind, fills, the read replica): :mod:`._reads`;
  handed out in an older shape: :mod:`._legacy`; search queries: :mod:`._search`;
* Redis (the hot tier, chain lists, the journal, the guard every call goes through):
  :mod:`._redis`; the database: :mod:`._database`; bulk import: :mod:`._backfill`;
  the setup checks: :mod:`._doctor`; the schema: :mod:`._migrations`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TextIO
from uuid import UUID

from ._backfill import BackfillSummary, run_backfill, source_for
from ._bulk import save_in_chunks
from ._config import StorageConfig, as_name_list
from ._database import Database, open_database
from ._errors import ConfigurationError
from ._feed import ChangeFeed
from ._legacy import egress_version, to_legacy
from ._library import to_vcon
from ._reads import Reads
from ._redis import CacheUsage, RedisTier, WriteMode
from ._search import DEFAULT_LIMIT, SearchPage, build_query, merge_filters, read_page
from ._telemetry import Telemetry
from ._telemetry import observed as _observed
from ._writes import ReplayReport, Writes, journal_listing

__all__ = ["SupabaseStorage"]


#: uuids per search page when warming the cache (one database read per page).
_WARM_PAGE: Final = 500
#: uuids per database call (and per RPUSH) when requeueing.
_REQUEUE_PAGE: Final = 1000

_shared: dict[tuple[int, StorageConfig], SupabaseStorage] = {}
_shared_lock = threading.Lock()


class SupabaseStorage:
    """vCons in Supabase/PostgreSQL with Redis as the hot tier.

    ``SupabaseStorage(options)`` builds its own database client and Redis pool:
    close it (or use it as a context manager). :meth:`for_options` returns one
    shared, thread-safe instance per effective configuration instead; the
    module-level ``save``/``get``/``delete`` use that.

    ``database`` and ``read_database`` replace the clients it would open for the
    primary and the read replica (any :class:`~conserver_supabase.testing.Database`,
    e.g. :class:`~conserver_supabase.testing.MemoryDatabase`); a ``database`` given
    alone also serves the reads. ``redis_client`` replaces the redis-py client.
    """

    def __init__(
        self,
        options: Mapping[str, Any] | StorageConfig | None = None,
        *,
        database: Database | None = None,
        read_database: Database | None = None,
        redis_client: Any = None,
    ) -> None:
        config = (
            options if isinstance(options, StorageConfig) else StorageConfig.from_options(options)
        )
        self.config = config
        self._telemetry = Telemetry(lambda: self._redis.breaker.state())
        self._redis = RedisTier(config, self._telemetry, client=redis_client)
        self._database = open_database(config) if database is None else database
        # Reads that may lag; the primary itself when no replica is configured (or a
        # primary was handed in without a replica).
        if read_database is None:
            replica = database is None and config.replica
            read_database = open_database(config, replica=True) if replica else self._database
        self._read_database = read_database
        self._writes = Writes(config, self._database, self._redis, self._telemetry)
        self._reads = Reads(self._database, read_database, self._redis, self._writes.retrying)
        self._shared = False
        self._feed: ChangeFeed | None = None
        if config.feed:
            self.change_feed().start()

    @classmethod
    def for_options(cls, options: Mapping[str, Any] | None = None) -> SupabaseStorage:
        """Return the shared instance for these options (created on first use).

        Equal effective configurations share one instance, so its connection pools
        are reused across calls and threads. A forked child gets its own.
        """
        config = StorageConfig.from_options(options)
        slot = (os.getpid(), config)
        storage = _shared.get(slot)
        if storage is None:
            with _shared_lock:
                storage = _shared.get(slot)
                if storage is None:
                    storage = cls(config)
                    storage._shared = True
                    _shared[slot] = storage
        return storage

    @classmethod
    def close_shared(cls) -> None:
        """Close every shared instance of this process (at shutdown, or between tests)."""
        with _shared_lock:
            instances = [s for (pid, _), s in _shared.items() if pid == os.getpid()]
        for storage in instances:
            storage.close()

    # --- writes -----------------------------------------------------------------

    @_observed("save")
    def save_vcon(self, vcon: Any, chain_lists: Sequence[str] | None = None) -> int:
        """Save a vCon; return its version (1 for a new vCon, +1 per save).

        ``vcon`` is a dict, JSON text, or an object with ``to_dict()`` (the
        ``vcon`` library's and the conserver's ``Vcon``; a ``to_dict()`` that fails or
        gives no JSON object is an :class:`InvalidVconError`). ``chain_lists`` replaces
        the configured lists for this call (``[]``: push nowhere). Raises
        :class:`InvalidVconError` before anything is written, ``DatabaseError``
        when the database failed (nothing was saved), :class:`ChainPushError` when
        the vCon was saved but its uuid did not reach every chain list.
        """
        prepared = self._writes.prepare(vcon)
        versions = self._writes.save([prepared], self._lists(chain_lists))
        return versions[prepared.vcon_uuid]

    @_observed("save_many")
    def save_many(
        self,
        vcons: Iterable[Any],
        *,
        chain_lists: Sequence[str] | None = None,
        fill_cache: bool = True,
        journal: bool = True,
    ) -> dict[str, int]:
        """Save several vCons; return ``{uuid: version}``. Up to ``bulk_chunk`` vCons (and
        ``bulk_chunk_bytes``) in one database transaction; more in consecutive chunks, a
        failure stopping the call with :class:`BulkSaveError` (saved, unsaved; nothing
        journaled: see ``_bulk.py``). Every vCon is validated first: one invalid vCon
        means none is written.
        ``chain_lists`` replaces the configured lists (``[]``: push nowhere).
        ``fill_cache=False`` (bulk imports) updates only vCons already cached and does
        not add the others. ``journal=False`` raises a database failure without
        journaling the vCons (for callers that still hold them, like ``backfill``).
        Every vCon is cached and pushed before a failure of one is reported, so one
        broken list does not hold back the rest.
        """
        mode: WriteMode = "overwrite" if fill_cache else "refresh"
        batch = [self._writes.prepare(vcon, mode) for vcon in vcons]
        return save_in_chunks(
            self._writes,
            batch,
            self._lists(chain_lists),
            journal=journal,
            count=self.config.bulk_chunk,
            max_bytes=self.config.bulk_chunk_bytes,
        )

    @_observed("save")
    def save_working_copy(self, vcon_uuid: str | UUID) -> int:
        """Save the vCon the conserver holds in Redis at ``vcon:{uuid}``; return its version.

        This is what the conserver's ``save(vcon_uuid, opts)`` does. A missing working
        copy raises :class:`VconNotFoundError`; an unreadable one :class:`CacheError`.
        """
        prepared = self._writes.prepare_working_copy(vcon_uuid)
        versions = self._writes.save([prepared], self.config.chain_lists)
        return versions[prepared.vcon_uuid]

    @_observed("delete")
    def delete_vcon(self, vcon_uuid: str | UUID) -> bool:
        """Delete a vCon from the database, then from the cache; return whether it existed."""
        return self._writes.delete(vcon_uuid)

    def replay_journal(self, progress: Callable[[int, int], None] | None = None) -> ReplayReport:
        """Save every vCon on the failed-save journal again; return what happened.

        Fenced: an entry is saved only if the database acknowledged no save or delete
        of its vCon after the failed save (else it is dropped as superseded), with the
        tenant guard the failed save had. Entries refused for their data move to the
        dead letters. Idempotent: an entry leaves the journal only once it is saved,
        superseded or dead-lettered. Stops at the first database failure (or a refusal
        a configuration fix removes), keeping the rest.
        """
        return self._writes.replay(progress)

    def journal_entries(self, dead: bool = False) -> list[dict[str, Any]]:
        """What the failed-save journal keeps (``dead``: its dead letters), oldest first,
        without the documents: one JSON-ready dict per vCon."""
        return journal_listing(self._redis, dead)

    def purge_journal(
        self,
        older_than_days: float | None = None,
        *,
        dead: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Remove the journal entries (``dead``: the dead letters) kept at least
        ``older_than_days`` (default: the retention; 0: all), and those whose vCon
        expired; return how many vCons were removed. What is removed is not replayed."""
        days = self.config.journal_retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise ConfigurationError(f"older_than_days must be 0 or more, got {days}")
        return self._redis.purge_journal(days * 86400, dead, progress)

    def _lists(self, chain_lists: Sequence[str] | None) -> Sequence[str]:
        if chain_lists is None:
            return self.config.chain_lists
        return as_name_list("chain_lists", chain_lists)

    # --- reads ------------------------------------------------------------------

    @_observed("get")
    def get_vcon(
        self,
        vcon_uuid: str | UUID,
        *,
        use_cache: bool = True,
        as_vcon: bool = False,
        egress_format_version: str | None = None,
    ) -> Any:
        """Return the vCon (from the cache, else the database), or ``None``.

        ``use_cache=False`` reads the primary database and leaves the cache alone;
        ``egress_format_version="0.0.1"`` (default: the option) a copy in the 0.0.1 shape;
        ``as_vcon=True`` a ``vcon.Vcon`` (inside a conserver, its own) by
        ``Vcon.build_from_json``, ``vcon`` imported with the host's logging kept.
        """
        version = egress_version(egress_format_version, self.config.egress_format_version)
        found = self._reads.get(vcon_uuid, use_cache=use_cache)
        if found is not None and version is not None:
            found = to_legacy(found, version)
        return to_vcon(found) if as_vcon and found is not None else found

    @_observed("get_many")
    def get_many(
        self, vcon_uuids: Sequence[str | UUID], *, egress_format_version: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Return ``{uuid: vCon}`` for those that exist; misses take one database call."""
        version = egress_version(egress_format_version, self.config.egress_format_version)
        found = self._reads.get_many(vcon_uuids)
        return found if version is None else {u: to_legacy(v, version) for u, v in found.items()}

    @_observed("exists")
    def exists(self, vcon_uuid: str | UUID) -> bool:
        """Whether the vCon exists in the database.

        A vCon a save cached answers at once; anything else (a miss, a fill, the
        conserver's working copy of a vCon not saved yet) asks the database.
        """
        return self._reads.exists(vcon_uuid)

    @_observed("search")
    def search(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        include_vcons: bool = False,
        egress_format_version: str | None = None,
        **more_filters: Any,
    ) -> SearchPage:
        """Search the database (one round trip; the cache is not involved).

        ``filters`` and keyword filters combine (AND); see ``_search.FILTERS``.
        Returns a :class:`SearchPage` of uuids (or vCons with ``include_vcons``, in the
        ``egress_format_version`` shape: see get_vcon), newest first, with a ``next_cursor``
        for the next page. Bad filters raise :class:`SearchError` before anything is sent.
        """
        query = build_query(
            merge_filters(filters, more_filters),
            limit=limit,
            cursor=cursor,
            include_vcons=include_vcons,
            tenant_id=self.config.tenant_id,
        )
        version = egress_version(egress_format_version, self.config.egress_format_version)
        # The replica: a vCon saved a moment ago may be missing until it replays.
        result = self._writes.retrying("search", lambda: self._read_database.search(query))
        page = read_page(query, result)
        if version is not None and include_vcons:
            return SearchPage([to_legacy(v, version) for v in page.items], page.next_cursor)
        return page

    # --- operations ----------------------------------------------------------------

    def warm_cache(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        **more_filters: Any,
    ) -> tuple[int, int]:
        """Cache the vCons a search finds; return ``(matched, filled)``.

        Pages through the search (uuids only, newest first); each page's vCons that are
        not cached are read in one database call and filled (never over what is cached;
        waiting for Redis: counted). ``progress(matched, filled)`` is called after each page.
        """
        matched = filled = 0
        cursor: str | None = None
        while True:
            page = self.search(filters, limit=_WARM_PAGE, cursor=cursor, **more_filters)
            missing = self._reads.missing_from_cache(page.items)
            if missing:  # from the primary: a replica read fills only what the cache knows
                filled += self._reads.load_and_fill(missing, replica=False)[1]
            matched += len(page.items)
            if progress is not None:
                progress(matched, filled)
            cursor = page.next_cursor
            if cursor is None:
                return matched, filled

    @_observed("requeue")
    def requeue(
        self,
        list_name: str,
        since: datetime,
        until: datetime | None = None,
        *,
        page_size: int = _REQUEUE_PAGE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Push onto ``list_name`` the uuids of the vCons saved through this storage at
        or after ``since`` and before ``until`` (None: up to now), oldest first; return
        how many. For recovery after a chain push failure. Datetimes need a timezone.
        """
        name = list_name.strip() if isinstance(list_name, str) else ""
        if not name:
            raise ConfigurationError("the chain list name is empty", option="list")
        for label, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise ConfigurationError(f"{label} needs a timezone (Z or +hh:mm)", option=label)
        query: dict[str, Any] = {
            "since": since.isoformat(),
            "until": until.isoformat() if until is not None else None,
            "limit": page_size,
            "after": None,
        }
        pushed = 0
        while True:
            # The primary, never the replica: the vCons to recover are the latest saves,
            # exactly those a lagging replica would leave out without telling anyone.
            page = self._writes.retrying("requeue", lambda: self._database.saved_between(query))
            uuids = [str(u) for u in page.get("uuids") or []]
            if uuids:
                self._redis.requeue(name, uuids)
                pushed += len(uuids)
                if progress is not None:
                    progress(pushed)
            if len(uuids) < page_size or not page.get("last"):
                return pushed
            query["after"] = page["last"]

    def backfill(
        self,
        path: str | Path | None = None,
        *,
        redis_pattern: str | None = None,
        checkpoint: Path,
        report: Path,
        batch: int = 100,
        restart: bool = False,
        push: bool = False,
        progress: Callable[[int, int | None], object] | None = None,
    ) -> BackfillSummary:
        """Import vCons from ``path`` (a directory of ``*.json``, a JSON Lines file, or
        ``-`` for standard input) or from the Redis keys matching ``redis_pattern``, in
        batches, resumably (see ``conserver-supabase backfill --help``)."""
        source = source_for(path, redis_pattern, self._redis, batch)
        return run_backfill(
            self, source, checkpoint=checkpoint, report=report, batch=batch,
            restart=restart, push=push, progress=progress,
        )  # fmt: skip

    def cache_usage(self) -> CacheUsage:
        """Count the keys under the cache prefix (SCAN), their memory, and the server's
        hit ratio (INFO). Raises :class:`CacheError` when Redis fails."""
        return self._redis.usage()

    def flush_cache(self) -> tuple[int, int]:
        """Remove the cached vCons the database holds; return ``(removed, kept)``.

        Only keys under the prefix, by SCAN in batches. Keys without a saved version
        (a conserver's working copy not saved yet) are kept and counted.
        """
        return self._redis.flush()

    def change_feed(self, name: str | None = None) -> ChangeFeed:
        """The consumer of the database's change log for this storage's Redis (the
        ``feed`` option runs it in a thread; ``conserver-supabase feed`` in a process of
        its own): ``poll()`` runs one round, ``run()`` rounds until ``stop()``. ``name``:
        the cursor (default: ``feed_name``, else this Redis's location and prefix)."""
        if self._feed is None or (name is not None and name != self._feed.name):
            self._feed = ChangeFeed(
                self.config, self._database, self._redis, self._telemetry, name=name
            )
        return self._feed

    def doctor(self, out: TextIO) -> list[Any]:
        """Check this configuration against the real services, one line each to
        ``out``; return the checks (``.status``: ok, warn or FAIL). Writes nothing to
        the database; in Redis only a probe key, removed at once."""
        from ._doctor import run_doctor

        return run_doctor(self, out)

    @staticmethod
    def migration_script(schema: str = "public") -> str:
        """Every migration and SQL function as one script to paste into Supabase's SQL
        editor (a transaction; safe to paste again)."""
        from . import _migrations as migrations

        return migrations.render_script(schema)

    def migrate(self) -> list[Any]:
        """Apply the pending migrations to ``database_url`` (and re-apply changed SQL
        functions); return the migrations applied."""
        from . import _migrations as migrations

        if self.config.database_url is None:
            raise ConfigurationError(
                "migrate needs a database: pass --database-url URL (or set SUPABASE_DB_URL), "
                "or use --print and paste the SQL into the Supabase SQL editor",
                option="database_url",
            )
        return migrations.apply(self.config.database_url.reveal(), self.config.schema)

    def cache_stats(self) -> dict[str, int]:
        """Counts since this instance was created: cache ``hits``, ``misses``,
        ``fills`` (misses written back) and Redis ``errors``."""
        cache = self.stats()["cache"]
        return {name: cache[name] for name in ("hits", "misses", "fills", "errors")}

    def stats(self) -> dict[str, Any]:
        """What this instance did since it was created, for dashboards and ``-v`` output.

        ``operations``: per operation (save, save_many, get, get_many, exists, delete,
        search) the number of calls, failures, mean and max milliseconds, the latency
        histogram (bucket upper bounds in ms) and the p50/p95 bucket bounds; ``cache``:
        hits, misses, fills, errors, hit ratio; ``retries`` (database retry attempts);
        ``journaled`` (vCons put on the failed-save journal); ``conflicts`` (saves refused
        because another writer changed the same field, their copies dead-lettered:
        docs/database.md, "Conflicts"); ``circuit`` (the Redis
        circuit breaker: closed, open or probing); ``suspect_keys``: the cached vCons this
        process does not serve because a write or invalidation of them was skipped or
        failed (``tracked``), whether it serves no hit at all after more than
        ``cache_suspect_limit`` of them (``distrusting_all``, for ``distrust_seconds_left``),
        and how many were marked and repaired.
        """
        self._redis.settle_fills()  # the answers of fills a read did not wait for (_fills.py)
        return {**self._telemetry.stats(), "suspect_keys": self._redis.suspects.summary()}

    # --- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Release the database client and the Redis pool."""
        with _shared_lock:
            for slot, storage in list(_shared.items()):
                if storage is self:
                    del _shared[slot]
        try:
            if self._feed is not None:
                self._feed.stop()
            self._database.close()
            if self._read_database is not self._database:
                self._read_database.close()
        finally:
            self._redis.close()

    def __enter__(self) -> SupabaseStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A shared instance (for_options) serves other callers and threads: leaving a
        # ``with`` block must not close their pools. close() still does, explicitly.
        if not self._shared:
            self.close()

    def __repr__(self) -> str:
        return f"SupabaseStorage({self.config!r})"
