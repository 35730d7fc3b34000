"""Reads on a read replica, writes on the primary, against a real lagging standby.

The standby streams from the primary (tests/support/replica.py); a test pauses its replay to
make it lag for as long as it needs, which is what a busy Supabase read replica does
for a moment. What must hold while it lags: a save is readable at once through the
cache, a cache miss never answers "not found" or an older version than the cache has
on record, a replica read never puts an older version into the cache, and nothing is
ever written to the replica.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import DatabaseRejectedError, StorageConfig, SupabaseStorage
from conserver_supabase._database._postgres import PostgresDatabase

from ..support.postgrest_standin import PostgrestStandIn
from ..support.replica import ReplicatedPostgres, wait_until
from ..support.services import redis_client
from ..support.sql_calls import SqlCalls
from ..support.vcons import new_uuid, sample

pytestmark = pytest.mark.integration
KEY = "test-service-key"


@pytest.fixture
def pair(replicated_postgres: ReplicatedPostgres) -> Iterator[ReplicatedPostgres]:
    """The primary and standby, caught up; replay running again after the test."""
    replicated_postgres.catch_up()
    try:
        yield replicated_postgres
    finally:
        replicated_postgres.resume()


def open_storage(pair: ReplicatedPostgres, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {
            "database_url": pair.primary_url,
            "read_database_url": pair.standby_url,
            "redis_url": redis_url,
            "retry_deadline": 0,
            **options,
        }
    )


def on_standby(pair: ReplicatedPostgres, vcon_uuid: str) -> int | None:
    """The version the standby holds for the vCon (None: it has none)."""
    with psycopg.connect(pair.standby_url, autocommit=True) as conn:
        row = conn.execute("SELECT conserver_vcon_fetch(%s)", [vcon_uuid]).fetchone()
    return None if row is None or row[0] is None else int(row[0]["version"])


def cache_keys(storage: SupabaseStorage, vcon_uuid: str, redis: Any) -> tuple[str, str]:
    """The vCon's cache key and the key of the version the cache has on record."""
    cache = storage._redis._cache
    return cache.key(vcon_uuid), cache.version_key(vcon_uuid)


