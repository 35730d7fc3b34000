"""A PostgreSQL primary with a real streaming standby, for the read-replica tests.

The standby is made the way replicas are (``pg_basebackup -R -X stream``), so it is
read-only and replays the primary's WAL like a Supabase read replica. Tests make its
lag deterministic: :meth:`ReplicatedPostgres.pause` stops the replay (the standby keeps
answering, with what it had), :meth:`ReplicatedPostgres.resume` lets it catch up.

The binaries are those of the server the suite runs against (the BINDIR it reports,
e.g. the embedded PostgreSQL's or Debian's ``/usr/lib/postgresql/<major>/bin``), so
the replica tests run on every PostgreSQL version the suite covers. PostgreSQL
refuses to run as root: as root, the servers run as the ``postgres`` system user (or
``pgserver``, which the embedded server creates), as ``.ci/run`` does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["ReplicatedPostgres", "binaries_for", "wait_until"]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition()`` every 20 ms until it returns something true; return that.
    Raise ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)


def binaries_for(admin_url: str) -> Path | None:
    """The directory of initdb/pg_ctl/pg_basebackup of the server at ``admin_url``
    (its ``pg_config`` BINDIR, else Debian's for its major version), or ``None`` when
    they are not installed."""
    with psycopg.connect(admin_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT setting FROM pg_config WHERE name = 'BINDIR'").fetchone()
        version = conn.execute("SHOW server_version_num").fetchone()
    wanted = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    candidates = [Path(row[0])] if row else []
    if version:
        candidates.append(Path(f"/usr/lib/postgresql/{int(version[0]) // 10000}/bin"))
    for directory in candidates:
        if all((directory / name).exists() for name in wanted):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _system_user() -> str | None:
    """Who runs the servers: ``None`` (this process's user) unless we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'pgserver' user to run PostgreSQL")


class ReplicatedPostgres:
    """``with ReplicatedPostgres(bin_dir) as pair``: ``pair.primary_url`` (read-write)
    and ``pair.standby_url`` (a hot standby streaming from it), both superuser URLs of
    database ``postgres`` on 127.0.0.1. Everything lives in a temporary directory that
    is removed on exit."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _system_user()
        self.directory = Path(tempfile.mkdtemp(prefix="conserver-supabase-replica."))
        self.ports = (_free_port(), _free_port())
        self.primary_url = f"postgresql://postgres@127.0.0.1:{self.ports[0]}/postgres"
        self.standby_url = f"postgresql://postgres@127.0.0.1:{self.ports[1]}/postgres"
        self._started: list[Path] = []

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()[-800:]}"
            )

    def start(self) -> None:
        """initdb the primary, start it, clone it with pg_basebackup and start the clone
        as a streaming standby."""
        if self.user is not None:
            shutil.chown(self.directory, self.user, self.user)
        primary, standby = self.directory / "primary", self.directory / "standby"
        self._run(
            "initdb", "-D", str(primary), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        self._pg_ctl_start(primary, self.ports[0])
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.ports[0]), "-U", "postgres",
            "-D", str(standby), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        self._pg_ctl_start(standby, self.ports[1])

    def _pg_ctl_start(self, data: Path, port: int) -> None:
        options = f"-p {port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-l", f"{data}.log", "-w", "-t", "60", "-o", options,
                  "start")  # fmt: skip
        self._started.append(data)

    def stop(self) -> None:
        """Stop both servers (standby first) and remove their files."""
        for data in reversed(self._started):
            with contextlib.suppress(RuntimeError):  # already gone: the files go anyway
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        self._started.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ReplicatedPostgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the standby's lag ------------------------------------------------------------

    def _query(self, url: str, statement: str, params: Sequence[Any] = ()) -> Any:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(statement, list(params)).fetchone()
        return None if row is None else row[0]

    def pause(self, timeout: float = 10.0) -> None:
        """Stop replaying WAL on the standby; return once it is paused for certain (a
        pause request takes effect at the next WAL record, so the primary writes one)."""
        self._query(self.standby_url, "SELECT pg_wal_replay_pause()")
        self._query(self.primary_url, "SELECT pg_current_xact_id()")  # a commit record
        wait_until(
            lambda: (
                self._query(self.standby_url, "SELECT pg_get_wal_replay_pause_state()") == "paused"
            ),
            timeout,
            "the standby pausing its replay",
        )

    def resume(self) -> None:
        """Let the standby replay again (it catches up on its own)."""
        self._query(self.standby_url, "SELECT pg_wal_replay_resume()")

    def catch_up(self, timeout: float = 10.0) -> None:
        """Return once the standby has replayed everything the primary wrote so far."""
        target = self._query(self.primary_url, "SELECT pg_current_wal_lsn()::text")
        wait_until(
            lambda: self._query(
                self.standby_url, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            ),
            timeout,
            "the standby catching up with the primary",
        )
