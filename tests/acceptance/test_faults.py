"""Fault injection on real services (see tests/support/fault_scenarios.py): Redis killed and
restarted or frozen, the database unreachable, the PostgREST stand-in answering 503,
hanging, resetting or slow, both stores down, and a process killed in the middle of a
save. Every save is accounted for; none the package answered for is lost."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from conserver_supabase.testing import EmbeddedRedis

from ..support.fault_scenarios import OPTIONS, SCENARIOS, Scenario, Services, run_kill, run_scenario
from ..support.faults import CuttableProxy, postgres_upstream
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import unavailable

pytestmark = pytest.mark.integration
KEY = "fault-test-key"


@pytest.fixture(scope="module")
def own_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own, since the scenarios kill and freeze it."""
    try:
        server = EmbeddedRedis(json=True).__enter__()
    except Exception as exc:  # any start failure: report, do not hide
        unavailable(f"embedded Redis did not start: {exc}")
    yield server
    server.__exit__(None, None, None)


@pytest.fixture
def services(database_url: str, own_redis: EmbeddedRedis) -> Iterator[Services]:
    own_redis.restart()  # a clean, running server for each scenario
    connect, template = postgres_upstream(database_url)
    with CuttableProxy(connect) as proxy, PostgrestStandIn(database_url, key=KEY) as stand_in:
        stand_in.hang_seconds = 1.0
        yield Services(
            database_url=database_url,
            proxied_url=template.format(port=proxy.port),
            redis=own_redis,
            proxy=proxy,
            stand_in=stand_in,
            key=KEY,
        )


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=lambda s: re.sub(r"[^a-z0-9]+", "-", s.name.lower()).strip("-")
)
def test_no_vcon_is_lost(scenario: Scenario, services: Services) -> None:
    report = run_scenario(scenario, services)
    print(report)  # the counts, with -s
    assert report.unexpected == 0, report.examples
    assert report.lost == 0, report.examples
    assert report.reads_wrong == 0  # a read that answers gives the saved vCon
    assert report.attempted > 20
    assert report.attempted == (
        report.succeeded + report.journaled + report.refused + report.unpushed
    )
    # Everything the package answered for is in the database once the journal is replayed.
    assert report.after_replay == report.kept
    # No call waits on a dead service much past the retry deadline plus one timeout.
    assert report.slowest < OPTIONS["retry_deadline"] + OPTIONS["timeout"] + 1.0
    name = scenario.name
    if name.startswith(("no fault", "Redis", "PostgREST slow")):
        assert report.journaled == report.refused == 0  # the database never failed
        assert report.reads_failed == 0  # reads fall back to the database
    if name.startswith("Redis"):
        assert report.unpushed > 0  # the chain list was down: said, not hidden
    if name.startswith(("database unreachable", "PostgREST answers", "PostgREST hangs")):
        assert report.journaled > 0  # the window outlasts the retry deadline
        assert report.refused == 0  # Redis was up: every failed save was journaled
    if name.startswith("database and Redis"):
        assert report.refused > 0  # could not be kept, and the caller was told


def test_a_process_killed_mid_save_leaves_nothing_half_written(
    database_url: str, redis_json_url: str
) -> None:
    report = run_kill(database_url, redis_json_url, rounds=8)
    print(report)
    assert report.half_written == 0, report.examples
    assert report.lost == 0, report.examples
    assert report.cached_without_row == 0
    assert report.rounds == 8
    assert report.reported_done > 0
    assert report.in_flight > 0  # the kills did land during saves
