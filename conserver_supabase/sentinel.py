"""Redis Sentinel URLs: ``redis+sentinel://`` and ``rediss+sentinel://``.

::

    redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]...]/service[/db]
        [?sentinel_password=...&sentinel_username=...]

The hosts are the sentinels (port 26379 when left out), ``service`` is the name they
monitor (``sentinel monitor <service> ...``), ``db`` the database number on the master
(0 when left out). The user and password in the URL are the master's (and its
replicas'); sentinels that require a password of their own take it from the query.
``rediss+sentinel://`` uses TLS to the master and to the sentinels.

redis-py's ``from_url`` does not read these URLs (nor does ``urllib`` take a list of
hosts), so they are parsed here (with :func:`conserver_supabase.redis_urls.split`,
shared with Redis Cluster URLs); :func:`parse` raises
:class:`~conserver_supabase.errors.ConfigurationError` naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final
from urllib.parse import unquote

from . import redis_urls
from .errors import ConfigurationError

__all__ = ["SCHEMES", "SentinelTarget", "is_sentinel_url", "parse"]

SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT: Final = 26379
_QUERY_OPTIONS: Final = frozenset({"sentinel_password", "sentinel_username"})
_SERVICE: Final = re.compile(r"^[A-Za-z0-9._-]+$")


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
        hosts = redis_urls.describe_hosts(self.sentinels)
        return f"Redis master {self.service!r} (db {self.db}) via the sentinels at {hosts}"


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def _fail(problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"option 'redis_url' is not a valid Sentinel URL: {problem}; expected "
        "redis+sentinel://[:password@]host1:port1,host2:port2/service_name[/db]",
        option="redis_url",
    )


def parse(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""
    parts = redis_urls.split(
        url, schemes=SCHEMES, default_port=DEFAULT_PORT, host_kind="sentinel", fail=_fail
    )
    service, _, db_text = parts.path.partition("/")
    if not service:
        raise _fail("the service name (the master's name in 'sentinel monitor') is missing")
    service = unquote(service)
    if not _SERVICE.match(service):
        raise _fail(f"the service name {service!r} has characters other than A-Z a-z 0-9 . _ -")
    if db_text and not db_text.isdigit():
        raise _fail(f"the database number {db_text!r} is not a number")
    options = parts.query
    unknown = sorted(set(options) - _QUERY_OPTIONS)
    if unknown:
        raise _fail(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(_QUERY_OPTIONS))})")
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
