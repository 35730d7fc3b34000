"""The Redis circuit breaker on a real Redis that is killed and restarted: whichever call
comes first after the cool-down is the probe, and its outcome closes (or reopens) the
circuit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import conserver_supabase
from conserver_supabase import SupabaseStorage
from conserver_supabase.testing import EmbeddedRedis

from ..support.services import redis_client, unavailable
from ..support.vcons import sample

pytestmark = [pytest.mark.integration, pytest.mark.one_database]

COOLDOWN = 0.3


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, since it is killed and restarted."""
    try:
        with EmbeddedRedis() as server:
            yield server
    except Exception as exc:  # any start failure: report, do not hide
        unavailable(f"embedded Redis did not start: {exc}")


def test_a_hook_save_as_the_first_call_after_the_cool_down_closes_the_circuit(
    own_redis: EmbeddedRedis, database_url: str
) -> None:
    """Regression: the hook's working-copy read was the probe but never reported its
    outcome, so the circuit stayed "probing" and every later hook save raised
    ``CacheError ... skipped`` with Redis healthy."""
    opts = {
        "database_url": database_url,
        "redis_url": own_redis.url,
        "redis_cooldown": COOLDOWN,
        "redis_timeout": 0.5,
        "retry_deadline": 0,
    }
    storage = SupabaseStorage.for_options(opts)
    stored = sample()
    storage.save_vcon(stored)
    own_redis.kill()
    for _ in range(3):  # three failures in a row to reach Redis open the circuit
        assert storage.get_vcon(stored["uuid"]) == stored  # from the database
    assert storage.stats()["circuit"] == "open"

    own_redis.restart()
    time.sleep(COOLDOWN + 0.1)
    client = redis_client(own_redis.url)
    for _ in range(5):  # the first of these is the probe
        document = sample()
        client.json().set(f"vcon:{document['uuid']}", "$", document)
        conserver_supabase.save(document["uuid"], opts)
        assert client.ttl(f"vcon:{document['uuid']}") > 3000  # the cache was renewed
    assert storage.stats()["circuit"] == "closed"
