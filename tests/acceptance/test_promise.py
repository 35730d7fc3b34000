"""The rows of the second table of docs/reliability.md (tests/support/promise_scenarios.py),
each on real PostgreSQL and Redis: 0 lost, 0 stale, 0 reverted, every call within its
bound."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import pytest

from ..support.fault_scenarios import Services
from ..support.postgrest_standin import PostgrestStandIn
from ..support.promise_scenarios import SCENARIOS, PromiseRow

pytestmark = pytest.mark.integration
KEY = "promise-test-key"


@pytest.fixture
def services(database_url: str, redis_json_url: str) -> Iterator[Services]:
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        yield Services(
            database_url=database_url,
            proxied_url="",
            redis=types.SimpleNamespace(url=redis_json_url),
            proxy=None,
            stand_in=stand_in,
            key=KEY,
        )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_the_promise_holds(services: Services, scenario: Callable[..., PromiseRow]) -> None:
    row = scenario(services, count=12)
    assert row.operations > 12
    assert (row.lost, row.stale, row.reverted) == (0, 0, 0), row.examples
    assert row.slowest <= row.bound, row
