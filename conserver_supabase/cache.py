"""The Redis hot tier: key names, RedisJSON or string documents, TTLs, chain lists.

Every method is one round trip. Writes run as small Lua scripts so that what they
decide (which type to write, whether the key already exists) and what they do
happen atomically on the server:

* an existing key keeps its type: a RedisJSON document stays one (the conserver
  reads ``vcon:{uuid}`` with ``JSON.GET``), a string stays a string;
* a new key is written as RedisJSON when the server has the module (or as the
  ``cache_format`` option forces), else as a JSON string;
* the uuid is pushed onto the chain lists in the same script, after the cache
  write; every key's type is checked before anything is written, so a failed
  script has written nothing.

With Redis Cluster (``redis+cluster://``) no command may span two hash slots. A
vCon's keys share one: its version key embeds the cache key as a hash tag
(``conserver_supabase:version:{vcon:<uuid>}`` hashes like ``vcon:<uuid>``), so every
script still reads and writes them together, atomically. The chain lists and the
journal live in other slots: there the uuid is pushed after the script (see
:attr:`RedisCache.pushes_in_write`), and journaling is a few single-key commands.

Redis errors leave this module as :class:`~conserver_supabase.errors.CacheError`
(see :func:`conserver_supabase._boundary.cache_errors`). What a failure means for
the caller (log it, raise it) is decided in :mod:`conserver_supabase.storage`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

from . import redis_urls, sentinel
from ._boundary import cache_errors
from .config import StorageConfig, redact_url
from .errors import CacheError, ConfigurationError

__all__ = [
    "CONSERVER_KEY_PREFIX",
    "CacheUsage",
    "RedisCache",
    "WriteMode",
    "connect",
    "journal_document_key",
]

#: The conserver keeps the vCon it is processing at ``vcon:{uuid}`` (RedisJSON).
CONSERVER_KEY_PREFIX: Final = "vcon:"

#: ``overwrite`` replaces the cached vCon (after a save); ``fill`` writes only when
#: the key is absent (after a database read: never clobber a concurrent save);
#: ``touch`` only renews the TTL when the key exists (the key already holds the
#: document that was just saved), else writes it; ``refresh`` replaces the cached vCon
#: only when one is cached (a bulk import: keep the cache right without filling it).
#: Every mode records the version.
WriteMode = Literal["overwrite", "fill", "touch", "refresh"]

# The version key of a vCon holds the database version the cache knows: n > 0 after a
# save or a fill of version n, -n after a delete of version n (a tombstone). Nothing
# older than what it knows replaces it: a save committed before a delete has a lower
# version than the delete, one committed after it a higher one (migration 0005).
# Every script below takes a cache key and its version key, which share a hash slot.

# KEYS[1] cache key, KEYS[2] its version key, KEYS[3..] chain lists. ARGV[1] document
# (JSON text), ARGV[2] TTL seconds, ARGV[3] format for a new key (auto|json|string),
# ARGV[4] mode, ARGV[5] uuid, ARGV[6] the version saved or read (0: unknown).
# Returns 1 when the document was written, 0 when the key was left as it was.
_WRITE: Final = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' and kind ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE cache key ' .. KEYS[1] .. ' holds a ' .. kind)
end
for i = 3, #KEYS do
  local list_kind = redis.call('TYPE', KEYS[i])['ok']
  if list_kind ~= 'none' and list_kind ~= 'list' then
    return redis.error_reply('WRONGTYPE chain list ' .. KEYS[i] .. ' holds a ' .. list_kind)
  end
end
local mode = ARGV[4]
local version = tonumber(ARGV[6])
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
local cached_version = math.abs(recorded)
local allowed
if version == 0 then
  -- a read that does not know its version: any save or delete on record knows better
  allowed = recorded == 0
elseif recorded < 0 then
  -- deleted at that version: only what committed after the delete may come back
  allowed = version > cached_version
else
  -- what committed earlier than the cached version must not win
  allowed = cached_version <= version
end
local write
if mode == 'refresh' then
  write = kind ~= 'none' and allowed
else
  write = (kind == 'none' or mode == 'overwrite') and allowed
end
if write then
  if kind == 'ReJSON-RL' or (kind == 'none' and ARGV[3] ~= 'string') then
    local reply = redis.pcall('JSON.SET', KEYS[1], '$', ARGV[1])
    if type(reply) == 'table' and reply.err then
      local missing = string.find(string.lower(reply.err), 'unknown', 1, true)
      if not (missing and kind == 'none' and ARGV[3] == 'auto') then
        if missing then
          return redis.error_reply('ERR cache_format is json but Redis lacks RedisJSON')
        end
        return redis.error_reply(reply.err)
      end
      redis.call('SET', KEYS[1], ARGV[1])
    end
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
end
if write or (mode == 'touch' and kind ~= 'none') then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if (write or mode == 'touch' or mode == 'refresh') and version > 0
    and (version > cached_version or (version == cached_version and recorded > 0)) then
  redis.call('SET', KEYS[2], version, 'EX', ARGV[2])
end
for i = 3, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[5])
end
if write then return 1 end
return 0
"""

