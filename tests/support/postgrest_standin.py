"""A small, honest stand-in for PostgREST, for tests and benchmarks only.

PostgREST cannot be installed on these machines. This server answers, against a real
PostgreSQL, the part of PostgREST's API that our transport and the benchmarks use:

* ``POST /rest/v1/rpc/{function}`` with a JSON object of named arguments: calls the
  real SQL function (``SELECT schema.fn(name => $1, ...)``) and returns its JSON result;
* ``POST /rest/v1/{table}`` with a JSON object or array: an insert, as PostgREST
  builds it (``INSERT INTO t (cols) SELECT cols FROM json_populate_recordset(NULL::t,
  $1)``, so JSON arrays become SQL arrays and objects jsonb). The columns are
  ``?columns=`` or the body's keys (every object must have the same keys).
  ``Prefer: resolution=merge-duplicates`` makes it an upsert on ``?on_conflict=``
  (default: the primary key) that sets every given column from ``EXCLUDED``;
  ``resolution=ignore-duplicates`` skips conflicting rows. 201, with the rows as a JSON
  array under ``Prefer: return=representation``, else no body;
* ``GET /rest/v1/{table}``: ``select=`` (``*`` or plain column names), horizontal
  filters ``col=[not.]op.value`` with ``eq neq gt gte lt lte like ilike`` (``*`` is the
  wildcard), ``in.(a,b)`` and ``is.null|true|false``, ``order=col[.asc|.desc]
  [.nullsfirst|.nullslast],...``, ``limit`` and ``offset``; 200 with a JSON array;
* ``DELETE /rest/v1/{table}`` with the same filters: 204, or 200 with the deleted rows
  under ``Prefer: return=representation``.

Errors are PostgREST's body ``{code, message, details, hint}`` with the HTTP status
PostgREST uses for that SQLSTATE (or its ``PGRST`` code). It checks the ``apikey``
header, takes the schema from ``Accept-Profile`` (GET) or ``Content-Profile`` (other
methods), counts requests, and can inject latency and faults (``faults``: a queue of
what the next requests meet) on every path alike. Statements run in autocommit on a
few reused connections, as PostgREST's pool does.

It is not PostgREST: no resource embedding, ``or``/``and`` trees, renames or casts in
``select``, PATCH, counts, single-object responses, JWT roles or schema cache; it
speaks HTTP/1.0 (one TCP connection per request).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from . import postgrest_query as syntax
from .postgrest_query import EMPTY, RequestError, Response


class _Pool:
    """Idle database connections, reused across requests (as PostgREST's pool is)."""

    def __init__(self, url: str, keep: int = 4) -> None:
        self._url = url
        self._keep = keep
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> psycopg.Connection[Any]:
        # No server-side prepared statements: tests may redefine functions between calls.
        return psycopg.connect(self._url, autocommit=True, prepare_threshold=None)

    def execute(self, query: sql.SQL | sql.Composed, params: list[Any]) -> Any:
        """The first column of the statement's first row (``None`` without rows)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect()
        try:
            try:
                row = conn.execute(query, params).fetchone()
            except psycopg.OperationalError:
                if not (reused and conn.broken):
                    raise
                # The server closed this idle connection meanwhile (nothing ran on it):
                # a fresh connection, as a per-request connection would have been.
                conn.close()
                conn = self._connect()
                row = conn.execute(query, params).fetchone()
            return row[0] if row else None
        finally:
            with self._lock:
                keep = not (
                    self._closed or conn.closed or conn.broken or len(self._idle) >= self._keep
                )
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgrestStandIn:
    """Start with ``with PostgrestStandIn(database_url, key) as server: server.url``."""

    def __init__(self, database_url: str, key: str, latency: float = 0.0) -> None:
        self.database_url = database_url
        self.key = key
        #: Seconds added to every request before it is answered (a network delay).
        self.latency = latency
        #: Every request received: ``method``, ``path`` (with the query), ``headers``
        #: (lower-case names) and the raw ``body``.
        self.requests: list[dict[str, Any]] = []
        #: Faults for the next requests, in order: "503" (PostgREST cannot reach the
        #: database, nothing runs), "reset" (the connection drops, nothing runs),
        #: "commit-then-reset" (the SQL runs and commits, then the connection drops),
        #: "hang" (no answer for ``hang_seconds`` or until the server stops, then the
        #: connection drops; nothing runs).
        self.faults: list[str] = []
        self.hang_seconds = 5.0
        #: A fault every request meets while set (after the queued ones), for windows.
        self.sticky: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._pool = _Pool(database_url)
        self._signatures: dict[tuple[str, str, tuple[str, ...]], dict[str, str]] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in two writes: without this the body can wait for
            # the client's delayed ACK (tens of milliseconds, in benchmarks).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                stand_in._handle(self, "GET")

            def do_POST(self) -> None:
                stand_in._handle(self, "POST")

            def do_DELETE(self) -> None:
                stand_in._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever polls for shutdown: 50 ms instead of 500 ms per stop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> PostgrestStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._pool.close()

    def _reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send ``body`` as JSON; ``EMPTY`` sends no body and no Content-Type (201, 204)."""
        data = b"" if body is EMPTY else json.dumps(body).encode()
        handler.send_response(status)
        if body is not EMPTY:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _drop(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": handler.path,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "body": raw,
                }
            )
            fault = self.faults.pop(0) if self.faults else self.sticky
        if self.latency:
            time.sleep(self.latency)
        if fault == "503":
            self._reply(
                handler,
                503,
                {"code": "PGRST001", "message": "Database client error", "details": None},
            )
            return
        if fault == "hang":
            self._stopping.wait(self.hang_seconds)
            fault = "reset"
        if fault == "reset":
            self._drop(handler)
            return
        if handler.headers.get("apikey") != self.key:
            self._reply(
                handler,
                401,
                {"code": "PGRST301", "message": "JWT invalid", "details": None, "hint": None},
            )
            return
        try:
            response = self._route(handler, method, raw)
            if fault == "commit-then-reset":
                self._drop(handler)
                return
        except RequestError as exc:
            body = {"code": exc.code, "message": exc.message, "details": None, "hint": None}
            self._reply(handler, exc.status, body)
            return
        except psycopg.Error as exc:
            state = exc.sqlstate or "08006"
            self._reply(
                handler,
                syntax.status(state),
                {
                    "code": state,
                    "message": exc.diag.message_primary or str(exc),
                    "details": exc.diag.message_detail,
                    "hint": exc.diag.message_hint,
                },
            )
            return
        self._reply(handler, *response)

    def _route(self, handler: BaseHTTPRequestHandler, method: str, raw: bytes) -> Response:
        """Run the request's SQL (raising ``psycopg.Error`` or ``RequestError``)."""
        parts = urlsplit(handler.path)
        profile = "Accept-Profile" if method == "GET" else "Content-Profile"
        schema = handler.headers.get(profile, "public")
        function = syntax.FUNCTION_PATH.match(parts.path) if method == "POST" else None
        if function:
            return self._rpc(schema, function.group(1), raw)
        table = syntax.TABLE_PATH.match(parts.path)
        if not table or table.group(1) == "rpc":
            raise RequestError(404, "PGRST125", "invalid path")
        relation = sql.Identifier(schema, table.group(1))
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefer = syntax.prefer(handler.headers)
        if method == "GET":
            return self._select(relation, query)
        if method == "DELETE":
            return self._delete(relation, query, prefer)
        return self._insert(relation, query, prefer, raw)

    def _rpc(self, schema_name: str, function_name: str, raw: bytes) -> Response:
        args = self._json(raw or b"{}")
        if not isinstance(args, dict):
            raise RequestError(400, "PGRST102", "RPC arguments must be a JSON object")
        # As PostgREST does: the body's values become the arguments through
        # json_to_record with the argument types of the overload those names pick, so a
        # JSON string stays a JSON string for a json/jsonb argument (text for text).
        schema, function = sql.Identifier(schema_name), sql.Identifier(function_name)
        types = self._argument_types(schema_name, function_name, sorted(args))
        if not args:
            return (
                200,
                self._pool.execute(sql.SQL("SELECT {}.{}()").format(schema, function), []),
                {},
            )
        query = sql.SQL("SELECT {}.{}({}) FROM json_to_record(%s::json) AS pgrst_args ({})").format(
            schema,
            function,
            sql.SQL(", ").join(
                sql.SQL("{} => pgrst_args.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in args
            ),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in args
            ),
        )
        return 200, self._pool.execute(query, [raw.decode("utf-8")]), {}

    def _argument_types(self, schema: str, function: str, names: list[str]) -> dict[str, str]:
        """{argument name: type} of the function's overload with exactly these argument
        names (PostgREST picks overloads by their names)."""
        key = (schema, function, tuple(names))
        found = self._signatures.get(key)
        if found is None:
            rows = self._pool.execute(
                sql.SQL(
                    "SELECT coalesce(json_agg(json_build_object('names', p.proargnames,"
                    " 'types', (SELECT json_agg(format_type(t, NULL) ORDER BY o)"
                    " FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u (t, o)))), '[]')"
                    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = %s AND p.proname = %s"
                ),
                [schema, function],
            )
            for overload in rows:
                if sorted(overload["names"] or []) == names:
                    found = dict(zip(overload["names"], overload["types"] or [], strict=True))
                    break
            else:
                raise RequestError(
                    404, "PGRST202", f"Could not find the function {function}({names})"
                )
            self._signatures[key] = found
        return found

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise RequestError(400, "PGRST102", "Empty or invalid json") from None

    @staticmethod
    def _returned(rows: sql.Composable, select: str) -> sql.Composed:
        """``rows`` (a CTE body) aggregated into a JSON array of ``select`` columns."""
        return sql.SQL(
            "WITH pgrst_rows AS ({}) SELECT coalesce(json_agg(pgrst_out), '[]'::json)"
            " FROM (SELECT {} FROM pgrst_rows) pgrst_out"
        ).format(rows, syntax.columns(select))

    def _select(self, relation: sql.Identifier, query: list[tuple[str, str]]) -> Response:
        options = dict(query)
        where, params = syntax.where(query)
        statement = sql.SQL("SELECT {} FROM {}{}").format(
            syntax.columns(options.get("select", "*")), relation, where
        )
        if "order" in options:
            statement += syntax.order(options["order"])
        for clause in ("limit", "offset"):
            count = syntax.count(options, clause)
            if count is not None:
                statement += sql.SQL(f" {clause.upper()} {{}}").format(sql.Literal(count))
        rows = self._pool.execute(
            sql.SQL("SELECT coalesce(json_agg(pgrst_out), '[]'::json) FROM ({}) pgrst_out").format(
                statement
            ),
            params,
        )
        span = f"0-{len(rows) - 1}/*" if rows else "*/*"
        return 200, rows, {"Content-Range": span}

    def _delete(
        self, relation: sql.Identifier, query: list[tuple[str, str]], prefer: set[str]
    ) -> Response:
        where, params = syntax.where(query)
        deleted = sql.SQL("DELETE FROM {}{} RETURNING *").format(relation, where)
        rows = self._pool.execute(self._returned(deleted, dict(query).get("select", "*")), params)
        if "return=representation" in prefer:
            return 200, rows, {}
        return 204, EMPTY, {}

    def _insert(
        self,
        relation: sql.Identifier,
        query: list[tuple[str, str]],
        prefer: set[str],
        raw: bytes,
    ) -> Response:
        options = dict(query)
        body = self._json(raw)
        rows = [body] if isinstance(body, dict) else body
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RequestError(400, "PGRST102", "the body must be a JSON object or array of them")
        if "columns" in options:
            names = [name.strip() for name in options["columns"].split(",")]
        else:
            names = list(rows[0]) if rows else []
            if any(set(row) != set(names) for row in rows):
                raise RequestError(400, "PGRST102", "All object keys must match")
        if not rows:
            return 201, [] if "return=representation" in prefer else EMPTY, {}
        columns = sql.SQL(", ").join(syntax.identifier(name) for name in names)
        statement = sql.SQL(
            "INSERT INTO {relation} ({columns}) SELECT {columns}"
            " FROM json_populate_recordset(NULL::{relation}, %s) pgrst_body"
        ).format(relation=relation, columns=columns)
        if "resolution=merge-duplicates" in prefer or "resolution=ignore-duplicates" in prefer:
            target = options.get("on_conflict") or ",".join(self._primary_key(relation))
            statement += sql.SQL(" ON CONFLICT ({})").format(
                sql.SQL(", ").join(syntax.identifier(name.strip()) for name in target.split(","))
            )
            if "resolution=merge-duplicates" in prefer:
                statement += sql.SQL(" DO UPDATE SET ") + sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(syntax.identifier(name)) for name in names
                )
            else:
                statement += sql.SQL(" DO NOTHING")
        statement += sql.SQL(" RETURNING *")
        written = self._pool.execute(
            self._returned(statement, options.get("select", "*")), [Json(rows)]
        )
        return 201, written if "return=representation" in prefer else EMPTY, {}

    def _primary_key(self, relation: sql.Identifier) -> list[str]:
        names: list[str] = self._pool.execute(
            sql.SQL(
                "SELECT coalesce(json_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)),"
                " '[]'::json) FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                " WHERE i.indrelid = %s::regclass AND i.indisprimary"
            ),
            [relation.as_string()],
        )
        if not names:
            raise RequestError(400, "PGRST100", "no on_conflict and no primary key")
        return names
