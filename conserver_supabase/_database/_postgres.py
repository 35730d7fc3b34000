"""Direct PostgreSQL transport (psycopg 3 with a small thread-safe pool).

Used when ``database_url`` is set: self-hosted Supabase, Supabase's connection
pooler, bulk jobs, and the embedded database of the demo and the tests.

Pooler-safe: no startup ``options`` and no prepared statements, so PgBouncer (transaction
mode, its default configuration) and Supavisor pass every connection. Each call is its
own transaction that sets everything it depends on, so a session setting another client
left on a pooled server connection cannot change it::

    BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE      (READ ONLY for the replica)
    SELECT set_config('statement_timeout', ..., true), ...lock_timeout,
           ...idle_in_transaction_session_timeout          (the call's time left)
    SELECT schema.conserver_vcon_...(...)
    COMMIT

sent as one simple query (the arguments bound on the client, so no prepared statement):
one write and one answer, one network round trip. Every call is bounded on the client too
(see :mod:`._deadline`): the pool wait, then the transaction, within ``timeout``; a call
cut there is transient, its message saying which bound it hit.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._config import StorageConfig
from .._errors import ConfigurationError
from ._deadline import Watchdog
from ._errors import DeadlineExceeded, database_errors, refused_connection
from ._functions import ExactText, ExactTexts, Function, Transport, exact_json

__all__ = ["PostgresDatabase", "exact_jsonb", "import_psycopg"]

#: The client-side cut comes this long after the server's own statement_timeout, so that
#: a working server's clean timeout error wins the race.
_CUT_MARGIN: Final = 0.2
_SETTINGS: Final = (
    "SELECT set_config('statement_timeout', '%(ms)d', true),"
    " set_config('lock_timeout', '%(ms)d', true),"
    " set_config('idle_in_transaction_session_timeout', '%(ms)d', true)"
)
_WATCHDOG = Watchdog()
#: A jsonb value at least this long is quoted by exact_jsonb's dumper itself.
_LARGE_LITERAL: Final = 32 * 1024


def import_psycopg() -> Any:
    """Return the psycopg module, or say which extra to install."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - checked here so both fail the same way
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "direct PostgreSQL access (database_url, migrate) needs psycopg: "
            "pip install 'conserver-supabase[postgres]'",
            option="database_url",
        ) from None
    return psycopg


@functools.cache
def exact_jsonb() -> type:
    """The jsonb wrapper of an ExactText or ExactTexts: written by ``exact_json`` and
    quoted for the simple query by a dumper of its own (registered with psycopg's
    default adapters, for this class only).

    The literal of a large one is the ``E'...'`` that libpq's PQescapeLiteral (psycopg's
    quoting, kept for smaller ones) writes, made with ``bytes.replace``: PQescapeLiteral
    looks at every byte in turn and took about a tenth of a 1 MiB vCon's save; the text
    is valid UTF-8 without NUL (JSON text), so doubling the backslashes and the quotes is
    all the literal needs.
    """
    import psycopg
    from psycopg import pq
    from psycopg.abc import Buffer
    from psycopg.types.json import Jsonb, JsonbDumper

    class ExactJsonb(Jsonb):
        __slots__ = ()

        def __init__(self, obj: ExactText | ExactTexts) -> None:
            super().__init__(obj, dumps=exact_json)

    class ExactJsonbDumper(JsonbDumper):
        def quote(self, obj: Any) -> Buffer:
            if (data := self.dump(obj)) is None:  # pragma: no cover - a text is never None
                return b"NULL"
            if len(data) < _LARGE_LITERAL and self.connection is not None:
                return pq.Escaping(self.connection.pgconn).escape_literal(data)  # as before
            escaped = bytes(data).replace(b"\\", b"\\\\").replace(b"'", b"''")
            return b"".join((b" E'", escaped, b"'"))

    psycopg.adapters.register_dumper(ExactJsonb, ExactJsonbDumper)
    return ExactJsonb