# KEYS[1] cache key, KEYS[2] its version key. Returns the document as JSON text, or nil
# when the key is absent. Touches the version key so that LRU/LFU eviction does not
# drop it, cold, before the document it guards.
_READ: Final = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'ReJSON-RL' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE cache key ' .. KEYS[1] .. ' holds a ' .. kind)
end
redis.call('TOUCH', KEYS[2])
if kind == 'ReJSON-RL' then return redis.call('JSON.GET', KEYS[1]) end
return redis.call('GET', KEYS[1])
"""

# KEYS[1] cache key, KEYS[2] its version key. 1 when the key holds a vCon a save put
# there (a version on record, not a tombstone), else 0: a working copy the conserver
# holds does not prove the vCon is in the database.
_SAVED: Final = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'ReJSON-RL' and kind ~= 'string' then return 0 end
local version = tonumber(redis.call('GET', KEYS[2])) or 0
if version > 0 then return 1 end
return 0
"""

# KEYS[1] cache key, KEYS[2] its version key; ARGV[1] the delete's version (0: the vCon
# was not in the database), ARGV[2] TTL seconds. Returns 1 when the key was removed.
# With a version: unless a save committed after the delete is cached already, the key
# goes and the tombstone -version stays for the TTL, so no save committed before the
# delete (and no read from before it) can bring the vCon back, and any save after it
# can. Without one, only the key goes: the version on record still guards against
# late writes of older versions.
_DELETE: Final = """
local version = tonumber(ARGV[1])
if version == 0 then return redis.call('DEL', KEYS[1]) end
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
if math.abs(recorded) > version then return 0 end
local existed = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], -version, 'EX', ARGV[2])
return existed
"""

# KEYS: (cache key, version key) pairs. Removes each cache key whose version key holds a
# saved version (> 0: the database has that vCon), atomically with that check; keys
# without one (a conserver's working copy not saved yet) and the version keys stay.
# Returns how many keys it removed.
_FLUSH: Final = """
local removed = 0
for i = 1, #KEYS, 2 do
  local version = tonumber(redis.call('GET', KEYS[i + 1])) or 0
  if version > 0 then removed = removed + redis.call('UNLINK', KEYS[i]) end
end
return removed
"""

# Returns 1 when the server runs the RedisJSON module.
_HAS_JSON: Final = """
local reply = redis.pcall('JSON.TYPE', KEYS[1])
if type(reply) == 'table' and reply.err then
  if string.find(string.lower(reply.err), 'unknown', 1, true) then return 0 end
end
return 1
"""


