"""The promise on the direct transport (issue 15, deadlines and poolers): a database
connection that hangs, and PgBouncer in transaction mode with its default configuration
behind which another client left session settings and a lock is held. Rows of the same
table as :mod:`.promise_scenarios` (its ``SCENARIOS`` ends with ``DIRECT_SCENARIOS``)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from conserver_supabase import DatabaseUnavailableError, SupabaseStorage, testing

from .fault_scenarios import Services

__all__ = ["DIRECT_SCENARIOS", "NEEDS_PGBOUNCER", "hung_connection", "pgbouncer_default_config"]


#: The bounds of the direct-transport scenarios below, and what the cut (a cancel, then
#: the socket shut down) and scheduling on a busy 2-CPU machine may add to them.
_DIRECT_BOUNDS: dict[str, Any] = {"timeout": 1, "retry_deadline": 1}
_DIRECT_SLACK = 1.5


def _direct_options(services: Services, database_url: str, **extra: Any) -> dict[str, Any]:
    return {"database_url": database_url, "redis_url": services.redis.url,
            "redis_timeout": 0.25, "cache_ttl": 600, **_DIRECT_BOUNDS, **extra}  # fmt: skip


def _save_or_journal(
    clock: _Clock, store: SupabaseStorage, document: Any, expected: dict[str, Any]
) -> None:
    """A save that must return or raise typed: acknowledged, or journaled (then the
    replay owes it), or neither (no right answer: left out of ``expected``)."""
    try:
        clock.call(store.save_vcon, document)
        expected[document["uuid"]] = document
    except DatabaseUnavailableError as exc:
        if exc.journaled:
            expected[document["uuid"]] = document
        else:
            expected.pop(document["uuid"], None)


def _replay_and_judge(
    services: Services,
    store: SupabaseStorage,
    clock: _Clock,
    row: PromiseRow,
    expected: dict[str, Any],
) -> None:
    """Replay the journal, then every vCon of ``expected`` must be in the database and
    served as expected (None: deleted)."""
    clock.call(store.replay_journal)
    for vcon_uuid, wanted in expected.items():
        _judge(row, vcon_uuid, wanted, _in_database(services, vcon_uuid))
        served = clock.call(store.get_vcon, vcon_uuid)
        if served != wanted:
            row.stale += 1
            row.examples.append(f"get {vcon_uuid}: {_subject(served)}, not {_subject(wanted)}")


def hung_connection(services: Services, count: int = 12) -> PromiseRow:
    """The direct transport (``timeout`` 1, ``retry_deadline`` 1) meets a database that
    accepts connections and never answers (a silent server), then one that goes silent
    mid-session (a proxy that stops forwarding what the client sends): every save, get
    and delete returns or raises :class:`DatabaseUnavailableError` within its bound; the
    saves that raised are journaled. With the database back (the held requests let
    through first, so a late write is seen), the replay owes every acknowledged or
    journaled save. Lost: one the database does not hold."""
    from .faults import CuttableProxy, FaultServer, postgres_upstream

    bound = _DIRECT_BOUNDS["timeout"] + _DIRECT_BOUNDS["retry_deadline"] + _DIRECT_SLACK
    row = PromiseRow("direct transport, connection hung (accepts, never answers)", bound=bound)
    clock = _Clock(row)
    expected: dict[str, Any] = {}
    with FaultServer("silent") as silent:
        port = silent.url.rsplit(":", 1)[1].split("/")[0]
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with SupabaseStorage(_direct_options(services, url)) as store:
            for document in (testing.make_vcon(), testing.make_vcon()):
                _save_or_journal(clock, store, document, expected)
            with contextlib.suppress(DatabaseUnavailableError):
                clock.call(store.get_vcon, str(uuid.uuid4()))
    upstream, template = postgres_upstream(services.database_url)
    with CuttableProxy(upstream) as proxy:
        url = template.format(port=proxy.port)
        with SupabaseStorage(_direct_options(services, url)) as store:
            documents = [testing.make_vcon() for _ in range(count)]
            for document in documents:
                _save_or_journal(clock, store, document, expected)
            proxy.frozen.set()
            try:
                for document in documents[:2]:
                    changed = {**document, "subject": "journaled while hung"}
                    _save_or_journal(clock, store, changed, expected)
                redis.Redis.from_url(services.redis.url).delete(f"vcon:{documents[2]['uuid']}")
                with contextlib.suppress(DatabaseUnavailableError):
                    clock.call(store.get_vcon, documents[2]["uuid"])  # a miss: the database
                try:
                    clock.call(store.delete_vcon, documents[3]["uuid"])
                    expected[documents[3]["uuid"]] = None
                except DatabaseUnavailableError:
                    expected.pop(documents[3]["uuid"], None)  # not acknowledged
            finally:
                proxy.frozen.clear()
            time.sleep(0.5)  # requests held by the proxy reach the server now, if ever
            _replay_and_judge(services, store, clock, row, expected)
    return row


def pgbouncer_default_config(services: Services, count: int = 12) -> PromiseRow:
    """The direct transport through a real PgBouncer in transaction mode with its
    default configuration, whose server connections another client left with
    ``SET default_transaction_read_only = on`` (and no statement or lock timeout):
    saves, gets (from the database) and deletes all succeed; behind a lock another
    connection holds on the vcons table, saves raise within their bound and are
    journaled; the lock released, the replay (through PgBouncer too) owes them. Needs
    the pgbouncer program (tests/support/pgbouncer.py)."""
    from .pgbouncer import PgBouncer, pgbouncer_binary

    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    bound = _DIRECT_BOUNDS["timeout"] + _DIRECT_BOUNDS["retry_deadline"] + _DIRECT_SLACK
    row = PromiseRow("direct transport through PgBouncer (default config)", bound=bound)
    clock = _Clock(row)
    expected: dict[str, Any] = {}
    cache = redis.Redis.from_url(services.redis.url)
    with PgBouncer(services.database_url, binary) as bouncer:
        url = bouncer.url(services.database_url)
        _leave_read_only_behind(url)
        with SupabaseStorage(_direct_options(services, url, pool_size=4)) as store:
            documents = [testing.make_vcon() for _ in range(count)]
            for document in documents:
                _save_or_journal(clock, store, document, expected)
            for index, document in enumerate(documents):
                vcon_uuid = document["uuid"]
                if index % 3 == 0:
                    clock.call(store.delete_vcon, vcon_uuid)
                    expected[vcon_uuid] = None
                cache.delete(f"vcon:{vcon_uuid}")  # the read below is the database's
                if clock.call(store.get_vcon, vcon_uuid) != expected.get(vcon_uuid):
                    row.stale += 1
                    row.examples.append(f"get {vcon_uuid} through PgBouncer")
            with psycopg.connect(services.database_url) as locker:
                locker.execute("LOCK TABLE public.vcons IN EXCLUSIVE MODE")
                for document in documents[1:3]:
                    changed = {**document, "subject": "journaled behind a lock"}
                    _save_or_journal(clock, store, changed, expected)
                locker.rollback()
            _replay_and_judge(services, store, clock, row, expected)
    return row


def _leave_read_only_behind(url: str, connections: int = 4) -> None:
    """Another client of the pooler leaves session settings on ``connections`` server
    connections (each client holds one in an open transaction, so they are distinct)."""
    clients = [psycopg.connect(url, prepare_threshold=None) for _ in range(connections)]
    try:
        for conn in clients:
            for setting in ("default_transaction_read_only = on", "statement_timeout = 0",
                            "lock_timeout = 0"):  # fmt: skip
                conn.execute(f"SET {setting}")
        for conn in clients:
            conn.commit()  # a session SET outlives the commit: the link goes back to the pool
    finally:
        for conn in clients:
            conn.close()


#: Scenarios that start a PgBouncer of their own: they need the pgbouncer program.
NEEDS_PGBOUNCER = frozenset({"pgbouncer_default_config"})

DIRECT_SCENARIOS: tuple[Callable[[Services], PromiseRow], ...] = (
    hung_connection,
    pgbouncer_default_config,
)

# Last: promise_scenarios lists DIRECT_SCENARIOS in its own SCENARIOS (an import cycle
# that works whichever module is imported first).
from .promise_scenarios import PromiseRow, _Clock, _in_database, _judge, _subject  # noqa: E402
