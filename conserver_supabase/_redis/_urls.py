"""Redis URLs naming several hosts, which redis-py's ``from_url`` cannot read.

::

    redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]...]/service[/db]
    redis+cluster://[[user]:password@]host1[:port1][,host2[:port2]...][/0]

(and ``rediss+...`` for TLS).

Sentinel: the hosts are the sentinels (port 26379 when left out), ``service`` is the
name they monitor (``sentinel monitor <service> ...``), ``db`` the database number on
the master (0 when left out). The user and password in the URL are the master's (and
its replicas'); sentinels that require a password of their own take it from the query
(``?sentinel_password=...&sentinel_username=...``). ``rediss+sentinel://`` uses TLS to
the master and to the sentinels.

Cluster: the hosts are some of the cluster's nodes, any of them (port 6379 when left
out): the client asks them for the whole layout and follows it as it changes. A cluster
has only database 0. The user and password are the nodes'.

The parts every such URL shares (scheme, user and password, the host list, the path
and the query) are split by :func:`split`; :func:`parse_sentinel` and
:func:`parse_cluster` raise :class:`~conserver_supabase.ConfigurationError` naming
what is wrong. Nothing here imports redis-py: the configuration parses these URLs too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from .._errors import ConfigurationError

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "ClusterTarget",
    "MultiHostUrl",
    "SentinelTarget",
    "is_cluster_url",
    "is_sentinel_url",
    "parse_cluster",
    "parse_sentinel",
    "split",
]

CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
CLUSTER_DEFAULT_PORT: Final = 6379


@dataclasses.dataclass(frozen=True, slots=True)
class MultiHostUrl:
    """The parts of a multi-host URL, not checked beyond the host syntax."""

    scheme: str  #: lower case
    hosts: tuple[tuple[str, int], ...]
    path: str  #: without the leading and trailing ``/``
    query: dict[str, list[str]]
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def describe_hosts(hosts: tuple[tuple[str, int], ...]) -> str:
    """``host:port,...`` (IPv6 hosts in brackets), for messages."""
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)


def split(
    url: str,
    *,
    schemes: tuple[str, ...],
    default_port: int,
    host_kind: str,
    fail: Callable[[str], ConfigurationError],
) -> MultiHostUrl:
    """Split ``url`` (one of ``schemes``) into its parts; ``fail(problem)`` makes the
    error to raise, ``host_kind`` ("sentinel", "node") names a host in it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        raise fail(f"it must start with {' or '.join(s + '://' for s in schemes)}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts, userinfo = netloc, ""
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts.strip(","):
        raise fail(f"it names no {host_kind} host")
    named = [part for part in hosts.split(",") if part]
    parsed = tuple(
        _host(part, number, len(named), default_port, host_kind, fail, secret="@" in url)
        for number, part in enumerate(named, 1)
    )
    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise fail("the query string cannot be parsed") from None
    return MultiHostUrl(
        scheme=scheme.lower(),
        hosts=parsed,
        path=path.strip("/"),
        query=options,
        username=username,
        password=password,
    )


def _host(
    part: str,
    number: int,
    count: int,
    default_port: int,
    host_kind: str,
    fail: Callable[[str], ConfigurationError],
    *,
    secret: bool,
) -> tuple[str, int]:
    # With a password in the URL, a raw / ? or @ in it moves the split: the "address"
    # may then be part of the password, so it is named by its place, never quoted.
    label = (
        f"{host_kind} address {number} of {count}" if secret else f"{host_kind} address {part!r}"
    )
    hint = " (a password with / ? # or @ must be percent-encoded: %2F %3F %23 %40)"
    hint = hint if secret else ""
    try:
        parts = urlsplit(f"//{part}")
        host, port = parts.hostname, parts.port
    except ValueError:
        raise fail(f"{label} has an invalid port{hint}") from None
    if not host or parts.username is not None or parts.path:
        raise fail(f"{label} is not host[:port]{hint}")
    return host, default_port if port is None else port


# --- Redis Sentinel ---------------------------------------------------------------------

SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
SENTINEL_DEFAULT_PORT: Final = 26379
_SENTINEL_QUERY: Final = frozenset({"sentinel_password", "sentinel_username"})
_SENTINEL_SERVICE: Final = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclasses.dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a Sentinel URL names. ``repr`` leaves the passwords out."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    ssl: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = dataclasses.field(default=None, repr=False)

    def describe(self) -> str:
        """Where the master is found, for messages (no password)."""
        hosts = describe_hosts(self.sentinels)
        return f"Redis master {self.service!r} (db {self.db}) via the sentinels at {hosts}"


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def _sentinel_fail(problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"option 'redis_url' is not a valid Sentinel URL: {problem}; expected "
        "redis+sentinel://[:password@]host1:port1,host2:port2/service_name[/db]",
        option="redis_url",
    )


def parse_sentinel(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""
    parts = split(
        url,
        schemes=SENTINEL_SCHEMES,
        default_port=SENTINEL_DEFAULT_PORT,
        host_kind="sentinel",
        fail=_sentinel_fail,
    )
    service, _, db_text = parts.path.partition("/")
    if not service:
        raise _sentinel_fail(
            "the service name (the master's name in 'sentinel monitor') is missing"
        )
    service = unquote(service)
    if not _SENTINEL_SERVICE.match(service):
        raise _sentinel_fail(
            f"the service name {service!r} has characters other than A-Z a-z 0-9 . _ -"
        )
    if db_text and not db_text.isdigit():
        raise _sentinel_fail(f"the database number {db_text!r} is not a number")
    options = parts.query
    unknown = sorted(set(options) - _SENTINEL_QUERY)
    if unknown:
        raise _sentinel_fail(
            f"unknown option {unknown[0]!r} (known: {', '.join(sorted(_SENTINEL_QUERY))})"
        )
    return SentinelTarget(
        sentinels=parts.hosts,
        service=service,
        db=int(db_text) if db_text else 0,
        ssl=parts.scheme == "rediss+sentinel",
        username=parts.username,
        password=parts.password,
        sentinel_username=options.get("sentinel_username", [None])[-1],
        sentinel_password=options.get("sentinel_password", [None])[-1],
    )


# --- Redis Cluster ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterTarget:
    """What a Cluster URL names. ``repr`` leaves the password out."""

    nodes: tuple[tuple[str, int], ...]
    ssl: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def describe(self) -> str:
        """Where the cluster is, for messages (no password)."""
        return f"Redis Cluster via {describe_hosts(self.nodes)}"


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def _cluster_fail(problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"option 'redis_url' is not a valid Redis Cluster URL: {problem}; expected "
        "redis+cluster://[[user]:password@]host1:port1[,host2:port2...][/0]",
        option="redis_url",
    )


def parse_cluster(url: str) -> ClusterTarget:
    """Parse a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    parts = split(
        url,
        schemes=CLUSTER_SCHEMES,
        default_port=CLUSTER_DEFAULT_PORT,
        host_kind="node",
        fail=_cluster_fail,
    )
    if parts.path not in ("", "0"):
        raise _cluster_fail(f"a cluster has only database 0, not {parts.path!r}")
    if parts.query:
        raise _cluster_fail(f"unknown option {sorted(parts.query)[0]!r} (none are known)")
    return ClusterTarget(
        nodes=parts.hosts,
        ssl=parts.scheme == "rediss+cluster",
        username=parts.username,
        password=parts.password,
    )