class PostgresDatabase(Transport):
    """Calls the ``conserver_vcon_*`` SQL functions over a psycopg connection pool.

    The pool opens lazily on first use and is safe to share between threads.
    ``replica=True`` connects to ``read_database_url`` instead, in read-only
    transactions.
    """

    def __init__(self, config: StorageConfig, *, replica: bool = False) -> None:
        option = "read_database_url" if replica else "database_url"
        url = config.read_database_url if replica else config.database_url
        if url is None:
            raise ConfigurationError(f"the PostgreSQL transport needs {option!r}", option=option)
        psycopg = import_psycopg()
        from psycopg_pool import ConnectionPool

        exact_jsonb()  # its dumper registered before any connection is made

        self._schema = config.schema
        self._timeout = config.timeout
        self._sql: dict[Function, str] = {}  # by function: overloads share a name
        # A replica only ever reads: a misconfigured writable "replica" refuses writes
        # too, instead of silently diverging from the primary.
        access = "READ ONLY" if replica else "READ WRITE"
        self._begin = f"BEGIN ISOLATION LEVEL READ COMMITTED, {access}"
        self._connects = _Connects()
        self._pool = ConnectionPool(
            url.reveal(),
            min_size=1,
            max_size=config.pool_size,
            timeout=config.timeout,
            open=False,
            name="conserver-supabase-replica" if replica else "conserver-supabase",
            connection_class=self._connects.connection_class(psycopg),
            kwargs=connection_parameters(url.reveal(), config.timeout),
        )
        self._open_lock = threading.Lock()
        self._opened = False

    def call(self, function: Function, arguments: Sequence[Any], vcon_uuid: str | None) -> Any:
        from psycopg.types.json import Jsonb

        # JSON values as jsonb; an ExactText too (a JSON string: the text it holds is kept).
        values = [
            exact_jsonb()(a)
            if isinstance(a, ExactText | ExactTexts)
            else Jsonb(a)
            if isinstance(a, Mapping | list)
            else a
            for a in arguments
        ]
        statement = self._sql.get(function) or self._statement(function)
        with database_errors(function.operation, vcon_uuid):
            self._ensure_open()
            started = time.monotonic()
            conn = self._connection()
            try:
                left = max(0.001, self._timeout - (time.monotonic() - started))
                row = self._transaction(conn, statement, values, left)
            finally:
                self._pool.putconn(conn)
        return None if row is None else row[0]

    def _connection(self) -> Any:
        """A pooled connection, waiting at most ``timeout``. A wait that ends without
        one raises what the last attempt to connect met when that will not pass by
        itself (a refusal, reported as such), else :class:`DeadlineExceeded`."""
        from psycopg_pool import PoolTimeout

        try:
            return self._pool.getconn(timeout=self._timeout)
        except PoolTimeout as exc:
            raise self._no_connection() from exc

    def _no_connection(self) -> BaseException:
        failure = self._connects.failure
        if failure is not None and refused_connection(failure) is not None:
            return type(failure)(str(failure))  # a copy: other threads raise it too
        reason = (
            f"the last attempt to connect failed: {failure}"
            if failure is not None
            else "every pooled connection busy, or the server did not complete a connection"
        )
        return DeadlineExceeded(
            f"no connection within timeout {self._timeout:g} s ({str(reason).strip()})"
        )

    def _transaction(self, conn: Any, statement: str, values: list[Any], left: float) -> Any:
        """Run the call in its own transaction, in one round trip, cut at ``left`` s."""
        import psycopg

        ms = max(1, int(left * 1000))
        with _WATCHDOG.watch(conn, left + _CUT_MARGIN) as watch:
            try:
                # One simple query (the arguments bound on the client: no prepared
                # statement either), so one write and one answer.
                cursor = psycopg.ClientCursor(conn)
                cursor.execute(
                    f"{self._begin}; {_SETTINGS % {'ms': ms}}; {statement}; COMMIT", values
                )
                cursor.nextset()
                cursor.nextset()
                return cursor.fetchone()
            except psycopg.Error as exc:
                if watch.how is not None:
                    raise DeadlineExceeded(
                        f"no answer within timeout {self._timeout:g} s: the call was "
                        + (
                            "cancelled"
                            if watch.how == "cancelled"
                            else "cut off (its connection shut down: the server or "
                            "network did not answer)"
                        )
                    ) from exc
                _roll_back(conn)
                raise

    def _statement(self, function: Function) -> str:
        """``SELECT schema.function(%s, ...)``, composed once per function."""
        from psycopg import sql

        placeholders = sql.SQL(", ").join(sql.Placeholder() for _ in function.params)
        statement = (
            sql.SQL("SELECT {}.{}({})")
            .format(sql.Identifier(self._schema), sql.Identifier(function.name), placeholders)
            .as_string()
        )
        self._sql[function] = statement
        return statement

    def _ensure_open(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False


def connection_parameters(url: str, timeout: float) -> dict[str, Any]:
    """libpq parameters of every connection: no startup ``options`` (poolers refuse
    them), no prepared statements, and the network bounds: ``connect_timeout`` (libpq's
    minimum is 2 s), TCP keepalives and ``tcp_user_timeout`` from ``timeout``. A
    parameter the URL sets itself is left to the URL."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    network = {
        "connect_timeout": max(2, math.ceil(timeout)),
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": max(1000, int(timeout * 1000)),
    }
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "application_name": "conserver-supabase",
        **{name: value for name, value in network.items() if name not in given},
    }


def _roll_back(conn: Any) -> None:
    """End a transaction the error left open (the query stops at the error, before
    COMMIT), so the connection goes back to the pool idle; a broken one is discarded."""
    import psycopg

    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        conn.close()


class _Connects:
    """What the pool's last attempt to connect met (``failure``: None after a success),
    so a pool wait that times out can say why: the pool retries failed connections in
    its own threads and keeps the error to its log."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None

    def connection_class(self, psycopg: Any) -> Any:
        connects = self

        class Connection(psycopg.Connection):  # type: ignore[misc]
            @classmethod
            def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    conn = super().connect(*args, **kwargs)
                except psycopg.Error as exc:
                    connects.failure = exc
                    raise
                connects.failure = None
                return conn

        return Connection
