"""Redis through Sentinel: URL parsing, and a real master failover under load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase._errors import ChainPushError

from ..support.sentinel_deployment import SentinelDeployment, save_through_failover
from ..support.vcons import sample

# Redis deployments: the PostgreSQL version does not matter here.
pytestmark = pytest.mark.one_database


@pytest.fixture
def deployment() -> Iterator[SentinelDeployment]:
    """A fresh deployment per test: the failover test leaves no replica behind."""
    with SentinelDeployment() as running:
        yield running


@pytest.mark.integration
def test_a_master_killed_under_load_fails_over_without_losing_a_save(
    deployment: SentinelDeployment, database_url: str
) -> None:
    """Saves run in two threads; the master is SIGKILLed. Calls in the failover wait
    for the promoted replica (redis_failover_timeout) instead of failing: every save
    succeeds, every uuid is in the database, cached and on the chain list of the new
    master, and the slowest save is bounded by the failover timeout."""
    options: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": deployment.url,
        "redis_timeout": 0.5,
        "redis_failover_timeout": 8.0,
        "redis_cooldown": 1.0,
        "chain_lists": ["sentinel_ingress"],
        "cache_errors": "raise",
    }
    run = save_through_failover(deployment, options)

    assert run.failures == [], [repr(f) for f in run.failures[:3]]
    assert run.saves_before_kill > 0
    assert len(run.saved) > run.saves_before_kill + 5, (run.saves_before_kill, len(run.saved))
    assert run.slowest_save < options["redis_failover_timeout"], run
    assert deployment.master_port() == deployment.ports["replica"]
    missing = [u for u in run.saved if u not in run.pushed]
    assert missing == [], f"{len(missing)} of {len(run.saved)} saved uuids not on the list"
    assert run.cached == set(run.saved)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[])",
            [run.saved],
        ).fetchone()
    assert stored == (len(run.saved),)
    # A save after the failover goes to the new master as usual.
    with SupabaseStorage(options) as storage:
        after = sample()
        storage.save_vcon(after)
    assert deployment.client("replica").exists(f"vcon:{after['uuid']}")


@pytest.mark.integration
def test_a_sentinel_url_without_a_reachable_master_is_reported(database_url: str) -> None:
    """No sentinel answers: the save is kept in the database and the push is reported,
    naming where Redis was looked for."""
    options = {
        "database_url": database_url,
        "redis_url": "redis+sentinel://127.0.0.1:1/nowhere",
        "redis_timeout": 0.2,
        "redis_failover_timeout": 0.5,
        "chain_lists": ["x"],
    }
    with SupabaseStorage(options) as storage:
        vcon = sample()
        with pytest.raises(ChainPushError) as caught:
            storage.save_vcon(vcon)
        assert "'nowhere'" in str(caught.value)
        assert "127.0.0.1:1" in str(caught.value)
        assert storage.get_vcon(vcon["uuid"]) == vcon  # from the database
