"""Misbehaving TCP servers on 127.0.0.1 for fault tests: they count connections and
stop with their ``with`` block."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class FaultServer:
    """``silent``: accepts and never answers (a frozen Redis). ``closing``: accepts and
    closes at once (Redis at maxclients, a proxy without a backend)."""

    def __init__(self, behaviour: str) -> None:
        assert behaviour in ("silent", "closing")
        self.behaviour = behaviour
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"redis://127.0.0.1:{self._sock.getsockname()[1]}/0"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            if self.behaviour == "closing":
                conn.close()
            else:
                self._open.append(conn)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._open:
            conn.close()
        self._sock.close()


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 to a server that can be cut: :meth:`cut` drops every
    open connection and refuses new ones (the server is unreachable), and :meth:`restore`
    accepts again on the same port. With ``frozen`` set it keeps every connection open
    and accepts new ones but forwards nothing the clients send (a server or network that
    stops answering). ``upstream`` opens a connection to the server."""

    def __init__(self, upstream: Callable[[], socket.socket], latency: float = 0.0) -> None:
        self._upstream = upstream
        #: Seconds added before each chunk the client sends is forwarded (a request's
        #: network delay; psycopg sends one statement per chunk).
        self.latency = latency
        #: Chunks forwarded from clients to the server: round trips, for benchmarks.
        self.requests = 0
        #: While set, what clients send is held back, not forwarded (nor dropped), for at
        #: most ``hold_limit`` seconds a chunk: a test of a client that waits forever
        #: still ends (and fails on its time).
        self.frozen = threading.Event()
        self.hold_limit = 10.0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_listener(0)
        assert self._listener is not None
        self.port: int = self._listener.getsockname()[1]

    def _open_listener(self, port: int) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener

    def __enter__(self) -> CuttableProxy:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.cut()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            pairs, self._pairs = self._pairs, []
        for sock in pairs:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        with self._lock:
            if self._listener is None:
                self._open_listener(self.port)

    def _accept(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):  # no Nagle stalls: forward each chunk at once
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs += [client, upstream]
            threading.Thread(
                target=pump, args=(client, upstream, self._request), daemon=True
            ).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    def _request(self) -> None:
        held_until = time.monotonic() + self.hold_limit
        while self.frozen.is_set() and not self._stop.is_set() and time.monotonic() < held_until:
            time.sleep(0.02)
        with self._lock:
            self.requests += 1
        if self.latency:
            time.sleep(self.latency)


def pump(
    source: socket.socket, sink: socket.socket, on_chunk: Callable[[], None] | None = None
) -> None:
    """Copy ``source`` to ``sink`` until either side closes, then shut both down;
    ``on_chunk()`` runs before each chunk is forwarded."""
    try:
        while data := source.recv(65536):
            if on_chunk is not None:
                on_chunk()
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def postgres_upstream(database_url: str) -> tuple[Callable[[], socket.socket], str]:
    """For a PostgreSQL URL (TCP or Unix socket): a function opening a connection to the
    server, and a URL template with ``{port}`` for reaching it through a proxy."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(database_url)
    host = str(info.get("host") or "127.0.0.1")
    port = int(info.get("port") or 5432)
    user = quote(str(info.get("user") or "postgres"))
    password = info.get("password")
    auth = f"{user}:{quote(str(password))}" if password else user
    template = f"postgresql://{auth}@127.0.0.1:{{port}}/{quote(str(info.get('dbname')))}"

    def connect() -> socket.socket:
        if host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(f"{host}/.s.PGSQL.{port}")
            sock.settimeout(None)
            return sock
        return socket.create_connection((host, port), timeout=5)

    return connect, template
