"""The hot tier: key names, RedisJSON or string documents, TTLs and the version fence.

Every write runs as a small Lua script (``lua/``), so what it decides (which type to
write, whether the key exists, whether the version may replace what is on record) and
what it does happen atomically on the server:

* a RedisJSON document stays one (the conserver reads ``vcon:{uuid}`` with
  ``JSON.GET``); a string (vcon-mcp's ``SETEX`` of the same key) becomes RedisJSON when
  new keys are RedisJSON, and stays a string otherwise;
* a new key is written as RedisJSON when the server has the module (or as the
  ``cache_format`` option forces), else as a JSON string;
* every write passes the version rule (``lua/fence.lua``, written once): nothing older
  than what the vCon's version key records replaces it, a delete's tombstone included;
* on one Redis the uuid is pushed onto the chain lists in the same script, after the
  cache write; every key's type is checked before anything is written, so a failed
  script has written nothing.

With Redis Cluster no command may span two hash slots. A vCon's keys share one: its
version key embeds the cache key as a hash tag (``conserver_supabase:version:{vcon:<uuid>}``
hashes like ``vcon:<uuid>``), so every script still reads and writes them together. The
chain lists live in other slots: there the uuid is pushed after the script (see
:attr:`HotTier.pushes_in_write`).

Every call goes through :class:`._guard.Guard`; ``fallback`` and ``context`` are passed
on to it (what the caller does when Redis fails).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

from .._errors import CacheError
from ._connect import Connection, response_error
from ._guard import RAISE, Guard

__all__ = ["CONSERVER_KEY_PREFIX", "CacheUsage", "Entry", "HotTier", "WriteMode"]

#: The conserver keeps the vCon it is processing at ``vcon:{uuid}`` (RedisJSON).
CONSERVER_KEY_PREFIX: Final = "vcon:"

#: See ``lua/write.lua``: overwrite (after a save), fill (after a database read),
#: touch (the save hook: the key is the working copy it read; renewed only while it
#: holds that text), refresh (bulk import: only cached keys), known (a read replica's
#: answer: only where a version is on record).
WriteMode = Literal["overwrite", "fill", "touch", "refresh", "known"]

#: What ``lua/write.lua`` answers.
WRITTEN: Final = 1
LEFT: Final = 0
FENCED: Final = -1


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One cache write: the vCon's JSON text with the database version it has."""

    vcon_uuid: str
    document: str
    mode: WriteMode
    version: int
    #: touch: what the version key held when the working copy was read (see
    #: :meth:`HotTier.read_versioned`); ``document`` is then the exact text read.
    read_version: int = 0
    #: touch, when the database saved something else than the copy read (merged with
    #: another writer's changes): the exact text read; ``document`` is what was saved,
    #: written while the key still holds that text.
    read_text: str | None = None
    #: Whether RedisJSON holds the document's numbers exactly (:mod:`._numbers`): where
    #: not, a fill leaves it to the database and a save that writes it as RedisJSON
    #: marks it so that our reads ask the database (lua/write.lua).
    exact: bool = True


@dataclasses.dataclass
class CacheUsage:
    """What :meth:`HotTier.usage` counted."""

    prefix: str
    location: str = ""  #: where Redis is (no password)
    keys: int = 0  #: keys under the prefix (cached vCons and working copies)
    saved: int = 0  #: of those, holding a version the database has
    memory_bytes: int = 0  #: MEMORY USAGE summed over those keys
    server_hits: int = 0  #: keyspace_hits of the whole server (INFO), since its start
    server_misses: int = 0
    server_memory_bytes: int = 0  #: used_memory of the whole server


