"""A TLS-terminating proxy on 127.0.0.1 for tests: clients speak TLS to it, it speaks
plain TCP to the real server behind (Redis here has no TLS build; the stand-in is HTTP).
It proves our clients do real TLS with the options users give them."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

from .faults import pump


class TlsProxy:
    """``with TlsProxy(target_port, server_context) as proxy: proxy.port``."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port = target_port
        self._context = context
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> TlsProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                continue
            try:
                raw.settimeout(5)
                client = self._context.wrap_socket(raw, server_side=True)
                client.settimeout(None)
            except (OSError, ssl.SSLError):
                raw.close()  # the client refused our certificate: that is its job
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            self._spawn(pump, client, upstream)
            self._spawn(pump, upstream, client)
