"""Connecting to Redis (one server, Sentinel, Cluster) and sending requests of several
commands: :class:`Connection` is the only holder of a redis-py client.

:func:`connect` sets timeouts and retries explicitly (redis-py 4.6 and 8.x differ),
follows a Sentinel master across a failover and waits out a cluster's failover for up to
``redis_failover_timeout``. :meth:`Connection.pipelined` sends many commands in one
round trip (with Redis Cluster one per node, again only the commands a failover broke,
loading scripts a node does not know). :meth:`Connection.script` loads a Lua script of
``lua/``, the version rule of ``lua/fence.lua`` first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from .._config import StorageConfig, redact_url
from .._errors import ConfigurationError
from . import _urls

__all__ = ["Connection", "connect", "location"]


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
    if _urls.is_sentinel_url(url):
        return _connect_sentinel(_urls.parse_sentinel(url), options, config.redis_failover_timeout)
    if _urls.is_cluster_url(url):
        return _connect_cluster(_urls.parse_cluster(url), options, config.redis_failover_timeout)
    try:
        return redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 1, supported_errors=broken), **options
        )
    except ValueError as exc:  # redis-py's URL parser: bad db number, bad query value
        raise ConfigurationError(
            f"option 'redis_url' cannot be used: {exc}", option="redis_url"
        ) from None


def _connect_sentinel(
    target: _urls.SentinelTarget, options: dict[str, Any], failover_timeout: float
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
    target: _urls.ClusterTarget, options: dict[str, Any], failover_timeout: float
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
    refused or broken connection, CLUSTERDOWN, TRYAGAIN, redis-py's own "cannot reach
    any node" / "slot not covered" (``RedisClusterException``) and "TTL exhausted"
    (``ClusterError``: its redirections ran out while a slot was moving; the command
    did not run)."""
    from redis import exceptions

    return (
        exceptions.ConnectionError,
        exceptions.ClusterDownError,
        exceptions.TryAgainError,
        exceptions.RedisClusterException,
        exceptions.ClusterError,
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


@functools.cache
def _pool_takes_a_command_name() -> bool:
    """redis-py before 5.3 requires ``get_connection(command_name)``; later versions
    deprecate the argument (with a warning)."""
    import redis

    major, minor = (int(part) for part in redis.__version__.split(".")[:2])
    return (major, minor) < (5, 3)


@functools.cache
def response_error() -> type[Exception]:
    """redis-py's ``ResponseError`` (an error reply), imported once: a cache hit tests
    its replies against it, and an import statement per call costs a hit's time."""
    from redis.exceptions import ResponseError

    return ResponseError


def _command_name(name: Any) -> tuple[Any, ...]:
    return (name,) if _pool_takes_a_command_name() else ()


def packed(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """``commands`` (of str, bytes, int and float arguments) as RESP, what redis-py's
    ``pack_commands`` writes, in a fifth of its time (a cache hit's cost: issue 18)."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for argument in command:
            if isinstance(argument, str):
                data = argument.encode()
            elif isinstance(argument, int | float) and not isinstance(argument, bool):
                data = repr(argument).encode()
            else:
                data = bytes(argument)
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _dropping(connection: Any) -> Any:
    """The retry's failure callback: the broken connection is closed before it is
    used again (as redis-py does for a command)."""

    def drop(_error: Exception) -> None:
        connection.disconnect()

    return drop


def location(config: StorageConfig) -> str:
    """Where ``config``'s Redis is, for messages (no password)."""
    url = config.redis_url.reveal()
    if _urls.is_sentinel_url(url):
        return _urls.parse_sentinel(url).describe()
    if _urls.is_cluster_url(url):
        return _urls.parse_cluster(url).describe()
    return f"Redis at {redact_url(url)}"


@functools.cache
def _lua(name: str) -> str:
    """The text of ``lua/<name>.lua``, after the version rule where it uses it."""
    folder = resources.files("conserver_supabase._redis") / "lua"
    text = (folder / f"{name}.lua").read_text("utf-8")
    if "fence(" in text:
        text = (folder / "fence.lua").read_text("utf-8") + "\n" + text
    return text


class Connection:
    """A redis-py client (``redis.Redis`` or ``RedisCluster``) with where it is, its
    scripts, and pipelines that follow a cluster's failovers."""

    def __init__(self, client: Any, location: str) -> None:
        from redis.cluster import RedisCluster

        #: The redis-py client. Only this package's modules use it, inside Guard.call.
        self.client = client
        #: Where Redis is, for messages (no password).
        self.location = location
        #: Whether ``client`` is a Redis Cluster client (no command spans two slots).
        self.cluster = isinstance(client, RedisCluster)
        self._failover: Any = getattr(client, "failover_retry", None) if self.cluster else None
        self._scripts: list[Any] = []

    def script(self, name: str) -> Any:
        """Register ``lua/<name>.lua`` (a redis-py ``Script``: EVALSHA, loaded on NOSCRIPT)."""
        script = self.client.register_script(_lua(name))
        self._scripts.append(script)
        return script

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()

    def pipelined(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
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
        replies: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))

        def attempt() -> None:
            nonlocal pending
            for _ in range(3):  # NOSCRIPT: load, send again; a third time is a bug
                pending, error = self._send_pending(commands, pending, replies)
                if not pending:
                    return
                if error is not None:  # the failover retry sends the pending ones again
                    raise error
                self._load_scripts()

        try:
            if self._failover is None:
                attempt()
            else:
                self._failover.call_with_retry(attempt, lambda _error: None)
        except _cluster_transient_errors():
            if len(pending) == len(commands):
                raise
        return replies

    def read_together(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send read-only ``commands`` (keys of one slot) in one round trip and return
        their replies in order, an error reply as its exception.

        On one server or through Sentinel this is one write of the packed commands on
        one pooled connection and one read per reply, without redis-py's pipeline object
        (a cache hit's cost: issue 18). Every reply is read, an error reply too, so the
        connection stays in step; anything else (a timeout, a broken connection) drops
        the connection. A broken connection is retried as the client retries a command
        (its ``retry``: once, or across a Sentinel failover). With Redis Cluster it is
        :meth:`pipelined`, which routes the commands and follows the slots.
        """
        if self.cluster:
            return self.pipelined(commands)
        refused = response_error()
        pool = self.client.connection_pool
        connection = pool.get_connection(*_command_name(commands[0][0]))

        def attempt() -> list[Any]:
            connection.send_packed_command([packed(commands)])
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except refused as error:
                    replies.append(error)
            return replies

        try:
            return list(connection.retry.call_with_retry(attempt, _dropping(connection)))
        except BaseException:
            connection.disconnect()  # a reply may be unread: never reuse it
            raise
        finally:
            pool.release(connection)

    def dedicated(self) -> Any:
        """A connection of the pool for one user's own requests (the deferred fills,
        ``_fills.py``); given back with ``client.connection_pool.release``. Not with Redis
        Cluster."""
        return self.client.connection_pool.get_connection(*_command_name("EVALSHA"))

    def _send_pending(
        self, commands: Sequence[tuple[Any, ...]], pending: list[int], replies: list[Any]
    ) -> tuple[list[int], Exception | None]:
        """Send the ``pending`` commands once, filling ``replies``; return those to send
        again (a node was gone or the slots were moving, or NOSCRIPT) and the error that
        says a node is gone, if one did. Raises when the whole pipeline failed."""
        from redis.exceptions import NoScriptError

        transient = _cluster_transient_errors()
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
            if isinstance(result, (NoScriptError, *transient)):
                again.append(index)
                error = result if isinstance(result, transient) else error
        return again, error

    def _load_scripts(self) -> None:
        for script in self._scripts:
            script.sha = self.client.script_load(script.script)

    @staticmethod
    def checked(replies: list[Any]) -> list[Any]:
        """``replies``, raising the first error among them."""
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
