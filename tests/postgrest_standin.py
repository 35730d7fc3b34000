"""A small, honest stand-in for PostgREST's RPC surface, for tests only.

PostgREST cannot be installed on these machines. This server answers what our
transport uses: ``POST /rest/v1/rpc/{function}`` with a JSON object of named arguments,
by calling the real SQL function in a real PostgreSQL (``SELECT schema.fn(name => $1,
...)``) and returning its JSON result, or PostgREST's error body
``{code, message, details, hint}`` with the HTTP status PostgREST uses for that
SQLSTATE. It checks the ``apikey`` header, honours ``Content-Profile`` (schema), counts
requests, and can inject latency and faults (``faults``: a queue of what the next
requests meet). It is not PostgREST: no filters, no tables, no JWT roles.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg import sql

_FUNCTION = re.compile(r"^/rest/v1/rpc/([A-Za-z_][A-Za-z0-9_]*)$")


def _status(sqlstate: str) -> int:
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "42883":
        return 404
    if sqlstate == "42501":
        return 403
    if sqlstate.startswith("08") or sqlstate.startswith("57P"):
        return 503
    if sqlstate[:2] in ("22", "23") or sqlstate == "P0001":
        return 400
    return 500


class PostgrestStandIn:
    """Start with ``with PostgrestStandIn(database_url, key) as server: server.url``."""

    def __init__(self, database_url: str, key: str, latency: float = 0.0) -> None:
        self.database_url = database_url
        self.key = key
        self.latency = latency
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
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                stand_in._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> PostgrestStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        with self._lock:
            self.requests.append(
                {
                    "path": handler.path,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "body": raw,
                }
            )
        with self._lock:
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
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if handler.headers.get("apikey") != self.key:
            self._reply(
                handler,
                401,
                {"code": "PGRST301", "message": "JWT invalid", "details": None, "hint": None},
            )
            return
        match = _FUNCTION.match(handler.path.split("?")[0])
        if not match:
            self._reply(
                handler,
                404,
                {"code": "PGRST125", "message": "invalid path", "details": None, "hint": None},
            )
            return
        schema = handler.headers.get("Content-Profile", "public")
        args = json.loads(raw or b"{}")
        query = sql.SQL("SELECT {}.{}({})").format(
            sql.Identifier(schema),
            sql.Identifier(match.group(1)),
            sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(name)) for name in args),
        )
        values = [v if isinstance(v, str) else json.dumps(v) for v in args.values()]
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                row = conn.execute(query, values).fetchone()
            if fault == "commit-then-reset":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
        except psycopg.Error as exc:
            state = exc.sqlstate or "08006"
            self._reply(
                handler,
                _status(state),
                {
                    "code": state,
                    "message": exc.diag.message_primary or str(exc),
                    "details": exc.diag.message_detail,
                    "hint": exc.diag.message_hint,
                },
            )
            return
        self._reply(handler, 200, row[0] if row else None)
