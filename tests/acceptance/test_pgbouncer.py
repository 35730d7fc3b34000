"""The direct transport through a real PgBouncer in transaction mode with its default
configuration (no ``ignore_startup_parameters``): every operation works, session
settings another client leaves on pooled server connections do not reach our
transactions, a held lock is bounded through the pooler too, and a URL that sends a
startup parameter PgBouncer refuses is reported as that, not as an outage. (The storage
behaviour suite also runs through PgBouncer: the ``transport`` fixture's ``pgbouncer``
parameter.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import DatabaseRejectedError, DatabaseUnavailableError, SupabaseStorage

from ..support.pgbouncer import PgBouncer
from ..support.services import redis_client
from ..support.vcons import sample
from .test_deadlines import BOUNDS, JOURNAL, assert_within_bound, vcons_locked

# What another client of the pooler may leave on a server connection with a session SET.
LEFTOVERS = (
    "SET default_transaction_read_only = on",
    "SET statement_timeout = 0",
    "SET lock_timeout = 0",
    "SET idle_in_transaction_session_timeout = 0",
    "SET default_transaction_isolation = 'serializable'",
)


@pytest.fixture
def own_pgbouncer(pg_admin_url: str, pgbouncer: PgBouncer) -> Iterator[PgBouncer]:
    """A PgBouncer of this test's own (the session's must not keep the leftovers)."""
    with PgBouncer(pg_admin_url) as bouncer:
        yield bouncer


def leave_settings_behind(url: str, connections: int = 4) -> None:
    """Open ``connections`` clients at once (so each holds a server connection of its
    own) and leave every setting of LEFTOVERS on its server connection."""
    clients = [psycopg.connect(url, prepare_threshold=None) for _ in range(connections)]
    try:
        for conn in clients:
            for statement in LEFTOVERS:
                conn.execute(statement)  # inside an open transaction: held server link
        for conn in clients:
            conn.commit()  # session SETs survive the commit; the link goes back to the pool
    finally:
        for conn in clients:
            conn.close()


def test_save_load_delete_and_search_through_pgbouncer(
    pgbouncer: PgBouncer, database_url: str, redis_json_url: str
) -> None:
    documents = [sample(), sample()]
    options = {"database_url": pgbouncer.url(database_url), "redis_url": redis_json_url}
    with SupabaseStorage(options) as store:
        store.save_many(documents[:1])
        store.save_vcon(documents[1])
        redis_client(redis_json_url).flushall()  # the load below comes from the database
        assert store.get_vcon(documents[0]["uuid"]) == documents[0]
        assert set(store.search().items) == {d["uuid"] for d in documents}
        assert store.delete_vcon(documents[0]["uuid"]) is True
        assert store.get_vcon(documents[0]["uuid"]) is None
        assert store.exists(documents[1]["uuid"]) is True


def test_leftover_session_settings_do_not_fail_or_unbound_our_saves(
    own_pgbouncer: PgBouncer, database_url: str, redis_json_url: str
) -> None:
    """Read-only by default, no statement or lock timeout, serializable: all left by
    another client on the pooled server connections; 20 of 20 saves pass, and a save
    behind a held lock still ends within its bound."""
    url = own_pgbouncer.url(database_url)
    leave_settings_behind(url)
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as probe:
        # The scenario is real: a plain statement meets the leftovers.
        assert probe.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            probe.execute("SELECT public.conserver_vcon_save(%s::jsonb)", [json.dumps(sample())])
    documents = [sample() for _ in range(20)]
    options: dict[str, Any] = {"database_url": url, "redis_url": redis_json_url, **BOUNDS}
    with SupabaseStorage(options) as store:
        for document in documents:
            store.save_vcon(document)
        started = time.monotonic()
        with vcons_locked(database_url), pytest.raises(DatabaseUnavailableError) as caught:
            store.save_vcon(documents[0])
        assert_within_bound(started)
        assert caught.value.code in ("55P03", "57014")
    with psycopg.connect(database_url, autocommit=True) as conn:
        count = conn.execute(
            "SELECT count(*) FROM public.vcons WHERE uuid = ANY(%s::uuid[])",
            [[d["uuid"] for d in documents]],
        ).fetchone()
    assert count == (20,)


def test_a_startup_parameter_pgbouncer_refuses_is_rejected_with_the_fix(
    pgbouncer: PgBouncer, database_url: str, redis_json_url: str
) -> None:
    """``options`` in the URL: PgBouncer refuses every connection. That will not pass by
    itself: reported as a rejection that says what to change, not retried, not
    journaled (an older build reported an outage and journaled every save)."""
    url = pgbouncer.url(database_url) + "?options=-c%20statement_timeout%3D5000"
    started = time.monotonic()
    options = {"database_url": url, "redis_url": redis_json_url, **BOUNDS, "retry_deadline": 5}
    with SupabaseStorage(options) as store, pytest.raises(DatabaseRejectedError) as caught:
        store.save_vcon(sample())
    assert time.monotonic() - started < BOUNDS["timeout"] + 1.5  # not retried for 5 s
    message = str(caught.value)
    assert "unsupported startup parameter: options" in message
    assert "remove 'options'" in message
    assert "ignore_startup_parameters" in message
    assert (caught.value.attempts, caught.value.journaled) == (1, False)
    assert redis_client(redis_json_url).llen(JOURNAL) == 0
