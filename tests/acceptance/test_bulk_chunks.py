"""save_many in bounded statements (issue 18, first part): a batch that is merely big is
saved in chunks, a chunk that is too slow is split, and a failure that stays says what
was saved and what was not, without copying the input into the journal.

Real PostgreSQL and Redis with RedisJSON; the database's failures are injected around
the real transport (which of its calls fail, and how).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pytest
import redis

from conserver_supabase import (
    BulkSaveError,
    ChainPushError,
    DatabaseUnavailableError,
    InvalidVconError,
    StorageConfig,
    SupabaseStorage,
)
from conserver_supabase._database import Tenant
from conserver_supabase._database._postgres import PostgresDatabase
from conserver_supabase._documents import dumps

from ..support.counting import CountingDatabase

pytestmark = pytest.mark.integration


def small(index: int) -> dict[str, Any]:
    return {
        "vcon": "0.4.0",
        "uuid": str(uuid.uuid4()),
        "created_at": "2026-01-02T03:04:05+00:00",
        "subject": f"bulk {index:04d}",  # every one the same size
        "parties": [{"tel": f"+1555000{index:04d}"}],
    }


class Failing(CountingDatabase):
    """The real transport, with a failure injected into chosen calls: ``slow_above``
    fails every batch larger than that as a statement timeout (SQLSTATE 57014);
    ``fail_call`` fails that save call (1-based) as an outage."""

    def __init__(self, inner: Any, *, slow_above: int = 0, fail_call: int = 0) -> None:
        super().__init__(inner)
        self.slow_above = slow_above
        self.fail_call = fail_call
        self.sizes: list[int] = []

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        self.sizes.append(len(documents))
        if self.slow_above and len(documents) > self.slow_above:
            raise DatabaseUnavailableError(
                "save_many failed: database busy: canceling statement due to statement timeout",
                operation="save_many",
                code="57014",
            )
        if self.fail_call and len(self.sizes) == self.fail_call:
            raise DatabaseUnavailableError(
                "save_many failed: database unavailable: connection refused",
                operation="save_many",
            )
        return super().save(documents, tenants, bases, texts)


@pytest.fixture
def transport(database_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(StorageConfig.from_options({"database_url": database_url}))
    yield database
    database.close()


def storage(database: Any, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {
            "database_url": "postgresql://unused/x",
            "redis_url": redis_url,
            "retry_deadline": 0,
            **options,
        },
        database=database,
    )


def in_database(database_url: str, uuids: Sequence[str]) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT uuid::text FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[])",
            [list(uuids)],
        ).fetchall()
    return {row[0] for row in rows}


def journal_keys(redis_url: str) -> list[Any]:
    return redis.Redis.from_url(redis_url).keys("conserver_supabase:journal*")


def test_a_big_batch_is_saved_in_chunks_of_bulk_chunk(
    transport: PostgresDatabase, database_url: str, redis_json_url: str
) -> None:
    """2,500 vCons in one call with bulk_chunk 1,000: three transactions, every vCon
    saved, cached and pushed, once."""
    db = Failing(transport)
    vcons = [small(i) for i in range(2500)]
    with storage(db, redis_json_url, bulk_chunk=1000, chain_lists=["egress"]) as store:
        versions = store.save_many(vcons)
    assert db.sizes == [1000, 1000, 500]
    assert set(versions) == {v["uuid"] for v in vcons}
    assert in_database(database_url, list(versions)) == set(versions)
    r = redis.Redis.from_url(redis_json_url)
    assert r.llen("egress") == 2500
    assert r.exists(*[f"vcon:{v['uuid']}" for v in vcons[::250]]) == 10


def test_the_byte_bound_makes_chunks_too(transport: PostgresDatabase, redis_json_url: str) -> None:
    db = Failing(transport)
    vcons = [small(i) for i in range(40)]
    size = len(dumps(vcons[0]))
    with storage(db, redis_json_url, bulk_chunk_bytes=size * 10 + 5) as store:
        store.save_many(vcons)
    assert db.sizes == [10, 10, 10, 10]


def test_a_chunk_too_slow_is_split_until_it_fits(
    transport: PostgresDatabase, database_url: str, redis_json_url: str
) -> None:
    """Batches above 120 vCons time out (57014): the 500-vCon chunk is halved until each
    part fits, nothing is reported as an outage, and every vCon is saved once."""
    db = Failing(transport, slow_above=120)
    vcons = [small(i) for i in range(600)]
    with storage(db, redis_json_url, bulk_chunk=500) as store:
        versions = store.save_many(vcons)
    assert set(versions) == {v["uuid"] for v in vcons}
    assert in_database(database_url, list(versions)) == set(versions)
    saved_sizes = [n for n in db.sizes if n <= 120]
    assert sum(saved_sizes) == 600
    assert db.sizes[:3] == [500, 250, 125]  # halved until it fits
    assert journal_keys(redis_json_url) == []


def test_a_failure_that_stays_says_what_was_saved_and_what_was_not(
    transport: PostgresDatabase, database_url: str, redis_json_url: str
) -> None:
    """The second of three chunks meets an outage: the first stays saved, the call raises
    BulkSaveError with the saved versions and the unsaved uuids in order, and nothing is
    journaled (the caller holds the vCons)."""
    db = Failing(transport, fail_call=2)
    vcons = [small(i) for i in range(250)]
    order = [v["uuid"] for v in vcons]
    with storage(db, redis_json_url, bulk_chunk=100) as store:
        with pytest.raises(BulkSaveError) as caught:
            store.save_many(vcons)
        error = caught.value
        assert isinstance(error.cause, DatabaseUnavailableError)
        assert error.__cause__ is error.cause
        assert set(error.saved) == set(order[:100])
        assert error.unsaved == order[100:]
        assert in_database(database_url, order) == set(order[:100])
        assert journal_keys(redis_json_url) == []
        assert "save_many saved 100 of 250 vCons" in str(error)
        assert order[100] in str(error)
        # saving the unsaved part again, in order, completes the call
        store.save_many([v for v in vcons if v["uuid"] in set(error.unsaved)])
    assert in_database(database_url, order) == set(order)


def test_a_batch_in_one_chunk_is_journaled_as_before(
    transport: PostgresDatabase, redis_json_url: str
) -> None:
    db = Failing(transport, fail_call=1)
    vcons = [small(i) for i in range(5)]
    with storage(db, redis_json_url, bulk_chunk=100) as store:
        with pytest.raises(DatabaseUnavailableError) as caught:
            store.save_many(vcons)
        assert not isinstance(caught.value, BulkSaveError)
        assert caught.value.journaled
        assert len(store.journal_entries()) == 5


def test_a_push_that_fails_is_reported_once_for_every_chunk(
    transport: PostgresDatabase, database_url: str, redis_json_url: str
) -> None:
    """The chain list is not a list: every chunk is saved and cached, and one
    ChainPushError at the end names every vCon, with every saved version."""
    redis.Redis.from_url(redis_json_url).set("egress", "not a list")
    vcons = [small(i) for i in range(30)]
    with (
        storage(transport, redis_json_url, bulk_chunk=10, chain_lists=["egress"]) as store,
        pytest.raises(ChainPushError) as caught,
    ):
        store.save_many(vcons)
    order = [v["uuid"] for v in vcons]
    assert list(caught.value.vcon_uuids) == order
    assert set(caught.value.saved) == set(order)
    assert in_database(database_url, order) == set(order)


def test_a_real_statement_timeout_splits_the_chunk(
    fresh_database_url: str, redis_json_url: str
) -> None:
    """The database itself cuts the statement (statement_timeout from ``timeout``): a
    trigger makes any write of more than 50 documents in one statement take 3 s. The
    200-vCon chunk is split until each part is fast enough; every vCon is saved."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow_when_big() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF (SELECT count(*) FROM new_rows) > 50 THEN PERFORM pg_sleep(3); END IF;"
            " RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow_when_big AFTER INSERT ON conserver_vcon_documents"
            " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
            " EXECUTE FUNCTION slow_when_big()"
        )
    options = {"database_url": fresh_database_url, "timeout": 1.0}
    database = PostgresDatabase(StorageConfig.from_options(options))
    db = Failing(database)
    vcons = [small(i) for i in range(200)]
    with storage(db, redis_json_url, bulk_chunk=200, timeout=1.0) as store:
        versions = store.save_many(vcons)
    assert set(versions) == {v["uuid"] for v in vcons}
    assert in_database(fresh_database_url, list(versions)) == set(versions)
    assert db.sizes[:2] == [200, 100]
    assert sum(n for n in db.sizes if n <= 50) == 200


