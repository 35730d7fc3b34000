"""SupabaseStorage: the one place where storage policy lives.

* save: validate, commit to the database, then refresh the cache (TTL) and push
  the uuid onto the chain lists in one Redis round trip;
* get: cache first; on a miss the database, then fill the cache without
  overwriting what a concurrent save wrote meanwhile;
* delete: the database first, then the cache;
* a read replica (``read_database_url`` / ``read_url``) answers the reads that may
  lag: searches and the database reads behind cache misses. Saves, deletes,
  ``exists``, ``requeue`` and ``get(use_cache=False)`` use the primary (see
  :meth:`SupabaseStorage._load_and_fill` for how a lagging replica is caught);
* Redis failing: the database result stands; the incident is logged once (WARNING)
  and its end once (INFO), or raised when ``cache_errors: raise``. A uuid that
  did not reach its chain lists is always an error (:class:`ChainPushError`).

The database and Redis are reached through small seams (:mod:`.database`,
:mod:`.cache`); this module only decides.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any, Final, NoReturn
from uuid import UUID

from ._boundary import cache_errors
from .cache import (
    CONSERVER_KEY_PREFIX,
    CacheUsage,
    RedisCache,
    WriteMode,
    journal_document_key,
)
from .config import StorageConfig, as_name_list
from .database import Database, open_database
from .database.base import Tenant, Versioned
from .errors import (
    CacheError,
    ChainPushError,
    ConfigurationError,
    DatabaseError,
    DatabaseRejectedError,
    InvalidVconError,
    VconNotFoundError,
)
from .retry import call_with_retry
from .search import DEFAULT_LIMIT, SearchPage, build_query, merge_filters, read_page
from .telemetry import Operation, Telemetry
from .tenants import tenant_for, tenants_for
from .validation import canonical_uuid, validate_vcon

__all__ = ["SupabaseStorage"]

logger = logging.getLogger(__name__)

#: The operation running in this thread (for the cache outcome of its span and log line).
_current: ContextVar[Operation | None] = ContextVar("conserver_supabase_operation", default=None)


def _note_uuid(vcon_uuid: str) -> None:
    """Tell the running operation which vCon it is about (a save learns it late)."""
    op = _current.get()
    if op is not None:
        op.vcon_uuid = vcon_uuid


def _is_uuid(text: str | None) -> bool:
    try:
        canonical_uuid(text)
    except InvalidVconError:
        return False
    return True


def _note_cache(outcome: str) -> None:
    """Tell the running operation what the cache did (hit, miss, written, error ...)."""
    op = _current.get()
    if op is not None:
        op.cache = outcome


def _observed[**P, R](name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Time and record a public storage method as operation ``name`` (see telemetry)."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            self = args[0]
            # No subject is guessed from the arguments (a string may be a whole vCon): each
            # method names its vCon with _note_uuid once the uuid is checked.
            with self._telemetry.operation(name) as op:  # type: ignore[attr-defined]
                token = _current.set(op)
                try:
                    return method(*args, **kwargs)
                except InvalidVconError as exc:
                    if op.vcon_uuid is None and _is_uuid(exc.vcon_uuid):
                        op.vcon_uuid = exc.vcon_uuid
                    raise
                finally:
                    _current.reset(token)

        return wrapper

    return decorate


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
    primary and the read replica; a ``database`` given alone also serves the reads.
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
        self._database = open_database(config) if database is None else database
        # Reads that may lag; the primary itself when no replica is configured (or a
        # primary was handed in without a replica).
        if read_database is None:
            replica = database is None and config.replica
            read_database = open_database(config, replica=True) if replica else self._database
        self._read_database = read_database
        self._cache = RedisCache.from_config(config, client=redis_client)
        self._health = _CacheHealth(config.redis_cooldown)
        self._shared = False
        self._replaying = False
        self._telemetry = Telemetry(self._health.state)

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
        ``vcon`` library's and the conserver's ``Vcon``). ``chain_lists`` replaces
        the configured lists for this call (``[]``: push nowhere). Raises
        :class:`InvalidVconError` before anything is written, ``DatabaseError``
        when the database failed (nothing was saved), :class:`ChainPushError` when
        the vCon was saved but its uuid did not reach every chain list.
        """
        document = _as_document(vcon)
        vcon_uuid = validate_vcon(document, max_body_bytes=self.config.max_body_bytes)
        _note_uuid(vcon_uuid)
        tenant = tenant_for(self.config, document, vcon_uuid)
        lists = (
            self.config.chain_lists
            if chain_lists is None
            else as_name_list("chain_lists", chain_lists)
        )
        text = _dumps(document)
        try:
            version = self._retrying("save", lambda: self._save(document, vcon_uuid, tenant))
        except DatabaseError as exc:
            self._journal_and_raise(exc, [(vcon_uuid, None, text)])
        self._after_save(vcon_uuid, text, "overwrite", version, lists)
        return version

    @_observed("save_many")
    def save_many(
        self,
        vcons: Iterable[Any],
        *,
        chain_lists: Sequence[str] | None = None,
        fill_cache: bool = True,
        journal: bool = True,
    ) -> dict[str, int]:
        """Save several vCons in one database transaction; return ``{uuid: version}``.

        Every vCon is validated first: one invalid vCon means none is written.
        ``chain_lists`` replaces the configured lists (``[]``: push nowhere).
        ``fill_cache=False`` (bulk imports) updates only vCons already cached and does
        not add the others. ``journal=False`` raises a database failure without
        journaling the vCons (for callers that still hold them, like ``backfill``).
        """
        documents = [_as_document(vcon) for vcon in vcons]
        uuids = [
            validate_vcon(document, max_body_bytes=self.config.max_body_bytes)
            for document in documents
        ]
        tenants = tenants_for(self.config, documents, uuids)
        lists = (
            self.config.chain_lists
            if chain_lists is None
            else as_name_list("chain_lists", chain_lists)
        )
        try:
            versions = self._retrying("save_many", lambda: self._save_many(documents, tenants))
        except DatabaseError as exc:
            if not journal:
                raise
            entries = [(u, None, _dumps(d)) for u, d in zip(uuids, documents, strict=True)]
            self._journal_and_raise(exc, entries)
        # Every vCon is committed now: refresh every cache entry and push every uuid
        # before reporting what failed, so one broken list does not hold back the rest.
        # A uuid given twice was saved twice, in order: its version belongs to the last
        # document, which alone goes to the cache (and its uuid once to each list).
        last = dict(zip(uuids, documents, strict=True))
        mode: WriteMode = "overwrite" if fill_cache else "refresh"
        texts = {vcon_uuid: _dumps(document) for vcon_uuid, document in last.items()}
        # One Redis round trip for the whole batch; an entry Redis answered with an
        # error (or all of them, when Redis cannot be reached) goes the one-by-one way
        # below, which tells the cache's failure from a chain list's.
        redo = list(last)
        # Redis Cluster: the lists are in other hash slots than the cache keys, so the
        # uuids the batch cached are pushed after it, one RPUSH per list.
        together = lists if self._cache.pushes_in_write else ()
        try:
            self._guard("cache write", None)
            replies = self._cache.write_many(
                [(u, texts[u], mode, versions[u]) for u in last], together
            )
        except CacheError as exc:
            if exc.unavailable and not exc.skipped:
                self._health.failed(exc, "the vCons are saved in the database")
        else:
            redo = [u for u, reply in zip(last, replies, strict=True) if reply is None]
            if len(redo) < len(last):
                self._health.succeeded()
        unpushed: list[ChainPushError] = []
        cache_failure: CacheError | None = None
        redone = set(redo)
        apart = [u for u in last if u not in redone] if lists and not together else []
        failed = self._cache.push_many(apart, lists) if apart else {}
        if failed:
            self._count("errors")
            reason = "; ".join(sorted(set(failed.values())))
            unpushed += [ChainPushError(u, list(failed), reason) for u in apart]
        for vcon_uuid in redo:
            try:
                self._after_save(vcon_uuid, texts[vcon_uuid], mode, versions[vcon_uuid], lists)
            except ChainPushError as exc:
                unpushed.append(exc)
            except CacheError as exc:  # cache_errors: raise
                cache_failure = cache_failure or exc
        if unpushed:
            missed = list(dict.fromkeys(name for exc in unpushed for name in exc.lists))
            reasons = "; ".join(dict.fromkeys(exc.reason for exc in unpushed))
            raise ChainPushError(
                unpushed[0].vcon_uuid,
                missed,
                reasons,
                vcon_uuids=[exc.vcon_uuid for exc in unpushed],
            ) from unpushed[0]
        if cache_failure is not None:
            raise cache_failure
        return versions

    @_observed("save")
    def save_working_copy(self, vcon_uuid: str | UUID) -> int:
        """Save the vCon the conserver holds in Redis at ``vcon:{uuid}``; return its version.

        This is what the conserver's ``save(vcon_uuid, opts)`` does. A missing working
        copy raises :class:`VconNotFoundError`; an unreadable one :class:`CacheError`.
        """
        given = str(vcon_uuid) if isinstance(vcon_uuid, UUID) else vcon_uuid
        _note_uuid(canonical_uuid(given))  # no key is built from something not a uuid
        key = f"{CONSERVER_KEY_PREFIX}{given}"
        self._guard("working copy read", given)
        try:
            document = self._cache.read(key, given, "working copy read")
        except CacheError as exc:
            # Whatever call comes first after the cool-down is the circuit's probe: its
            # outcome must reach the breaker, or the circuit stays "probing" for good.
            self._health.failed(exc, "the vCon is not saved")
            if isinstance(exc.__cause__, ValueError | RecursionError):
                raise InvalidVconError(
                    given,
                    "(document)",
                    f"the working copy at {key} is not a JSON object: {exc.__cause__}"[:300],
                ) from exc
            raise
        self._health.succeeded()
        if document is None:
            raise VconNotFoundError(
                given, where=f"Redis (key {key}, where the conserver keeps the vCon)"
            )
        canonical = validate_vcon(
            document, expected_uuid=given, max_body_bytes=self.config.max_body_bytes
        )
        tenant = tenant_for(self.config, document, canonical)
        try:
            version = self._retrying("save", lambda: self._save(document, canonical, tenant))
        except DatabaseError as exc:
            self._journal_and_raise(exc, [(canonical, key, None)])
        # When the working copy is our cache key it already holds this document (or a
        # newer one a link wrote meanwhile): renew its TTL rather than rewrite it.
        mode: WriteMode = "touch" if key == self._cache.key(canonical) else "overwrite"
        self._after_save(canonical, _dumps(document), mode, version, self.config.chain_lists)
        return version

    @_observed("delete")
    def delete_vcon(self, vcon_uuid: str | UUID) -> bool:
        """Delete a vCon from the database, then from the cache; return whether it existed."""
        canonical = canonical_uuid(vcon_uuid)
        _note_uuid(canonical)
        # > 0: deleted now, at that version; < 0: already gone, deleted at -version (a
        # retried delete whose first answer was lost); 0: never saved through us.
        version = self._retrying("delete", lambda: self._database.delete(canonical))
        try:
            self._guard("cache delete", canonical)
            self._cache.delete(canonical, abs(version))
        except CacheError as exc:
            self._cache_failed(exc, "the vCon is deleted from the database")
        else:
            self._health.succeeded()
        return version > 0

    # --- reads ------------------------------------------------------------------

    @_observed("exists")
    def exists(self, vcon_uuid: str | UUID) -> bool:
        """Whether the vCon exists in the database.

        A vCon a save cached answers at once; anything else (a miss, a fill, the
        conserver's working copy of a vCon not saved yet) asks the database.
        """
        canonical = canonical_uuid(vcon_uuid)
        _note_uuid(canonical)
        try:
            self._guard("cache exists", canonical)
            if self._cache.holds_saved(canonical):
                self._health.succeeded()
                _note_cache("hit")
                return True
            _note_cache("miss")
        except CacheError as exc:
            self._cache_failed(exc, "asking the database instead")
        else:
            self._health.succeeded()
        return self._retrying("exists", lambda: self._database.exists(canonical))

    @_observed("search")
    def search(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        include_vcons: bool = False,
        **more_filters: Any,
    ) -> SearchPage:
        """Search the database (one round trip; the cache is not involved).

        ``filters`` and keyword filters combine (AND); see :data:`search.FILTERS`.
        Returns a :class:`SearchPage` of uuids (or vCons with ``include_vcons``),
        newest first, with a ``next_cursor`` for the next page. Bad filters raise
        :class:`SearchError` before anything is sent.
        """
        query = build_query(
            merge_filters(filters, more_filters),
            limit=limit,
            cursor=cursor,
            include_vcons=include_vcons,
            tenant_id=self.config.tenant_id,
        )
        # The replica: a vCon saved a moment ago may be missing until it replays.
        return read_page(query, self._retrying("search", lambda: self._read_database.search(query)))

    def cache_stats(self) -> dict[str, int]:
        """Counts since this instance was created: cache ``hits``, ``misses``,
        ``fills`` (misses written back) and Redis ``errors``."""
        events = self._telemetry.events()
        return {name: events[name] for name in ("hits", "misses", "fills", "errors")}

    def stats(self) -> dict[str, Any]:
        """What this instance did since it was created, for dashboards and ``-v`` output.

        ``operations``: per operation (save, save_many, get, get_many, exists, delete,
        search) the number of calls, failures, mean and max milliseconds, the latency
        histogram (bucket upper bounds in ms) and the p50/p95 bucket bounds; ``cache``:
        hits, misses, fills, errors, hit ratio; ``retries`` (database retry attempts);
        ``journaled`` (vCons put on the failed-save journal); ``circuit`` (the Redis
        circuit breaker: closed, open or probing).
        """
        return self._telemetry.stats()

    @_observed("get")
    def get_vcon(self, vcon_uuid: str | UUID, *, use_cache: bool = True) -> dict[str, Any] | None:
        """Return the vCon (from the cache, else the database), or ``None``.

        ``use_cache=False`` reads the primary database and leaves the cache alone.
        """
        canonical = canonical_uuid(vcon_uuid)
        _note_uuid(canonical)
        if use_cache:
            cached = self._cached(canonical)
            if cached is not None:
                return cached
            found, _ = self._load_and_fill([canonical], fetch=_fetch_one, operation="load")
            return found.get(canonical)
        _note_cache("bypassed")
        versioned = self._retrying("load", lambda: self._database.fetch(canonical))
        return None if versioned is None else versioned[0]

    @_observed("get_many")
    def get_many(self, vcon_uuids: Sequence[str | UUID]) -> dict[str, dict[str, Any]]:
        """Return ``{uuid: vCon}`` for those that exist; misses take one database call."""
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for vcon_uuid in dict.fromkeys(canonical_uuid(u) for u in vcon_uuids):
            cached = self._cached(vcon_uuid)
            if cached is None:
                missing.append(vcon_uuid)
            else:
                found[vcon_uuid] = cached
        if missing:
            found.update(self._load_and_fill(missing)[0])
        return found

    def warm_cache(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        **more_filters: Any,
    ) -> tuple[int, int]:
        """Cache the vCons a search finds; return ``(matched, filled)``.

        Pages through the search (uuids only, newest first); each page's vCons that are
        not cached are read in one database call and filled (never over what is
        cached). ``progress(matched, filled)`` is called after each page.
        """
        matched = filled = 0
        cursor: str | None = None
        while True:
            page = self.search(filters, limit=_WARM_PAGE, cursor=cursor, **more_filters)
            missing = [u for u in page.items if self._cached(u) is None]
            if missing:  # from the primary: a replica read fills only what the cache knows
                filled += self._load_and_fill(missing, replica=False)[1]
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
            page = self._retrying("requeue", lambda: self._database.saved_between(query))
            uuids = [str(u) for u in page.get("uuids") or []]
            if uuids:
                with cache_errors("requeue", None, self._cache.location):
                    self._cache.client.rpush(name, *uuids)
                pushed += len(uuids)
                if progress is not None:
                    progress(pushed)
            if len(uuids) < page_size or not page.get("last"):
                return pushed
            query["after"] = page["last"]

    def cache_usage(self) -> CacheUsage:
        """Count the keys under the cache prefix (SCAN), their memory, and the server's
        hit ratio (INFO). Raises :class:`CacheError` when Redis fails."""
        return self._cache.usage()

    def flush_cache(self) -> tuple[int, int]:
        """Remove the cached vCons the database holds; return ``(removed, kept)``.

        Only keys under the prefix, by SCAN in batches. Keys without a saved version
        (a conserver's working copy not saved yet) are kept and counted.
        """
        return self._cache.flush()

    # --- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Release the database client and the Redis pool."""
        with _shared_lock:
            for slot, storage in list(_shared.items()):
                if storage is self:
                    del _shared[slot]
        try:
            self._database.close()
            if self._read_database is not self._database:
                self._read_database.close()
        finally:
            self._cache.close()

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

    # --- policy helpers -----------------------------------------------------------

    def _save(self, document: Mapping[str, Any], vcon_uuid: str, tenant: Tenant | None) -> int:
        """One database save; the tenant only when one is configured (older databases
        and other ``Database`` implementations keep their two-argument call)."""
        if tenant is None:
            return self._database.save(document, vcon_uuid)
        return self._database.save(document, vcon_uuid, tenant)

    def _save_many(
        self, documents: Sequence[Mapping[str, Any]], tenants: Sequence[Tenant] | None
    ) -> dict[str, int]:
        if tenants is None:
            return self._database.save_many(documents)
        return self._database.save_many(documents, tenants)

    def _after_save(
        self,
        vcon_uuid: str,
        document: str,
        mode: WriteMode,
        version: int,
        lists: Sequence[str],
    ) -> None:
        # Redis Cluster: the lists are in other hash slots than the cache key, so the
        # uuid is pushed after the cache write rather than in the same script.
        together = lists if self._cache.pushes_in_write else ()
        try:
            self._guard(f"cache {mode}", vcon_uuid)
            self._cache.write(vcon_uuid, document, mode=mode, version=version, lists=together)
        except CacheError as exc:
            failure: CacheError | None = exc
            unpushed: dict[str, str] = {}
            if lists and exc.unavailable:
                unpushed = dict.fromkeys(lists, str(exc))
            elif lists:
                if together:
                    # Redis answered with an error: the script checked every key before
                    # it wrote anything, so do the two parts apart to see which one is broken.
                    try:
                        self._cache.write(vcon_uuid, document, mode=mode, version=version)
                        failure = None
                        self._health.succeeded()
                    except CacheError as cache_exc:
                        failure = cache_exc
                unpushed = self._cache.push(vcon_uuid, lists)
            saved = f"the vCon is saved in the database (version {version})"
            if unpushed:
                self._count("errors")
                if failure is not None:
                    self._health.failed(failure)
                raise ChainPushError(
                    vcon_uuid, list(unpushed), "; ".join(sorted(set(unpushed.values())))
                ) from exc
            if failure is not None:
                self._cache_failed(failure, saved)
        else:
            self._health.succeeded()
            _note_cache("written")
            unpushed = self._cache.push(vcon_uuid, lists) if lists and not together else {}
            if unpushed:
                self._count("errors")
                raise ChainPushError(
                    vcon_uuid, list(unpushed), "; ".join(sorted(set(unpushed.values())))
                )

    def _cached(self, vcon_uuid: str) -> dict[str, Any] | None:
        try:
            self._guard("cache read", vcon_uuid)
            cached = self._cache.read(self._cache.key(vcon_uuid), vcon_uuid)
        except CacheError as exc:
            self._cache_failed(exc, "reading the database instead")
            return None
        self._health.succeeded()
        if cached is None:
            self._count("misses")
            return None
        if not isinstance(cached, dict):
            self._cache_failed(
                CacheError(
                    f"cache read of vCon {vcon_uuid} failed: the cached value is not a JSON object",
                    operation="cache read",
                    vcon_uuid=vcon_uuid,
                ),
                "reading the database instead",
            )
            return None
        self._count("hits")
        document: dict[str, Any] = cached
        return document

    def _load_and_fill(
        self,
        missing: list[str],
        *,
        fetch: Callable[[Database, list[str]], Mapping[str, Versioned]] | None = None,
        operation: str = "load_many",
        replica: bool = True,
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """Read ``missing`` (cache misses) from the database and fill the cache; return
        them and how many were written to the cache.

        Without a replica (or ``replica=False``): one call to the primary, every vCon
        found is filled. With one, a lagging replica must neither answer "not found"
        for a vCon just saved nor put an older version in the cache, where the
        conserver would process it and save it back over the newer one. So:

        * the cache's version records for ``missing`` are read first (one round trip);
        * the replica answers for a vCon at least as new as its record (any version
          when there is no record); it fills the cache only where there is a record
          (then it is provably not older: after ``flush_cache``, or an evicted key);
        * the primary answers, and fills, for the rest: not found on the replica,
          older than the record (the replica lags), or Redis unable to say.
        """
        fetch = fetch or _fetch_many
        found: dict[str, dict[str, Any]] = {}
        filled = 0
        pending = missing
        if replica and self._read_database is not self._database:
            records = self._recorded_versions(missing)
            if records is not None:
                read = self._retrying(operation, lambda: fetch(self._read_database, missing))
                for vcon_uuid, (document, version) in read.items():
                    recorded = records.get(vcon_uuid, 0)
                    if not _not_older(version, recorded):
                        logger.debug(
                            "vCon %s: the read replica has version %d, the cache knows %d: "
                            "reading the primary",
                            vcon_uuid,
                            version,
                            recorded,
                        )
                        continue
                    if recorded:
                        filled += self._fill(vcon_uuid, document, version)
                    found[vcon_uuid] = document
                pending = [vcon_uuid for vcon_uuid in missing if vcon_uuid not in found]
        if pending:
            read = self._retrying(operation, lambda: fetch(self._database, pending))
            for vcon_uuid, (document, version) in read.items():
                filled += self._fill(vcon_uuid, document, version)
                found[vcon_uuid] = document
        return found, filled

    def _recorded_versions(self, vcon_uuids: Sequence[str]) -> dict[str, int] | None:
        """The version the cache has on record for each of ``vcon_uuids`` (absent: no
        record; < 0: deleted at that version), or ``None`` when Redis cannot tell."""
        subject = vcon_uuids[0] if len(vcon_uuids) == 1 else None
        try:
            self._guard("cache version read", subject)
            records = self._cache.versions(vcon_uuids)
        except CacheError as exc:
            self._cache_failed(exc, "reading the primary database instead of the replica")
            return None
        self._health.succeeded()
        return records

    def _fill(self, vcon_uuid: str, document: Mapping[str, Any], version: int) -> bool:
        try:
            self._guard("cache fill", vcon_uuid)
            written = self._cache.write(vcon_uuid, _dumps(document), mode="fill", version=version)
        except CacheError as exc:
            self._cache_failed(exc, "the vCon was read from the database")
            return False
        self._health.succeeded()
        if written:
            self._count("fills")
        return written

    def _journal_and_raise(
        self, exc: DatabaseError, entries: Sequence[tuple[str, str | None, str | None]]
    ) -> NoReturn:
        """A save failed for good: journal it (or say that it could not be), then raise."""
        if self._replaying:
            raise exc  # the replay reports it and keeps the journal entry
        name = self.config.journal_list
        try:
            if not name:
                raise CacheError("the journal is off (journal_list is empty)", operation="journal")
            self._cache.journal(name, entries)
        except CacheError as journal_exc:
            text = (
                f"{str(exc).rstrip('.')}; the vCon could NOT be journaled either "
                f"({journal_exc}): it is lost unless it is saved again"
            )
            journaled = False
        else:
            text = (
                f"{str(exc).rstrip('.')}; the vCon is kept on the failed-save journal "
                f"(Redis list {name}): run `conserver-supabase replay` when the database is back"
            )
            journaled = True
            self._telemetry.event("journaled", len(entries))
        logger.error("%s", text)
        error = type(exc)(text, operation=exc.operation, vcon_uuid=exc.vcon_uuid, code=exc.code)
        error.attempts, error.journaled = exc.attempts, journaled
        raise error from exc

    def replay_journal(self, progress: Callable[[int, int], None] | None = None) -> ReplayReport:
        """Save every vCon on the failed-save journal again; return what happened.

        Idempotent: an entry leaves the journal only after its vCon is saved (saving
        twice is harmless). Stops at the first database failure, keeping the rest.
        """
        name = self.config.journal_list
        client = self._cache.client
        with cache_errors("replay", None, self._cache.location):
            entries = client.lrange(name, 0, -1)
        pending = [u.decode() if isinstance(u, bytes) else u for u in entries]
        report = ReplayReport(total=len(pending))
        self._replaying = True
        try:
            for index, vcon_uuid in enumerate(pending, start=1):
                doc_key = journal_document_key(name, vcon_uuid)
                with cache_errors("replay", vcon_uuid, self._cache.location):
                    document = client.get(doc_key)
                try:
                    if document is not None:
                        self.save_vcon(json.loads(document))
                    else:
                        self.save_working_copy(vcon_uuid)
                except (VconNotFoundError, InvalidVconError) as exc:
                    report.dropped.append(f"{vcon_uuid}: {exc}")
                except DatabaseRejectedError as exc:  # kept: it may pass after a fix
                    report.kept.append(f"{vcon_uuid}: {exc}")
                    if progress is not None:
                        progress(index, len(pending))
                    continue
                except DatabaseError as exc:
                    report.error = str(exc)
                    break
                except ChainPushError as exc:  # saved; the push is reported, not retried here
                    report.replayed += 1
                    report.unpushed.append(str(exc))
                else:
                    report.replayed += 1
                with cache_errors("replay", vcon_uuid, self._cache.location):
                    client.lrem(name, 1, vcon_uuid)
                    client.delete(doc_key)
                if progress is not None:
                    progress(index, len(pending))
        finally:
            self._replaying = False
        return report

    def _guard(self, operation: str, vcon_uuid: str | None) -> None:
        """Raise a (skipped) CacheError instead of calling Redis while the circuit is open."""
        remaining = self._health.skip_for()
        if remaining is not None:
            subject = f" of vCon {vcon_uuid}" if vcon_uuid else ""
            raise CacheError(
                f"{operation}{subject} skipped: {self._cache.location} failed repeatedly "
                f"and is skipped for another {remaining:.1f} s",
                operation=operation,
                vcon_uuid=vcon_uuid,
                unavailable=True,
                skipped=True,
            )

    def _retrying[R](self, operation: str, call: Callable[[], R]) -> R:
        """Run one database call, retrying transient failures within retry_deadline."""
        return call_with_retry(
            call,
            deadline=self.config.retry_deadline,
            operation=operation,
            on_retry=lambda: self._telemetry.event("retries"),
        )

    def _count(self, name: str) -> None:
        self._telemetry.event(name)
        if name in ("hits", "misses"):
            _note_cache("hit" if name == "hits" else "miss")

    def _cache_failed(self, exc: CacheError, context: str) -> None:
        """Apply ``cache_errors``: log the incident once, or raise.

        ``context`` says what the database side did, so nobody retries a save that
        is already committed.
        """
        self._count("errors")
        _note_cache("skipped" if exc.skipped else "error")
        if self.config.cache_errors == "raise":
            raise CacheError(
                f"{str(exc).rstrip('.')}; {context}",
                operation=exc.operation,
                vcon_uuid=exc.vcon_uuid,
                unavailable=exc.unavailable,
            ) from exc
        self._health.failed(exc, context)


@dataclasses.dataclass
class ReplayReport:
    """What :meth:`SupabaseStorage.replay_journal` did."""

    total: int
    replayed: int = 0
    #: Entries removed without a save (no document left, or invalid), with the reason.
    dropped: list[str] = dataclasses.field(default_factory=list)
    #: Refused by the database (kept on the journal, e.g. until a migration is applied).
    kept: list[str] = dataclasses.field(default_factory=list)
    #: Saved, but the uuid did not reach every chain list (the ChainPushError texts).
    unpushed: list[str] = dataclasses.field(default_factory=list)
    #: Set when the database failed again: the replay stopped, the rest stays journaled.
    error: str | None = None


class _CacheHealth:
    """Redis incidents: logged once, and a circuit breaker.

    Logging: a WARNING at an incident's first failure, DEBUG for the following ones, an
    INFO when Redis answers again. So an outage under load writes a few lines, not one
    per call.

    Circuit: after ``_TRIP_AFTER`` consecutive failures to reach Redis, calls skip it
    for ``cooldown`` seconds (reads go to the database at once instead of waiting for
    ``redis_timeout`` each); then one call probes it: success closes the circuit, a
    failure opens it for another cool-down. Each change of state is logged once.
    ``cooldown`` 0 turns the circuit off.
    """

    _TRIP_AFTER: Final = 3

    def __init__(self, cooldown: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._failures = 0
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
        """Seconds Redis is still skipped, or ``None`` when a call may go to Redis."""
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

    def failed(self, exc: CacheError, context: str = "") -> None:
        with self._lock:
            self._failures += 1
            first = self._failures == 1
            opened = False
            if exc.unavailable and not exc.skipped and self.cooldown > 0:
                self._consecutive += 1
                if self._probing or (
                    not self._open_until and self._consecutive >= self._TRIP_AFTER
                ):
                    opened = not self._open_until
                    self._open_until = self.clock() + self.cooldown
                    self._probing = False
            elif not exc.unavailable:
                # Redis answered (with an error): it is reachable, so a probe succeeded.
                self._consecutive, self._open_until, self._probing = 0, 0.0, False
        what = f"{str(exc).rstrip('.')}; {context}" if context else str(exc).rstrip(".")
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
                self._consecutive,
                self.cooldown,
            )

    def succeeded(self) -> None:
        if not self._failures and not self._consecutive:  # the common case: no lock
            return
        with self._lock:
            failures, self._failures = self._failures, 0
            was_open = bool(self._open_until)
            self._consecutive, self._open_until, self._probing = 0, 0.0, False
        if failures:
            logger.info(
                "Redis answers again after %d failed cache operation(s)%s",
                failures,
                " (circuit closed)" if was_open else "",
            )


def _as_document(vcon: Any) -> dict[str, Any]:
    """Turn what callers pass (dict, JSON text, Vcon object) into a dict, never a copy
    of a copy: a dict is used as is and never modified."""
    if isinstance(vcon, dict):
        return vcon
    if isinstance(vcon, Mapping):
        return dict(vcon)
    if isinstance(vcon, str | bytes | bytearray):
        try:
            document = json.loads(vcon)
        except (ValueError, RecursionError) as exc:
            raise InvalidVconError(None, "(document)", f"is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidVconError(
                None, "(document)", f"must be a JSON object, got {type(document).__name__}"
            )
        return document
    to_dict = getattr(vcon, "to_dict", None)
    if callable(to_dict):
        document = to_dict()
        if isinstance(document, dict):
            return document
    raise InvalidVconError(
        None,
        "(document)",
        "must be a dict, JSON text or an object with to_dict(), "
        f"got {type(vcon).__module__}.{type(vcon).__qualname__}",
    )


def _fetch_one(database: Database, vcon_uuids: list[str]) -> dict[str, Versioned]:
    found = database.fetch(vcon_uuids[0])
    return {} if found is None else {vcon_uuids[0]: found}


def _fetch_many(database: Database, vcon_uuids: list[str]) -> Mapping[str, Versioned]:
    return database.fetch_many(vcon_uuids)


def _not_older(version: int, recorded: int) -> bool:
    """Whether a replica's ``version`` of a vCon is at least as new as the version the
    cache has on ``recorded`` (> 0 saved, < 0 deleted at -recorded, 0 none): the order
    the cache's own writes follow."""
    if recorded > 0:
        return version >= recorded
    if recorded < 0:
        return version > -recorded
    return True


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
