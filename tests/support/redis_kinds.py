"""A Redis under test: a real server (``json``: with RedisJSON, ``plain``: without) or
the unit suite's fake (fakeredis, no modules: it stands in for ``plain``). The
behaviour suites in ``tests/behaviour`` take one of these, so the same assertions run
on the fake and on real Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from conserver_supabase import SupabaseStorage
from conserver_supabase._database import Database

from .cache_api import Cache
from .services import closing_later


@dataclasses.dataclass
class RedisUnderTest:
    """``kind``: json, plain or fake; ``url``: where it is (the fake's is not reachable:
    every client comes from ``connect``)."""

    kind: str
    url: str
    connect: Callable[[], Any]
    has_json: bool

    @property
    def client(self) -> Any:
        """A raw client, for the assertions (closed when the test ends)."""
        return closing_later(self.connect())

    def cache(self, **options: Any) -> Cache:
        """The hot tier with these options (closed when the test ends)."""
        cache = Cache.from_options({"redis_url": self.url, **options}, client=self.connect())
        return closing_later(cache)

    def storage(self, database: Database, **options: Any) -> SupabaseStorage:
        """A storage on ``database`` and this Redis (closed when the test ends)."""
        store = SupabaseStorage(
            {"database_url": "postgresql://unused/x", "redis_url": self.url, **options},
            database=database,
            redis_client=self.connect(),
        )
        return closing_later(store)


def real(kind: str, url: str) -> RedisUnderTest:
    import redis

    return RedisUnderTest(kind, url, lambda: redis.Redis.from_url(url), kind == "json")


def fake() -> RedisUnderTest:
    import fakeredis

    server = fakeredis.FakeServer()
    return RedisUnderTest(
        "fake", "redis://fake.invalid:6379/0", lambda: fakeredis.FakeRedis(server=server), False
    )