def test_ten_thousand_in_one_call(
    transport: PostgresDatabase, database_url: str, redis_json_url: str
) -> None:
    """The issue's case: 10,000 vCons in one save_many with the default bounds (twenty
    chunks), the default timeout and a chain list: all saved and pushed."""
    db = Failing(transport)
    vcons = [small(i) for i in range(10000)]
    with storage(db, redis_json_url, chain_lists=["egress"]) as store:
        versions = store.save_many(vcons)
    assert len(versions) == 10000
    assert db.sizes == [500] * 20
    assert len(in_database(database_url, list(versions))) == 10000
    assert redis.Redis.from_url(redis_json_url).llen("egress") == 10000


def test_a_database_that_is_down_is_not_split(
    transport: PostgresDatabase, redis_json_url: str
) -> None:
    """An outage (no 57014) stops the call at once: halving would only repeat the wait."""
    db = Failing(transport, fail_call=1)
    vcons = [small(i) for i in range(300)]
    with storage(db, redis_json_url, bulk_chunk=100) as store:
        with pytest.raises(BulkSaveError) as caught:
            store.save_many(vcons)
        assert db.sizes == [100]
        assert caught.value.unsaved == [v["uuid"] for v in vcons]
        assert caught.value.saved == {}


def test_a_refusal_of_one_vcon_s_data_stops_the_call_the_same_way(
    transport: PostgresDatabase, redis_json_url: str
) -> None:
    class Refusing(Failing):
        def save(self, documents: Any, *args: Any) -> dict[str, int]:
            if len(self.sizes) == 1:
                self.sizes.append(len(documents))
                raise InvalidVconError(
                    documents[0]["uuid"], "dialog[].mediatype", "the database refused it"
                )
            return super().save(documents, *args)

    db = Refusing(transport)
    vcons = [small(i) for i in range(30)]
    with (
        storage(db, redis_json_url, bulk_chunk=10) as store,
        pytest.raises(BulkSaveError) as caught,
    ):
        store.save_many(vcons)
    assert isinstance(caught.value.cause, InvalidVconError)
    assert set(caught.value.saved) == {v["uuid"] for v in vcons[:10]}
    assert caught.value.unsaved == [v["uuid"] for v in vcons[10:]]