class HotTier:
    """Reads and writes cached vCons; one round trip per call (with Redis Cluster: one
    per node the call touches)."""

    def __init__(
        self,
        connection: Connection,
        guard: Guard,
        *,
        prefix: str = CONSERVER_KEY_PREFIX,
        ttl: int = 3600,
        new_key_format: str = "auto",
    ) -> None:
        self._redis = connection
        self._guard = guard
        self.prefix = prefix
        self.ttl = ttl
        self.new_key_format = new_key_format
        self._write = connection.script("write")
        self._read = connection.script("read")
        self._saved = connection.script("saved")
        self._delete = connection.script("delete")
        self._has_json = connection.script("has_json")
        self._flush = connection.script("flush")
        self._feed = connection.script("feed")
        #: The command a cache hit reads the document with (:meth:`_read_plainly`).
        self._hit_command = "GET" if new_key_format == "string" else "JSON.GET"

    @property
    def pushes_in_write(self) -> bool:
        """Whether :meth:`write` and :meth:`write_many` take chain lists, pushing in the
        same script as the cache write (all or nothing). Not with Redis Cluster, where
        the lists live in other hash slots: they are pushed after the write."""
        return not self._redis.cluster

    def key(self, vcon_uuid: str) -> str:
        """Return the cache key of a vCon."""
        return f"{self.prefix}{vcon_uuid}"

    def version_key(self, vcon_uuid: str) -> str:
        """Return the key that remembers which version the cache knows of a vCon.

        Outside the ``vcon:`` namespace on purpose: whatever scans ``vcon:*`` finds only
        vCons. The cache key in braces is a hash tag: Redis Cluster puts both keys in
        the same slot, so one script can use them together.
        """
        return f"conserver_supabase:version:{{{self.prefix}{vcon_uuid}}}"

    def head_key(self, vcon_uuid: str) -> str:
        """Return the key where the change feed records a newer database version of a
        vCon whose key it had to leave (a possible working copy, ``lua/feed.lua``); in
        the vCon's hash slot, like :meth:`version_key`."""
        return f"conserver_supabase:head:{{{self.prefix}{vcon_uuid}}}"

    def _keys(self, vcon_uuid: str) -> list[str]:
        """The vCon's cache key, version key and head key (every script takes them)."""
        return [self.key(vcon_uuid), self.version_key(vcon_uuid), self.head_key(vcon_uuid)]

    def read(
        self,
        key: str,
        vcon_uuid: str,
        operation: str = "cache read",
        *,
        fallback: Any = RAISE,
        context: str | None = None,
    ) -> Any:
        """Return the JSON value stored at ``key`` (either type), or ``None`` when absent.
        A value that is not JSON is a :class:`CacheError` whose cause is the ValueError."""
        keys = [key, self.version_key(vcon_uuid), self.head_key(vcon_uuid)]
        text = self._guard.call(
            operation, vcon_uuid, lambda: self._read_plainly(keys),
            fallback=RAISE if fallback is RAISE else _MISSING, context=context,
        )  # fmt: skip
        if text is _MISSING:
            return fallback
        if text is None:
            return None
        return self._parsed(text, key, vcon_uuid, operation, fallback, context)

    def _read_plainly(self, keys: list[str]) -> Any:
        """What ``lua/read.lua`` answers, in one round trip of plain commands: the
        document (``JSON.GET`` or ``GET``, whichever type the last hit found) and
        ``MGET`` of the version key (read, so that eviction does not drop it before the
        document it guards) and the head key (set: the database changed the vCon since,
        and it answers). A key of the other type (or no RedisJSON) makes the script
        read it, once: the next hit asks for that type first."""
        command = self._hit_command
        text, marks = self._redis.read_together([(command, keys[0]), ("MGET", *keys[1:])])
        if isinstance(marks, Exception):
            raise marks
        if isinstance(text, response_error()):  # the other type, another kind, no module
            self._hit_command = "GET" if command == "JSON.GET" else "JSON.GET"
            return self._read(keys=keys)
        if isinstance(text, Exception):
            raise text
        if text is None or marks[1] is not None:
            return None
        return text

    def read_versioned(
        self, key: str, vcon_uuid: str, operation: str = "cache read"
    ) -> tuple[Any, str, int]:
        """``(value, text, version)``: the JSON value at ``key`` (``None`` when absent),
        the exact text Redis answered (what a touch compares the key with) and what the
        vCon's version key held, read together. Raises :class:`CacheError` (a value that
        is not JSON: its cause is the ValueError)."""
        keys = [key, self.version_key(vcon_uuid), self.head_key(vcon_uuid)]
        reply = self._guard.call(
            operation, vcon_uuid, lambda: self._read(keys=keys, args=["versioned"])
        )
        if reply is None:
            return None, "", 0
        value = self._parsed(reply[0], key, vcon_uuid, operation, RAISE, None)
        return value, _text(reply[0]), int(reply[1])  # decodes: it parsed

    def _parsed(
        self,
        text: str | bytes,
        key: str,
        vcon_uuid: str,
        operation: str,
        fallback: Any,
        context: str | None,
    ) -> Any:
        try:
            value = json.loads(text)  # bytes that are not UTF-8: a ValueError too
            if value is None:
                raise ValueError("it holds JSON null")
            return value
        except (ValueError, RecursionError) as exc:
            error = CacheError(
                f"{operation} of vCon {vcon_uuid} failed: {key} does not hold JSON ({exc})",
                operation=operation,
                vcon_uuid=vcon_uuid,
            )
            error.__cause__ = exc
            self._guard.failed(error, context)
            return self._guard.excuse(error, context, fallback)

    def write(
        self,
        entry: Entry,
        lists: Sequence[str] = (),
        *,
        fallback: Any = RAISE,
        context: str | None = None,
    ) -> int:
        """Write one entry, then RPUSH its uuid onto ``lists`` (only when
        :attr:`pushes_in_write`); return :data:`WRITTEN`, :data:`LEFT` or :data:`FENCED`.

        Raises :class:`CacheError` (or returns ``fallback``); then nothing was written,
        unless the failure was a lost connection or a timeout, after which the outcome
        is unknown.
        """
        self._check_lists(lists)
        keys = [*self._keys(entry.vcon_uuid), *lists]
        args = self._args(entry)
        status = self._guard.call(
            f"cache {entry.mode}", entry.vcon_uuid, lambda: self._write(keys=keys, args=args),
            fallback=fallback, context=context,
        )  # fmt: skip
        return status if status is fallback else int(status)

    def write_many(
        self, entries: Sequence[Entry], lists: Sequence[str] = (), *, context: str | None = None
    ) -> list[int | None]:
        """:meth:`write` for each entry in one round trip (a pipeline, not a transaction;
        each script is atomic on its own; with Redis Cluster one pipeline per node).

        Returns each entry's status, or ``None`` when Redis answered that entry with an
        error (redo it with :meth:`write` to see which part failed). Raises
        :class:`CacheError` when Redis could not be reached.
        """
        self._check_lists(lists)

        def send() -> list[Any]:
            if self._redis.cluster:
                return self._redis.pipelined(
                    [
                        ("EVALSHA", self._write.sha, 3, *self._keys(e.vcon_uuid),
                         *self._args(e))
                        for e in entries
                    ]
                )  # fmt: skip
            pipe = self._redis.client.pipeline(transaction=False)
            for e in entries:
                keys = [*self._keys(e.vcon_uuid), *lists]
                self._write(keys=keys, args=self._args(e), client=pipe)
            return list(pipe.execute(raise_on_error=False))

        replies = self._guard.call("cache write", None, send, context=context)
        return [None if isinstance(r, Exception) else int(r) for r in replies]

    @property
    def write_script(self) -> Any:
        """``lua/write.lua`` (redis-py's ``Script``: ``sha``, ``script``), for ``_fills.py``."""
        return self._write

    def keys_and_args(self, entry: Entry) -> list[Any]:
        """What ``lua/write.lua`` takes for ``entry`` (no chain lists): KEYS, then ARGV."""
        return [*self._keys(entry.vcon_uuid), *self._args(entry)]

    def _args(self, entry: Entry) -> list[Any]:
        return [
            entry.document,
            self.ttl,
            self.new_key_format,
            entry.mode,
            entry.vcon_uuid,
            entry.version,
            entry.read_version,
            "" if entry.read_text is None else entry.read_text,
            "1" if entry.exact else "0",
        ]

    def apply_changes(self, changes: Sequence[tuple[str, int, str]]) -> list[int]:
        """Apply changes of the change log (``(uuid, version, op)``, in log order) in one
        round trip (with Redis Cluster one per node); return what ``lua/feed.lua``
        answered for each. Raises :class:`CacheError` when Redis failed or answered an
        error for any of them (then apply them all again: applying one twice does
        nothing)."""
        shared = "1" if self.prefix == CONSERVER_KEY_PREFIX else "0"

        def send() -> list[Any]:
            if self._redis.cluster:
                return self._redis.pipelined(
                    [
                        ("EVALSHA", self._feed.sha, 3, *self._keys(u), v, op, self.ttl, shared)
                        for u, v, op in changes
                    ]
                )
            pipe = self._redis.client.pipeline(transaction=False)
            for u, v, op in changes:
                self._feed(keys=self._keys(u), args=[v, op, self.ttl, shared], client=pipe)
            return list(pipe.execute(raise_on_error=False))

        replies = self._guard.call("feed", None, lambda: Connection.checked(send()))
        return [int(r) for r in replies]

    def _check_lists(self, lists: Sequence[str]) -> None:
        if lists and not self.pushes_in_write:
            raise ValueError("with Redis Cluster, push the uuid after the write")

    def recorded(self, vcon_uuids: Sequence[str]) -> dict[str, int | None]:
        """The version each vCon's version key records (negative: see lua/fence.lua;
        ``None``: nothing on record), in one round trip. For the journal: it runs even while the
        circuit breaker skips Redis."""
        unique = list(dict.fromkeys(vcon_uuids))
        commands = [("GET", self.version_key(u)) for u in unique]
        replies = self._guard.call(
            "journal", None, lambda: Connection.checked(self._redis.pipelined(commands)),
            always=True,
        )  # fmt: skip
        pairs = zip(unique, replies, strict=True)
        return {u: (int(r) or None) if r is not None else None for u, r in pairs}

    def holds_saved(
        self, vcon_uuid: str, *, fallback: Any = RAISE, context: str | None = None
    ) -> bool:
        """Whether the cache holds the vCon as a save left it (so the database has it)."""
        keys = self._keys(vcon_uuid)
        held = self._guard.call(
            "cache exists", vcon_uuid, lambda: self._saved(keys=keys), fallback=fallback,
            context=context,
        )  # fmt: skip
        return held if held is fallback else bool(held)

    def delete(
        self, vcon_uuid: str, version: int = 0, *, fallback: Any = RAISE, context: str | None = None
    ) -> bool:
        """Remove the vCon's key after the database deleted it; return whether it was cached.

        ``version`` is the delete's version from the database (0: the vCon was not
        there). It stays as a tombstone for the TTL: no save that committed before the
        delete, and no read from before it, can put the vCon back; a save committed
        after it is cached as usual (and is not removed when it got here first).
        """
        keys = self._keys(vcon_uuid)
        removed = self._guard.call(
            "cache delete", vcon_uuid, lambda: self._delete(keys=keys, args=[version, self.ttl]),
            fallback=fallback, context=context,
        )  # fmt: skip
        return removed if removed is fallback else bool(removed)

    def forget(self, vcon_uuid: str) -> None:
        """Remove a key that never held a vCon (the doctor's probe), with its version key."""
        keys = tuple(self._keys(vcon_uuid))
        self._guard.call("probe", None, lambda: self._redis.client.delete(*keys))

    def scan(self, batch: int = 500) -> Iterator[list[str]]:
        """Yield the keys under the prefix in batches (``SCAN``, never ``KEYS``; with Redis
        Cluster on every primary in turn)."""
        pattern = _glob_escape(self.prefix) + "*"
        client = self._redis.client
        if self._redis.cluster:
            found = client.scan_iter(match=pattern, count=batch)
            while True:
                keys = self._guard.call(
                    "cache scan", None, lambda: list(itertools.islice(found, batch))
                )
                if keys:
                    yield [_text(k) for k in keys]
                if len(keys) < batch:
                    return
        cursor = 0
        while True:
            scan = functools.partial(client.scan, cursor, match=pattern, count=batch)
            cursor, keys = self._guard.call("cache scan", None, scan)
            if keys:
                yield [_text(k) for k in keys]
            if not cursor:
                return

    def usage(self, batch: int = 500) -> CacheUsage:
        """Count the keys under the prefix and what they hold (one SCAN pass). The server
        figures are summed over a cluster's primaries."""
        usage = CacheUsage(prefix=self.prefix, location=self._redis.location)
        for keys in self.scan(batch):
            commands: list[tuple[Any, ...]] = []
            for key in keys:
                commands.append(("GET", self.version_key(key[len(self.prefix) :])))
                commands.append(("MEMORY USAGE", key))
            ask = functools.partial(self._redis.pipelined, commands)
            replies = Connection.checked(self._guard.call("cache stats", None, ask))
            for version, size in zip(replies[::2], replies[1::2], strict=True):
                usage.keys += 1
                usage.saved += int(version or 0) > 0
                usage.memory_bytes += int(size or 0)
        for info in self._guard.call("cache stats", None, self._infos):
            usage.server_hits += int(info.get("keyspace_hits", 0))
            usage.server_misses += int(info.get("keyspace_misses", 0))
            usage.server_memory_bytes += int(info.get("used_memory", 0))
        return usage

    def _infos(self) -> list[dict[str, Any]]:
        client = self._redis.client
        if not self._redis.cluster:
            return [client.info()]
        per_node = client.info(target_nodes=client.PRIMARIES)
        # redis-py returns one node's INFO as is when only one primary answered.
        several = bool(per_node) and all(isinstance(v, dict) for v in per_node.values())
        return list(per_node.values()) if several else [per_node]

    def flush(self, batch: int = 500) -> tuple[int, int]:
        """Remove the cached vCons the database holds, in batches; return (removed, kept).

        Only keys under the prefix, found with ``SCAN``. A key without a saved version
        (a conserver's working copy that was never saved) is kept: removing it could
        lose a vCon. Version keys stay, so no late write of an older version can fill
        the cache afterwards. With Redis Cluster the script runs once per hash slot
        of the batch (pipelined per node).
        """
        removed = kept = 0
        for keys in self.scan(batch):
            pairs = [k for key in keys for k in (key, self.version_key(key[len(self.prefix) :]))]
            flush = functools.partial(self._flush_pairs, pairs)
            gone = self._guard.call("cache flush", None, flush)
            removed += gone
            kept += len(keys) - gone
        return removed, kept

    def _flush_pairs(self, pairs: list[str]) -> int:
        if not self._redis.cluster:
            return int(self._flush(keys=pairs))
        by_slot: dict[int, list[str]] = defaultdict(list)
        for key, version_key in zip(pairs[::2], pairs[1::2], strict=True):
            by_slot[self._redis.client.keyslot(key)] += [key, version_key]
        commands = [("EVALSHA", self._flush.sha, len(g), *g) for g in by_slot.values()]
        return sum(int(r) for r in Connection.checked(self._redis.pipelined(commands)))

    def has_json_module(self) -> bool:
        """Whether the server runs RedisJSON (what ``cache_format: auto`` writes); with
        Redis Cluster, the node owning the probe key's slot."""
        keys = [f"{self.prefix}__conserver_supabase_probe__"]
        return bool(self._guard.call("probe", None, lambda: self._has_json(keys=keys)))


#: What :meth:`HotTier.read` gets from the guard when the call failed and was excused.
_MISSING: Final[Any] = object()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