@dataclasses.dataclass
class CacheUsage:
    """What :meth:`RedisCache.usage` counted."""

    prefix: str
    keys: int = 0  #: keys under the prefix (cached vCons and working copies)
    saved: int = 0  #: of those, holding a version the database has
    memory_bytes: int = 0  #: MEMORY USAGE summed over those keys
    server_hits: int = 0  #: keyspace_hits of the whole server (INFO), since its start
    server_misses: int = 0
    server_memory_bytes: int = 0  #: used_memory of the whole server


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def journal_document_key(journal_list: str, vcon_uuid: str) -> str:
    """Where the journal keeps a document that had no working copy in Redis."""
    return f"{journal_list}:vcon:{vcon_uuid}"


def connect(config: StorageConfig) -> Any:
    """Return a ``redis.Redis`` for ``config`` (no network traffic yet).

    Timeouts and retries are set explicitly because redis-py's defaults differ
    between 4.6 (none) and 8.x (5 s, several retries): ``redis_timeout`` bounds
    connecting and every command, and a command is retried once, at once, only
    when its connection broke (a pooled connection Redis closed), never on a timeout
    (the write script pushes onto lists: it must not run twice because it was slow).
    No health-check interval: on redis-py 4.6 a failing health check during the
    connection handshake recurses until ``RecursionError``.

    Through Sentinel (``redis+sentinel://``) the client asks the sentinels for the
    master on every new connection, and a broken connection is retried with backoff
    for up to ``redis_failover_timeout``: the time a failover takes (the sentinels
    noticing the master is down, electing, promoting a replica) is waited out instead
    of failing every call in it. A cluster (``redis+cluster://``) is waited out the
    same way (:func:`_connect_cluster`).
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    broken = (redis.exceptions.ConnectionError,)
    options: dict[str, Any] = {
        "socket_timeout": config.redis_timeout,
        "socket_connect_timeout": config.redis_timeout,
        "retry_on_timeout": False,
        "retry_on_error": list(broken),
        "client_name": "conserver-supabase",
    }
    url = config.redis_url.reveal()
    if sentinel.is_sentinel_url(url):
        return _connect_sentinel(sentinel.parse(url), options, config.redis_failover_timeout)
    if redis_urls.is_cluster_url(url):
        return _connect_cluster(
            redis_urls.parse_cluster(url), options, config.redis_failover_timeout
        )
    try:
        return redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 1, supported_errors=broken), **options
        )
    except ValueError as exc:  # redis-py's URL parser: bad db number, bad query value
        raise ConfigurationError(
            f"option 'redis_url' cannot be used: {exc}", option="redis_url"
        ) from None


def _connect_sentinel(
    target: sentinel.SentinelTarget, options: dict[str, Any], failover_timeout: float
) -> Any:
    from redis.sentinel import Sentinel

    make: Any = Sentinel  # untyped in redis-py
    sentinels = make(
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "ssl": target.ssl,
        },
    )
    return sentinels.master_for(
        target.service,
        connection_class=_master_following_connection(target.ssl),
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        retry=_failover_retry(failover_timeout, options["retry_on_error"]),
        **options,
    )


def _connect_cluster(
    target: redis_urls.ClusterTarget, options: dict[str, Any], failover_timeout: float
) -> Any:
    """redis-py's ``RedisCluster``, with the cluster-level retries replaced by ours.

    redis-py retries a command a number of times (4.6: 3, on a connection error, a
    timeout or CLUSTERDOWN; 8.x: 10 with backoff), reloading the slot layout each
    time. A failover is a span of time (the replicas noticing the master is gone after
    ``cluster-node-timeout``, electing, one taking over the slots), and a retried
    timeout can run a write twice. So redis-py makes no retries here and
    :func:`_failover_cluster_class` retries for up to ``failover_timeout`` on errors
    that say a node is gone or the layout is changing, never on a timeout.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode
    from redis.retry import Retry

    extra: dict[str, Any] = {}
    if int(redis.__version__.split(".")[0]) < 6:
        # Deprecated (with a warning) from 6.0, where ``retry`` sets the same count.
        extra["cluster_error_retry_attempts"] = 0
    make: Any = _failover_cluster_class()
    node: Any = ClusterNode  # untyped in redis-py
    client = make(
        startup_nodes=[node(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        socket_timeout=options["socket_timeout"],
        socket_connect_timeout=options["socket_connect_timeout"],
        client_name=options["client_name"],
        retry=Retry(NoBackoff(), 0),
        **extra,
    )
    client.failover_retry = _failover_retry(failover_timeout, list(_cluster_transient_errors()))
    return client


@functools.cache
def _cluster_transient_errors() -> tuple[type[Exception], ...]:
    """What a cluster client sees while a node is gone or the slots are moving: a
    refused or broken connection, CLUSTERDOWN, TRYAGAIN, and redis-py's own "cannot
    reach any node" / "slot not covered" (``RedisClusterException``)."""
    from redis import exceptions

    return (
        exceptions.ConnectionError,
        exceptions.ClusterDownError,
        exceptions.TryAgainError,
        exceptions.RedisClusterException,
    )


@functools.cache
def _failover_cluster_class() -> Any:
    """The class is made on first use: redis is imported lazily in this module."""
    from redis.cluster import RedisCluster

    base: Any = RedisCluster  # partly untyped in redis-py

    class FailoverCluster(base):  # type: ignore[misc]
        """``RedisCluster`` whose commands wait out a failover (``failover_retry``).

        Each attempt goes through redis-py's routing, which reloads the slot layout
        after a connection error, so the retry finds the promoted replica."""

        failover_retry: Any = None

        def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            parent: Any = super().execute_command
            if self.failover_retry is None:
                return parent(*args, **kwargs)
            return self.failover_retry.call_with_retry(
                lambda: parent(*args, **kwargs), lambda _error: None
            )

    return FailoverCluster


@functools.cache
def _master_following_connection(ssl: bool) -> Any:
    """redis-py's Sentinel connection, asking the sentinels for the master on every
    socket connect: redis-py retries a refused connect on the address it already had,
    which in a failover is the dead master's, until the retry gives up."""
    from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

    base: Any = SentinelManagedSSLConnection if ssl else SentinelManagedConnection

    class MasterFollowingConnection(base):  # type: ignore[misc]
        def _connect(self) -> Any:
            pool = self.connection_pool
            if pool.is_master:
                self.host, self.port = pool.get_master_address()
            return super()._connect()

    return MasterFollowingConnection


@functools.cache
def _failover_retry_class() -> Any:
    """The class is made on first use: redis is imported lazily in this module."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    class FailoverRetry(Retry):
        """Retry a broken connection with backoff until ``seconds`` have passed.

        redis-py's ``Retry`` counts attempts; a failover is a span of time, and each
        attempt can take from nothing (connection refused) to ``redis_timeout``. The
        signature follows redis-py's ``call_with_retry`` in 4.6 and 8.x.
        """

        def __init__(self, seconds: float, errors: list[type[Exception]]) -> None:
            super().__init__(ExponentialBackoff(cap=0.5, base=0.05), -1, tuple(errors))
            self.seconds = seconds

        def call_with_retry(
            self,
            do: Any,
            fail: Any,
            is_retryable: Any = None,
            with_failure_count: bool = False,
        ) -> Any:
            deadline = time.monotonic() + self.seconds
            backoff: Any = self._backoff
            backoff.reset()
            failures = 0
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    delay = backoff.compute(failures)
                    if time.monotonic() + delay >= deadline:
                        raise
                    time.sleep(delay)

    return FailoverRetry


def _failover_retry(seconds: float, errors: list[type[Exception]]) -> Any:
    return _failover_retry_class()(seconds, errors)


def redis_location(config: StorageConfig) -> str:
    """Where ``config``'s Redis is, for messages (no password)."""
    url = config.redis_url.reveal()
    if sentinel.is_sentinel_url(url):
        return sentinel.parse(url).describe()
    if redis_urls.is_cluster_url(url):
        return redis_urls.parse_cluster(url).describe()
    return f"Redis at {redact_url(url)}"


class RedisCache:
    """Reads and writes cached vCons and pushes chain lists; one round trip per call
    (with Redis Cluster: one per node the call touches)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = CONSERVER_KEY_PREFIX,
        ttl: int = 3600,
        new_key_format: str = "auto",
        location: str = "Redis",
    ) -> None:
        from redis.cluster import RedisCluster

        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.new_key_format = new_key_format
        #: Where Redis is, for messages (no password).
        self.location = location
        #: Whether ``client`` is a Redis Cluster client (no command spans two slots).
        self.cluster = isinstance(client, RedisCluster)
        self._failover: Any = getattr(client, "failover_retry", None) if self.cluster else None
        self._write = client.register_script(_WRITE)
        self._read = client.register_script(_READ)
        self._saved = client.register_script(_SAVED)
        self._delete = client.register_script(_DELETE)
        self._has_json = client.register_script(_HAS_JSON)
        self._flush = client.register_script(_FLUSH)

    @classmethod
    def from_config(cls, config: StorageConfig, client: Any = None) -> RedisCache:
        """Build the cache for ``config``; ``client`` replaces the ``redis.Redis`` it makes."""
        return cls(
            connect(config) if client is None else client,
            prefix=config.cache_key_prefix,
            ttl=config.cache_ttl,
            new_key_format=config.cache_format,
            location=redis_location(config),
        )

    @property
    def pushes_in_write(self) -> bool:
        """Whether :meth:`write` and :meth:`write_many` take chain lists, pushing in the
        same script as the cache write (all or nothing). Not with Redis Cluster, where the
        lists live in other hash slots: the caller pushes after the write
        (:meth:`push`, :meth:`push_many`)."""
        return not self.cluster

    def key(self, vcon_uuid: str) -> str:
        """Return the cache key of a vCon."""
        return f"{self.prefix}{vcon_uuid}"

    def version_key(self, vcon_uuid: str) -> str:
        """Return the key that remembers which saved version the cache holds.

        Outside the ``vcon:`` namespace on purpose: whatever scans ``vcon:*`` finds
        only vCons. The cache key in braces is a hash tag: Redis Cluster puts both
        keys in the same slot, so one script can use them together.
        """
        return f"conserver_supabase:version:{{{self.prefix}{vcon_uuid}}}"

    def read(self, key: str, vcon_uuid: str, operation: str = "cache read") -> Any:
        """Return the JSON value stored at ``key`` (either type), or ``None`` when absent."""
        with cache_errors(operation, vcon_uuid, self.location):
            text = self._read(keys=[key, self.version_key(vcon_uuid)])
        if text is None:
            return None
        try:
            value = json.loads(text)
            if value is None:
                raise ValueError("it holds JSON null")
            return value
        except (ValueError, RecursionError) as exc:
            raise CacheError(
                f"{operation} of vCon {vcon_uuid} failed: {key} does not hold JSON ({exc})",
                operation=operation,
                vcon_uuid=vcon_uuid,
            ) from exc

    def write(
        self,
        vcon_uuid: str,
        document: str,
        *,
        mode: WriteMode,
        version: int = 0,
        lists: Sequence[str] = (),
    ) -> bool:
        """Write ``document`` (JSON text) to the vCon's key, then RPUSH the uuid onto ``lists``.

        ``version`` is the database version just saved or read: the cache never goes
        back to an older version than the one it holds (two saves of one uuid can reach
        Redis in the opposite order of their commits; a read can predate a save), nor
        past a delete's tombstone. Version 0 (unknown) writes only when no version is
        on record. Returns whether the document was
        written (``fill`` and ``touch`` leave an existing key's value alone). Raises
        :class:`CacheError`; then nothing was written, unless the failure was a lost
        connection or a timeout, after which the outcome is unknown. ``lists`` only
        when :attr:`pushes_in_write`.
        """
        self._check_lists(lists)
        with cache_errors(f"cache {mode}", vcon_uuid, self.location):
            written = self._write(
                keys=[self.key(vcon_uuid), self.version_key(vcon_uuid), *lists],
                args=[document, self.ttl, self.new_key_format, mode, vcon_uuid, version],
            )
        return bool(written)

    def write_many(
        self, entries: Sequence[tuple[str, str, WriteMode, int]], lists: Sequence[str] = ()
    ) -> list[bool | None]:
        """:meth:`write` for each ``(uuid, document, mode, version)`` in one round trip
        (a pipeline, not a transaction; each script is atomic on its own; with Redis
        Cluster one pipeline per node).

        Returns per entry whether it was written, or ``None`` when Redis answered that
        entry with an error (redo it with :meth:`write` to see which part failed).
        Raises :class:`CacheError` when Redis could not be reached.
        """
        self._check_lists(lists)
        with cache_errors("cache write", None, self.location):
            if self.cluster:
                replies = self._pipelined(
                    [
                        (
                            "EVALSHA",
                            self._write.sha,
                            2,
                            self.key(vcon_uuid),
                            self.version_key(vcon_uuid),
                            document,
                            self.ttl,
                            self.new_key_format,
                            mode,
                            vcon_uuid,
                            version,
                        )
                        for vcon_uuid, document, mode, version in entries
                    ]
                )
            else:
                pipe = self.client.pipeline(transaction=False)
                for vcon_uuid, document, mode, version in entries:
                    self._write(
                        keys=[self.key(vcon_uuid), self.version_key(vcon_uuid), *lists],
                        args=[document, self.ttl, self.new_key_format, mode, vcon_uuid, version],
                        client=pipe,
                    )
                replies = pipe.execute(raise_on_error=False)
        return [None if isinstance(r, Exception) else bool(r) for r in replies]

    def _check_lists(self, lists: Sequence[str]) -> None:
        if lists and not self.pushes_in_write:
            raise ValueError("with Redis Cluster, push the uuid after the write (push())")

    def push(self, vcon_uuid: str, lists: Sequence[str]) -> dict[str, str]:
        """RPUSH the uuid onto each list separately; return ``{list: reason}`` for failures."""
        return self.push_many([vcon_uuid], lists)

    def push_many(self, vcon_uuids: Sequence[str], lists: Sequence[str]) -> dict[str, str]:
        """RPUSH the uuids (in order, one command per list) onto each list separately;
        return ``{list: reason}`` for the lists that did not get them."""
        failed: dict[str, str] = {}
        if not lists:
            return failed
        subject = vcon_uuids[0] if len(vcon_uuids) == 1 else None
        try:
            with cache_errors("chain push", subject, self.location):
                replies = self._pipelined([("RPUSH", name, *vcon_uuids) for name in lists])
        except CacheError as exc:
            return dict.fromkeys(lists, str(exc))
        for name, reply in zip(lists, replies, strict=True):
            if isinstance(reply, Exception):
                failed[name] = str(reply)
        return failed

    def journal(
        self,
        journal_list: str,
        entries: Sequence[tuple[str, str | None, str | None]],
    ) -> None:
        """Put failed saves on the journal, in one transaction.

        Each entry is ``(uuid, working copy key or None, document JSON or None)``: a
        working copy loses its TTL (so Redis cannot expire it before the replay); a
        document handed in by a caller is kept at ``{journal_list}:vcon:{uuid}``.

        With Redis Cluster these keys are in different slots, so there is no
        transaction: per entry the document (or the working copy's PERSIST) comes
        first, the list entry last. A failure in between leaves a document no list
        entry points to (nothing replays it; it stays, without a TTL), never a list
        entry without its document.
        """
        with cache_errors("journal", entries[0][0] if len(entries) == 1 else None, self.location):
            if self.cluster:
                for vcon_uuid, working_copy, document in entries:
                    if document is not None:
                        self.client.set(journal_document_key(journal_list, vcon_uuid), document)
                    if working_copy is not None:
                        self.client.persist(working_copy)
                    self.client.rpush(journal_list, vcon_uuid)
                return
            pipe = self.client.pipeline(transaction=True)
            for vcon_uuid, working_copy, document in entries:
                if document is not None:
                    pipe.set(journal_document_key(journal_list, vcon_uuid), document)
                if working_copy is not None:
                    pipe.persist(working_copy)
                pipe.rpush(journal_list, vcon_uuid)
            pipe.execute()

    def holds_saved(self, vcon_uuid: str) -> bool:
        """Whether the cache holds the vCon as a save left it (so the database has it)."""
        with cache_errors("cache exists", vcon_uuid, self.location):
            keys = [self.key(vcon_uuid), self.version_key(vcon_uuid)]
            return bool(self._saved(keys=keys))

    def versions(self, vcon_uuids: Sequence[str]) -> dict[str, int]:
        """The version on record for each of ``vcon_uuids`` that has one (< 0: deleted at
        that version), in one round trip. Raises :class:`CacheError`."""
        subject = vcon_uuids[0] if len(vcon_uuids) == 1 else None
        with cache_errors("cache version read", subject, self.location):
            commands = [("GET", self.version_key(vcon_uuid)) for vcon_uuid in vcon_uuids]
            replies = self._checked(self._pipelined(commands))
        return {
            vcon_uuid: int(reply)
            for vcon_uuid, reply in zip(vcon_uuids, replies, strict=True)
            if reply is not None
        }

    def delete(self, vcon_uuid: str, version: int = 0) -> bool:
        """Remove the vCon's key after the database deleted it; return whether it was cached.

        ``version`` is the delete's version from the database (0: the vCon was not
        there). It stays as a tombstone for the TTL: no save that committed before the
        delete, and no read from before it, can put the vCon back; a save committed
        after it is cached as usual (and is not removed when it got here first).
        """
        with cache_errors("cache delete", vcon_uuid, self.location):
            keys = [self.key(vcon_uuid), self.version_key(vcon_uuid)]
            return bool(self._delete(keys=keys, args=[version, self.ttl]))

    def scan(self, batch: int = 500) -> Iterator[list[str]]:
        """Yield the keys under the prefix in batches (``SCAN``, never ``KEYS``; with Redis
        Cluster on every primary in turn)."""
        pattern = _glob_escape(self.prefix) + "*"
        if self.cluster:
            found = self.client.scan_iter(match=pattern, count=batch)
            while True:
                with cache_errors("cache scan", None, self.location):
                    keys = list(itertools.islice(found, batch))
                if keys:
                    yield [k.decode() if isinstance(k, bytes) else k for k in keys]
                if len(keys) < batch:
                    return
        cursor = 0
        while True:
            with cache_errors("cache scan", None, self.location):
                cursor, keys = self.client.scan(cursor, match=pattern, count=batch)
            if keys:
                yield [k.decode() if isinstance(k, bytes) else k for k in keys]
            if not cursor:
                return

    def usage(self, batch: int = 500) -> CacheUsage:
        """Count the keys under the prefix and what they hold (one SCAN pass). The server
        figures are summed over a cluster's primaries."""
        usage = CacheUsage(prefix=self.prefix)
        for keys in self.scan(batch):
            uuids = [k[len(self.prefix) :] for k in keys]
            with cache_errors("cache stats", None, self.location):
                commands: list[tuple[Any, ...]] = []
                for key, vcon_uuid in zip(keys, uuids, strict=True):
                    commands.append(("GET", self.version_key(vcon_uuid)))
                    commands.append(("MEMORY USAGE", key))
                replies = self._checked(self._pipelined(commands))
            for version, size in zip(replies[::2], replies[1::2], strict=True):
                usage.keys += 1
                usage.saved += int(version or 0) > 0
                usage.memory_bytes += int(size or 0)
        with cache_errors("cache stats", None, self.location):
            if self.cluster:
                per_node = self.client.info(target_nodes=self.client.PRIMARIES)
                infos = list(per_node.values()) if _per_node(per_node) else [per_node]
            else:
                infos = [self.client.info()]
        for info in infos:
            usage.server_hits += int(info.get("keyspace_hits", 0))
            usage.server_misses += int(info.get("keyspace_misses", 0))
            usage.server_memory_bytes += int(info.get("used_memory", 0))
        return usage

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
            pairs = [(key, self.version_key(key[len(self.prefix) :])) for key in keys]
            with cache_errors("cache flush", None, self.location):
                if self.cluster:
                    by_slot: dict[int, list[str]] = defaultdict(list)
                    for key, version_key in pairs:
                        by_slot[self.client.keyslot(key)] += [key, version_key]
                    commands = [
                        ("EVALSHA", self._flush.sha, len(group), *group)
                        for group in by_slot.values()
                    ]
                    gone = sum(int(r) for r in self._checked(self._pipelined(commands)))
                else:
                    gone = int(self._flush(keys=[k for pair in pairs for k in pair]))
            removed += gone
            kept += len(keys) - gone
        return removed, kept

    def has_json_module(self) -> bool:
        """Whether the server runs RedisJSON (what ``cache_format: auto`` writes); with
        Redis Cluster, the node owning the probe key's slot."""
        with cache_errors("probe", None, self.location):
            return bool(self._has_json(keys=[f"{self.prefix}__conserver_supabase_probe__"]))

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()

    # --- helpers: single commands and pipelines ------------------------------------------

    def _pipelined(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` (each on one key, or keys of one slot) in one pipeline (with
        Redis Cluster one per node); return the replies in order, an error as its
        exception.

        With Redis Cluster, the commands that failed because a node was gone or the
        slots were moving are sent again (only those) for up to
        ``redis_failover_timeout``, and a script a node does not know (NOSCRIPT: a
        promoted replica, a restarted node; scripts are not replicated) is loaded on
        every primary and sent again. When no command got through, the error is raised.
        """
        if not self.cluster:
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))
        from redis.exceptions import NoScriptError

        transient = _cluster_transient_errors()
        replies: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))

        def attempt() -> None:
            nonlocal pending
            for _ in range(3):  # NOSCRIPT: load, send again; a third time is a bug
                pipe = self.client.pipeline(transaction=False)
                for index in pending:
                    pipe.execute_command(*commands[index])
                try:
                    results = pipe.execute(raise_on_error=False)
                except transient as exc:
                    for index in pending:
                        replies[index] = exc
                    raise
                again: list[int] = []
                error: Exception | None = None
                for index, result in zip(pending, results, strict=True):
                    replies[index] = result
                    if isinstance(result, NoScriptError):
                        again.append(index)
                    elif isinstance(result, transient):
                        again.append(index)
                        error = result
                pending = again
                if not pending:
                    return
                if error is not None:
                    raise error
                self._load_scripts()

        try:
            if self._failover is None:
                attempt()
            else:
                self._failover.call_with_retry(attempt, lambda _error: None)
        except transient:
            if len(pending) == len(commands):
                raise
        return replies

    def _load_scripts(self) -> None:
        for script in (self._write, self._flush):
            script.sha = self.client.script_load(script.script)

    @staticmethod
    def _checked(replies: list[Any]) -> list[Any]:
        """``replies``, raising the first error among them."""
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies


def _per_node(info: dict[str, Any]) -> bool:
    """Whether a cluster INFO reply is ``{node name: INFO}`` (several nodes) rather than
    one node's INFO (redis-py returns that when one primary answered)."""
    return bool(info) and all(isinstance(value, dict) for value in info.values())
