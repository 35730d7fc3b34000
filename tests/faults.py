"""Misbehaving TCP servers on 127.0.0.1 for fault tests: they count connections and
stop with their ``with`` block."""

from __future__ import annotations

import socket
import threading
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
