"""Every database call returns or raises within ``timeout`` plus the retry budget,
whatever the server or the network does (a server that accepts and never answers, a
connection that goes silent mid-call, a lock held by another connection), on real
PostgreSQL and real Redis; and a refusal that will not pass by itself is raised as what
it is, with the fix, neither retried nor journaled."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from conserver_supabase import DatabaseRejectedError, DatabaseUnavailableError, SupabaseStorage

from ..support.faults import CuttableProxy, FaultServer, postgres_upstream
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client
from ..support.vcons import sample

JOURNAL = "conserver_supabase:journal"
#: What a bound may be passed by: the cut (a cancel, then the socket), scheduling on
#: a busy 2-CPU machine.
SLACK = 1.5
BOUNDS = {"timeout": 1.0, "retry_deadline": 1.0}


def bounded_storage(database_url: str, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {"database_url": database_url, "redis_url": redis_url, **BOUNDS, **options}
    )


def assert_within_bound(started: float) -> None:
    elapsed = time.monotonic() - started
    bound = BOUNDS["timeout"] + BOUNDS["retry_deadline"] + SLACK
    assert elapsed < bound, f"took {elapsed:.1f} s, bound {bound:g} s"


@pytest.fixture
def proxy(database_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    upstream, template = postgres_upstream(database_url)
    with CuttableProxy(upstream) as forwarder:
        yield forwarder, template.format(port=forwarder.port)


@contextlib.contextmanager
def vcons_locked(database_url: str) -> Iterator[None]:
    """Another connection holds a lock on the vcons table that every save waits for."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE public.vcons IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def as_user(database_url: str, user: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rpartition('@')[2]}"))


class TestDirectTransport:
    def test_a_server_that_accepts_and_never_answers_fails_within_the_bound(
        self, redis_json_url: str
    ) -> None:
        """The connection never completes: the pool wait is bounded by ``timeout``, the
        retries by ``retry_deadline``; the save is transient, so it is journaled."""
        with FaultServer("silent") as silent:
            url = f"postgresql://postgres@127.0.0.1:{silent.url.split(':')[2].split('/')[0]}/db"
            started = time.monotonic()
            with (
                bounded_storage(url, redis_json_url) as store,
                pytest.raises(DatabaseUnavailableError) as caught,
            ):
                store.save_vcon(sample())
            assert_within_bound(started)
        assert "no connection within timeout 1 s" in str(caught.value)
        assert caught.value.journaled is True

    def test_a_connection_that_goes_silent_mid_call_is_cut_at_the_deadline(
        self, proxy: tuple[CuttableProxy, str], redis_json_url: str, database_url: str
    ) -> None:
        """Connected, then the network holds every byte: the call is cancelled, then its
        socket shut down, at the deadline; the cut connection is not reused."""
        forwarder, url = proxy
        first, second = sample(), sample()
        with bounded_storage(url, redis_json_url, retry_deadline=0) as store:
            store.save_vcon(first)
            forwarder.frozen.set()
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError) as caught:
                store.save_vcon(second)
            elapsed = time.monotonic() - started
            assert elapsed < BOUNDS["timeout"] + SLACK, f"took {elapsed:.1f} s"
            assert "no answer within timeout 1 s: the call was cut off" in str(caught.value)
            forwarder.frozen.clear()
            store.save_vcon(second)  # a new connection: the cut one was discarded
            assert store.get_vcon(second["uuid"]) == second

    def test_a_held_lock_is_bounded_and_transient(
        self, database_url: str, redis_json_url: str
    ) -> None:
        document = sample()
        with bounded_storage(database_url, redis_json_url) as store:
            store.save_vcon(document)
            started = time.monotonic()
            with vcons_locked(database_url), pytest.raises(DatabaseUnavailableError) as caught:
                store.save_vcon(document)
            assert_within_bound(started)
            assert caught.value.code in ("55P03", "57014")  # lock_timeout, statement_timeout
            assert "within 'timeout'" in str(caught.value)
            assert caught.value.journaled is True
            assert store.save_vcon(document) is not None  # the lock is gone: it passes


class TestPermanentRefusals:
    def test_missing_functions_are_rejected_at_once_not_retried_not_journaled(
        self, empty_database_url: str, redis_json_url: str
    ) -> None:
        with (
            bounded_storage(empty_database_url, redis_json_url, retry_deadline=5) as store,
            pytest.raises(DatabaseRejectedError) as caught,
        ):
            store.save_vcon(sample())
        assert caught.value.code == "42883"
        assert "run `conserver-supabase migrate`" in str(caught.value)
        assert (caught.value.attempts, caught.value.journaled) == (1, False)
        assert redis_client(redis_json_url).llen(JOURNAL) == 0

    def test_an_unknown_role_is_rejected_with_the_fix(
        self, database_url: str, redis_json_url: str
    ) -> None:
        started = time.monotonic()
        with (
            bounded_storage(
                as_user(database_url, "no_such_role"), redis_json_url, retry_deadline=5
            ) as store,
            pytest.raises(DatabaseRejectedError) as caught,
        ):
            store.save_vcon(sample())
        assert time.monotonic() - started < BOUNDS["timeout"] + SLACK  # not retried for 5 s
        assert 'role "no_such_role" does not exist' in str(caught.value)
        assert "the user or database of the URL does not exist" in str(caught.value)
        assert (caught.value.attempts, caught.value.journaled) == (1, False)
        assert redis_client(redis_json_url).llen(JOURNAL) == 0


class TestPostgrestTransport:
    def test_an_api_that_never_answers_fails_within_the_bound(
        self, database_url: str, redis_json_url: str
    ) -> None:
        with PostgrestStandIn(database_url, key="k") as server:
            server.faults = ["hang"] * 100
            server.hang_seconds = 30
            started = time.monotonic()
            with (
                SupabaseStorage(
                    {"url": server.url, "key": "k", "redis_url": redis_json_url, **BOUNDS}
                ) as store,
                pytest.raises(DatabaseUnavailableError) as caught,
            ):
                store.save_vcon(sample())
            assert_within_bound(started)
        assert "ReadTimeout" in str(caught.value)
