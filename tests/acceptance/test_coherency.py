"""Coherency under concurrency: threads save, read and delete a few vCons through one
storage with delays injected between each database call and the cache step after it
(see tests/support/coherency.py). No get may be older than a save or delete that completed
before it began, no deleted vCon may reappear in the cache, and after quiescence the
cache holds the database's vCon or nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ..support.coherency import blind_touch, run_coherency

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", [1, 2])
def test_no_stale_read_and_no_resurrection(database_url: str, redis_url: str, seed: int) -> None:
    report = run_coherency(
        {"database_url": database_url, "redis_url": redis_url, "pool_size": 8}, seed=seed
    )
    print(report)  # the counts, with -s
    assert report.errors == []
    assert report.cache_errors == 0  # a Redis blip would make violations expected
    assert report.violations == 0, report.examples
    # The run exercised what it claims to: every kind of operation, hits and fills.
    assert min(report.operations.values()) > 50
    assert report.cache_fills > 0
    assert report.cache_samples > 0
    # Deletes do not switch the cache off: with a fixed 60 s tombstone (before
    # migration 0005) this run got 5 hits in 1,000 gets.
    assert report.cache_hits > report.operations["get"] // 4


def test_the_checks_catch_a_cache_without_its_version_guard(
    database_url: str, redis_json_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run against a cache that forgets its versions (and tombstones) before
    every write must report stale reads: the checks can fail."""
    from conserver_supabase._redis._cache import Entry, HotTier

    original = HotTier.write

    def forgetful(self: HotTier, entry: Entry, *args: Any, **kwargs: Any) -> int:
        self._redis.client.delete(self.version_key(entry.vcon_uuid))
        return original(self, entry, *args, **kwargs)

    monkeypatch.setattr(HotTier, "write", forgetful)
    report = run_coherency(
        {"database_url": database_url, "redis_url": redis_json_url, "pool_size": 8}
    )
    print(report)
    assert report.errors == []
    assert report.stale_gets > 0, report
    assert report.stale_cache + report.reappeared > 0, report


def test_the_checks_catch_a_cache_that_keeps_deleted_vcons(
    database_url: str, redis_json_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run against a cache that is never told about deletes must report
    deleted vCons still served: the checks can fail."""
    from conserver_supabase._redis._cache import HotTier

    monkeypatch.setattr(HotTier, "delete", lambda self, vcon_uuid, version=0, **kw: False)
    report = run_coherency(
        {"database_url": database_url, "redis_url": redis_json_url, "pool_size": 8}
    )
    print(report)
    assert report.errors == []
    assert report.reappeared > 0, report
    assert report.stale_gets > 0, report


def test_the_checks_catch_a_hook_save_that_stamps_a_body_it_did_not_save(
    database_url: str, redis_json_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run against the save hook's old touch (renew the TTL and stamp the
    version on whatever the key holds): here each touch is handed the key's current text
    and version as if the hook had read them, so it never sees the key change. The
    checks must report stale reads (0b9ddf4: 5 of 10 uuids stale in a concurrency run)."""
    blind_touch(monkeypatch)
    report = run_coherency(
        {"database_url": database_url, "redis_url": redis_json_url, "pool_size": 8}
    )
    print(report)
    assert report.errors == []
    assert report.operations["put"] > 100  # hook saves ran
    assert report.stale_gets > 0, report
    assert report.stale_cache > 0, report
