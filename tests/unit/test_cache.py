"""The shared behaviour suites of the hot tier (tests/behaviour/cache.py) and of the
storage's cache (tests/behaviour/storage.py) on the unit suite's fakes: fake Redis
(fakeredis with Lua, no modules: it stands in for a Redis without RedisJSON) and the
in-memory database. The same assertions run on the real services in
tests/acceptance/test_cache.py and tests/acceptance/storage/test_storage.py."""

from __future__ import annotations

import pytest

from conserver_supabase.testing import MemoryDatabase

from ..behaviour.cache import (  # the shared suite, run here on the fake
    TestChainLists,
    TestKeysOfOtherTypes,
    TestModes,
    TestNewKeyFormat,
    TestReadsAndDeletes,
    TestTouch,
    TestVersionRule,
    client,
)
from ..behaviour.storage import TestCacheHitsAndMisses, TestDeletesAndTheVersionRule
from ..support.redis_kinds import RedisUnderTest, fake

__all__ = [
    "TestCacheHitsAndMisses",
    "TestChainLists",
    "TestDeletesAndTheVersionRule",
    "TestKeysOfOtherTypes",
    "TestModes",
    "TestNewKeyFormat",
    "TestReadsAndDeletes",
    "TestTouch",
    "TestVersionRule",
    "client",
]


@pytest.fixture
def redis_kind() -> RedisUnderTest:
    return fake()


@pytest.fixture
def database() -> MemoryDatabase:
    return MemoryDatabase()