def test_a_save_is_readable_at_once_while_the_replica_lags(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    """A new vCon: from the cache; after the cache lost it, the replica says "not
    found" and the primary answers instead (and fills the cache)."""
    redis = redis_client(redis_json_url)
    with open_storage(pair, redis_json_url) as storage:
        pair.pause()
        document = sample()
        vcon_uuid = document["uuid"]
        assert storage.save_vcon(document) == 1
        assert on_standby(pair, vcon_uuid) is None  # the replica really lags
        assert storage.get_vcon(vcon_uuid) == document  # the cache
        assert storage.get_vcon(vcon_uuid, use_cache=False) == document  # the primary
        key, version_key = cache_keys(storage, vcon_uuid, redis)
        redis.delete(key, version_key)  # expired or evicted: the cache knows nothing
        assert storage.get_vcon(vcon_uuid) == document
        assert storage.get_many([vcon_uuid, new_uuid()]) == {vcon_uuid: document}
        assert redis.get(version_key) == b"1"  # filled from the primary
        assert on_standby(pair, vcon_uuid) is None


def test_a_lagging_replica_never_answers_older_than_the_cache_knows(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    """An update: with the cache's version record left, the replica's older version is
    refused and the primary answers; without any record the replica's answer is
    returned (a read that may lag) but never put into the cache."""
    redis = redis_client(redis_json_url)
    with open_storage(pair, redis_json_url) as storage:
        first = sample()
        vcon_uuid = first["uuid"]
        storage.save_vcon(first)
        pair.catch_up()
        pair.pause()
        second = {**first, "subject": "second version"}
        assert storage.save_vcon(second) == 2
        assert on_standby(pair, vcon_uuid) == 1
        key, version_key = cache_keys(storage, vcon_uuid, redis)

        redis.delete(key)  # evicted (or flush_cache): the version record stays
        assert storage.get_vcon(vcon_uuid) == second
        assert redis.get(version_key) == b"2"
        redis.delete(key)
        assert storage.get_many([vcon_uuid]) == {vcon_uuid: second}

        redis.delete(key, version_key)  # expired: nothing on record
        assert storage.get_vcon(vcon_uuid) == first  # the replica's (lagging) answer
        assert storage.get_many([vcon_uuid]) == {vcon_uuid: first}
        assert redis.exists(key, version_key) == 0  # not cached: it may be old

        pair.resume()
        pair.catch_up()
        assert storage.get_vcon(vcon_uuid) == second
        assert redis.exists(key) == 0


def test_a_delete_is_not_undone_by_a_lagging_replica(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    with open_storage(pair, redis_json_url) as storage:
        document = sample()
        vcon_uuid = document["uuid"]
        storage.save_vcon(document)
        pair.catch_up()
        pair.pause()
        assert storage.delete_vcon(vcon_uuid)
        assert on_standby(pair, vcon_uuid) == 1
        assert storage.get_vcon(vcon_uuid) is None  # the tombstone outranks the replica
        assert storage.get_many([vcon_uuid]) == {}


def test_the_replica_may_hold_what_the_cache_knows(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    """A replica that has the version on record answers and fills the cache (after a
    flush_cache, say), without asking the primary."""
    redis = redis_client(redis_json_url)
    with open_storage(pair, redis_json_url) as storage:
        document = sample()
        vcon_uuid = document["uuid"]
        storage.save_vcon(document)
        pair.catch_up()
        assert storage.flush_cache() == (1, 0)
        with psycopg.connect(pair.primary_url, autocommit=True) as conn:
            # Changed on the primary behind the storage's back (not replicated: paused),
            # so an answer from the primary would show.
            pair.pause()
            conn.execute(
                "UPDATE conserver_vcon_documents SET document = "
                "jsonb_set(document, '{subject}', "
                "'\"primary\"') WHERE uuid = %s",
                [vcon_uuid],
            )
        assert storage.get_vcon(vcon_uuid) == document  # the replica's
        key, _ = cache_keys(storage, vcon_uuid, redis)
        assert redis.exists(key) == 1  # and filled: it is the version on record


def test_search_reads_the_replica_and_sees_saves_once_replayed(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    with open_storage(pair, redis_json_url) as storage:
        marker = f"replica-{new_uuid()}"
        pair.pause()
        document = {**sample(), "subject": marker}
        storage.save_vcon(document)
        assert storage.search(subject=marker).items == []
        pair.resume()
        found = wait_until(
            lambda: storage.search(subject=marker).items, 10, "the search seeing the save"
        )
        assert found == [document["uuid"]]


def test_writes_exists_and_requeue_use_the_primary(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    """The standby is read-only: every write succeeding while it is paused went to the
    primary. exists and requeue see the new vCons, which only the primary has."""
    redis = redis_client(redis_json_url)
    with open_storage(pair, redis_json_url) as storage:
        pair.pause()
        since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
        one, two, three = sample(), sample(), sample()
        storage.save_vcon(one)
        assert storage.save_many([two, three]) == {two["uuid"]: 1, three["uuid"]: 1}
        assert storage.delete_vcon(three["uuid"])
        assert on_standby(pair, one["uuid"]) is None
        redis.delete(*cache_keys(storage, one["uuid"], redis))
        assert storage.exists(one["uuid"])
        assert storage.requeue("requeued", since) >= 2
        queued = {u.decode() for u in redis.lrange("requeued", 0, -1)}
        assert {one["uuid"], two["uuid"]} <= queued
        assert three["uuid"] not in queued


def test_the_replica_connection_refuses_writes_even_on_a_writable_server(
    database_url: str,
) -> None:
    """A "replica" URL that points at a writable database (a mistake) still never
    takes a write: the replica's sessions are read-only."""
    config = StorageConfig.from_options(
        {"database_url": database_url, "read_database_url": database_url}
    )
    replica = SqlCalls(PostgresDatabase(config, replica=True))
    document = sample()
    try:
        with pytest.raises(DatabaseRejectedError) as caught:
            replica.save(document, document["uuid"])
        assert caught.value.code == "25006"  # read_only_sql_transaction
        assert replica.fetch(document["uuid"]) is None  # reads work
    finally:
        replica.close()


def test_without_redis_reads_go_to_the_primary(
    pair: ReplicatedPostgres, unreachable_redis_url: str
) -> None:
    """Redis cannot say which version it knows, so the primary answers."""
    with open_storage(pair, unreachable_redis_url, redis_cooldown=0) as storage:
        first = sample()
        storage.save_vcon(first)
        pair.catch_up()
        pair.pause()
        second = {**first, "subject": "second version"}
        storage.save_vcon(second)
        assert storage.get_vcon(first["uuid"]) == second


def test_postgrest_transport_reads_the_replica_api(
    pair: ReplicatedPostgres, redis_json_url: str
) -> None:
    """``read_url``: searches and misses go to the replica's API, everything else to
    the primary's; a vCon the lagging replica lacks is read from the primary."""
    redis = redis_client(redis_json_url)
    with (
        PostgrestStandIn(pair.primary_url, KEY) as primary,
        PostgrestStandIn(pair.standby_url, KEY) as replica,
        SupabaseStorage(
            {
                "url": primary.url,
                "read_url": replica.url,
                "key": KEY,
                "redis_url": redis_json_url,
                "retry_deadline": 0,
            }
        ) as storage,
    ):
        pair.pause()
        document = sample()
        vcon_uuid = document["uuid"]
        storage.save_vcon(document)
        storage.search(subject="anything")
        assert storage.get_vcon(vcon_uuid) == document  # the cache
        redis.delete(*cache_keys(storage, vcon_uuid, redis))
        assert storage.get_vcon(vcon_uuid) == document  # replica: none; primary: found
        redis.delete(*cache_keys(storage, vcon_uuid, redis))
        assert storage.exists(vcon_uuid)
        storage.delete_vcon(vcon_uuid)

        def functions(server: PostgrestStandIn) -> list[str]:
            return [r["path"].rsplit("/", 1)[-1] for r in server.requests]

        assert functions(replica) == ["conserver_vcon_search", "conserver_vcon_read"]
        assert functions(primary) == [
            "conserver_vcon_save",
            "conserver_vcon_read",
            "conserver_vcon_exists",
            "conserver_vcon_remove",
        ]
