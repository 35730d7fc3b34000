"""A real PgBouncer (Debian's ``pgbouncer`` package) on 127.0.0.1 in front of one
PostgreSQL server, for the pooler tests: transaction pooling and PgBouncer's DEFAULT
settings otherwise (in particular no ``ignore_startup_parameters``), as a Supabase or
self-hosted deployment runs it. Started with a generated ini in a folder of its own,
stopped with its ``with`` block."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .services import free_port

#: Where Debian installs it (``.ci/run`` installs the package when it is missing).
PGBOUNCER = "/usr/sbin/pgbouncer"


def pgbouncer_binary() -> str | None:
    """The pgbouncer program, or None when it is not installed."""
    if os.access(PGBOUNCER, os.X_OK):
        return PGBOUNCER
    return shutil.which("pgbouncer")


class PgBouncer:
    """PgBouncer in transaction mode on a free port of 127.0.0.1, every database name
    passed to the PostgreSQL of ``server_url`` (``auth_type = trust``, the users in a
    plain userlist). :meth:`url` turns a database URL of that server into one through
    PgBouncer."""

    def __init__(self, server_url: str, binary: str = PGBOUNCER) -> None:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(server_url)
        self._host = str(info.get("host") or "127.0.0.1")
        self._port = int(info.get("port") or 5432)
        self._user = str(info.get("user") or "postgres")
        self._password = str(info.get("password") or "")
        self._binary = binary
        self.port = free_port()
        self._folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _ini(self, folder: Path) -> str:
        server = f"host={self._host} port={self._port}"
        if self._password:
            server += f" password={self._password}"
        return "\n".join(
            [
                "[databases]",
                f"* = {server}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'userlist.txt'}",
                "pool_mode = transaction",
                f"logfile = {folder / 'pgbouncer.log'}",
                f"pidfile = {folder / 'pgbouncer.pid'}",
                "",
            ]
        )

    def _run_as(self) -> str:
        """The owner of the server's socket folder (only it may connect there), else
        ``postgres``."""
        import pwd

        if self._host.startswith("/"):
            return pwd.getpwuid(os.stat(self._host).st_uid).pw_name
        return "postgres"

    def __enter__(self) -> PgBouncer:
        folder = Path(tempfile.mkdtemp(prefix="conserver-supabase-pgbouncer-"))
        self._folder = folder
        (folder / "userlist.txt").write_text(f'"{self._user}" ""\n"other" ""\n')
        (folder / "pgbouncer.ini").write_text(self._ini(folder))
        command = [self._binary, str(folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: run as the server's user
            user = self._run_as()
            shutil.chown(folder, user)
            for child in folder.iterdir():
                shutil.chown(child, user)
            command[1:1] = ["-u", user]
        # Its stderr (where it logs too, besides the log file) goes to a file: a pipe
        # nobody reads fills after some 64 KB of log lines and then blocks PgBouncer.
        with (folder / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
        try:
            self._wait_listening()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start: {self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen within 10 s: {self.log()}")

    def log(self) -> str:
        """What PgBouncer logged (its log file), for failure messages."""
        if self._folder is None:
            return ""
        logged = [self._folder / name for name in ("stderr.log", "pgbouncer.log")]
        text = "".join(p.read_text(errors="replace") for p in logged if p.exists())
        return text[-4000:]

    def url(self, database_url: str, user: str | None = None) -> str:
        """``database_url``'s database through PgBouncer (as ``user``, default the
        server's); PgBouncer's users need no password (trust)."""
        from psycopg.conninfo import conninfo_to_dict

        name = quote(str(conninfo_to_dict(database_url).get("dbname") or "postgres"))
        return f"postgresql://{quote(user or self._user)}@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc: Any) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
