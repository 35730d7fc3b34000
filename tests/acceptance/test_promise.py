"""The rows of the second table of docs/reliability.md (tests/support/promise_scenarios.py),
each on real PostgreSQL and Redis: 0 lost, 0 stale, 0 reverted, every call within its
bound."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conserver_supabase.testing import EmbeddedRedis

from ..support.coherency import blind_touch
from ..support.fault_scenarios import Services
from ..support.pgbouncer import pgbouncer_binary
from ..support.postgrest_standin import PostgrestStandIn
from ..support.promise_direct import NEEDS_PGBOUNCER
from ..support.promise_scenarios import KILLS_REDIS, SCENARIOS, PromiseRow, hook_race
from ..support.services import unavailable

pytestmark = pytest.mark.integration
KEY = "promise-test-key"


@pytest.fixture(params=SCENARIOS, ids=lambda s: s.__name__)
def scenario(request: pytest.FixtureRequest) -> Callable[..., PromiseRow]:
    chosen: Callable[..., PromiseRow] = request.param
    return chosen


@pytest.fixture
def services(
    scenario: Callable[..., PromiseRow], database_url: str, redis_json_url: str
) -> Iterator[Services]:
    """The shared Redis, or a Redis of the scenario's own when it kills Redis; a
    scenario that starts a PgBouncer skips on a laptop without one (fails in CI)."""
    if scenario.__name__ in NEEDS_PGBOUNCER and pgbouncer_binary() is None:
        unavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    with contextlib.ExitStack() as stack:
        redis: Any = types.SimpleNamespace(url=redis_json_url)
        if scenario.__name__ in KILLS_REDIS:
            try:
                redis = stack.enter_context(EmbeddedRedis())
            except Exception as exc:  # any start failure: report, do not hide
                unavailable(f"embedded Redis did not start: {exc}")
        stand_in = stack.enter_context(PostgrestStandIn(database_url, key=KEY))
        yield Services(database_url, "", redis, None, stand_in, KEY)


def test_the_promise_holds(services: Services, scenario: Callable[..., PromiseRow]) -> None:
    row = scenario(services, count=12)
    assert row.operations > 12
    assert (row.lost, row.stale, row.reverted) == (0, 0, 0), row.examples
    assert row.slowest <= row.bound, row


def test_the_hook_race_row_catches_the_old_touch(
    database_url: str, redis_json_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook_race row against the save hook's old touch must count stale reads (the
    old build itself: 70-74 in 60 rounds, see docs/reliability.md)."""
    blind_touch(monkeypatch)
    redis: Any = types.SimpleNamespace(url=redis_json_url)
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        row = hook_race(Services(database_url, "", redis, None, stand_in, KEY), count=4)
    assert (row.lost, row.reverted) == (0, 0), row.examples
    assert row.stale > 0, row
