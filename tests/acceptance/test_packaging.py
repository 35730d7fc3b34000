"""The sdist and the wheel built from it pass ``twine check`` and carry the LICENSE; the
wheel installs next to the conserver's redis==4.6.0 pin, imports, and drives a real
Redis through redis-py 4.6 (timeouts, retries, scripts, RedisJSON)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ..support.cluster_deployment import ClusterDeployment
from ..support.sentinel_deployment import SentinelDeployment
from ..support.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def interpreters() -> list[str]:
    """This interpreter, plus the other supported minor version when pyenv has it."""
    found = [sys.executable]
    want = "3.13" if sys.version_info[:2] == (3, 12) else "3.12"
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{want}.*/bin/python{want}"))
    if candidates:
        found.append(candidates[-1])
    elif IN_CI:
        found.append(f"missing-python{want}")
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist (so a file the
    sdist lacks is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = out.glob("conserver_supabase-*.tar.gz")
    (built,) = out.glob("conserver_supabase-*.whl")
    return sdist, built


@pytest.fixture(scope="module")
def wheel(dist: tuple[Path, Path]) -> Path:
    return dist[1]


def test_sdist_and_wheel_pass_twine_check_and_carry_the_license(dist: tuple[Path, Path]) -> None:
    """What an upload would refuse (metadata, the README as long description) fails here."""
    sdist, built = dist
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(built)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout
    license_text = (ROOT / "LICENSE").read_text("utf-8")
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the conserver-supabase authors" in license_text
    root = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(f"{root}/LICENSE")
        assert member is not None
        assert member.read().decode() == license_text
        pkg_info = archive.extractfile(f"{root}/PKG-INFO")
        assert pkg_info is not None
        assert "License-Expression: MIT" in pkg_info.read().decode()
    info = "-".join(root.split("-")[:2]) + ".dist-info"
    with zipfile.ZipFile(built) as archive:
        assert archive.read(f"{info}/licenses/LICENSE").decode() == license_text
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata


def sh(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


REDIS_46_PROBE = """
import json, sys, uuid
import redis
from conserver_supabase import CacheError, StorageConfig
from conserver_supabase._redis import Entry, RedisTier
from conserver_supabase._telemetry import Telemetry


def tier(options):
    return RedisTier(StorageConfig.from_options(options), Telemetry(lambda: "closed"))


assert redis.__version__ == "4.6.0", redis.__version__
url, unreachable = sys.argv[1], sys.argv[2]
cache = tier({"redis_url": url, "cache_ttl": 60})
client = cache._connection.client
vcon_uuid = str(uuid.uuid4())
assert cache.has_json_module()
entry = Entry(vcon_uuid, json.dumps({"uuid": vcon_uuid}), "overwrite", 0)
assert cache._cache.write(entry, ["q"]) == 1
assert cache._cache.read("vcon:" + vcon_uuid, vcon_uuid) == {"uuid": vcon_uuid}
client.set("vcon:s" + vcon_uuid, json.dumps({"uuid": "s"}))  # a hit's error reply, read
for _ in range(2):
    assert cache._cache.read("vcon:s" + vcon_uuid, vcon_uuid) == {"uuid": "s"}
    assert cache._cache.read("vcon:" + vcon_uuid, vcon_uuid) == {"uuid": vcon_uuid}
assert client.type("vcon:" + vcon_uuid) == b"ReJSON-RL"
assert 0 < client.ttl("vcon:" + vcon_uuid) <= 60
assert client.lpop("q").decode() == vcon_uuid
assert cache._cache.delete(vcon_uuid)
import socket, threading
def fault_server(close):
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(256)
    held, count = [], [0]
    def serve():
        while True:
            conn, _ = sock.accept(); count[0] += 1
            conn.close() if close else held.append(conn)
    threading.Thread(target=serve, daemon=True).start()
    return f"redis://127.0.0.1:{sock.getsockname()[1]}/0", count
closing, closing_count = fault_server(True)
silent, silent_count = fault_server(False)
for url in (unreachable, closing, silent):
    options = {"redis_url": url, "redis_timeout": 0.3}
    down = tier(options)
    try:
        down._cache.read("vcon:x", "x")
    except CacheError as exc:  # not RecursionError (redis-py 4.6 with health checks)
        assert exc.unavailable, exc
    else:
        raise AssertionError("no CacheError")
# redis-py 4.6 does not retry a failure inside the connection handshake (8.x retries
# it once): what matters is that it is bounded, not ~110 reconnects then RecursionError.
assert closing_count[0] == 1, closing_count
assert silent_count[0] == 1, silent_count  # never after a timeout
# Through Sentinel: the master shuts down; the next write waits for the promoted replica.
options = {"redis_url": sys.argv[3], "redis_timeout": 0.5, "redis_failover_timeout": 15.0}
ha = tier(options)
first, second = str(uuid.uuid4()), str(uuid.uuid4())
assert ha._cache.write(Entry(first, json.dumps({"uuid": first}), "overwrite", 0), ["ha"]) == 1
old = ha._connection.client.connection_pool.get_master_address()
try:
    redis.Redis(*old).shutdown(nosave=True)  # waits for the replica to catch up
except redis.exceptions.ConnectionError:
    pass
assert ha._cache.write(Entry(second, json.dumps({"uuid": second}), "overwrite", 0), ["ha"]) == 1
assert ha._connection.client.connection_pool.get_master_address() != old
assert [u.decode() for u in ha._connection.client.lrange("ha", 0, -1)] == [first, second]
# Redis Cluster: a vCon's keys in one slot, pushes after the write; the master serving
# the chain list shuts down; the next push waits for its replica to take over.
options = {"redis_url": sys.argv[4], "redis_timeout": 0.5, "redis_failover_timeout": 15.0}
cl = tier(options)
assert cl._connection.cluster and not cl._cache.pushes_in_write
first, second = str(uuid.uuid4()), str(uuid.uuid4())
assert cl._cache.write(Entry(first, json.dumps({"uuid": first}), "overwrite", 1)) == 1
assert cl._chains.push([first], ["cl"]) == {}
assert cl._cache.read("vcon:" + first, first) == {"uuid": first}
assert cl._cache.write_many([Entry(second, json.dumps({"uuid": second}), "overwrite", 1)]) == [1]
node = cl._connection.client.get_node_from_key("cl")
try:
    redis.Redis(node.host, node.port).shutdown(nosave=True)
except redis.exceptions.ConnectionError:
    pass
assert cl._chains.push([second], ["cl"]) == {}
assert cl._connection.client.get_node_from_key("cl").port != node.port
assert [u.decode() for u in cl._connection.client.lrange("cl", 0, -1)] == [first, second]
assert cl.flush() == (2, 0)
print("ok")
"""


@pytest.mark.parametrize("python", interpreters())
def test_wheel_installs_beside_redis_4_6_pin(
    python: str, wheel: Path, tmp_path: Path, redis_json_url: str, unreachable_redis_url: str
) -> None:
    if not Path(python).exists():
        pytest.fail(f"{python}: the supported Python is not installed here")
    venv = tmp_path / "venv"
    sh(python, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    sh(*pip, "install", "-q", "redis==4.6.0")
    sh(*pip, "install", "-q", str(wheel))
    assert "Version: 4.6.0" in sh(*pip, "show", "redis")
    sh(*pip, "check")
    probe = (
        "import conserver_supabase, redis, supabase;"
        "assert redis.__version__ == '4.6.0', redis.__version__;"
        "print(conserver_supabase.__version__)"
    )
    version = sh(str(venv / "bin" / "python"), "-c", probe).strip()
    assert (
        version
        == sh(
            sys.executable, "-c", "import conserver_supabase; print(conserver_supabase.__version__)"
        ).strip()
    )
    files = sh(
        str(venv / "bin" / "python"),
        "-c",
        "import importlib.resources as r;"
        "sql = r.files('conserver_supabase') / 'sql';"
        "print(sorted(p.name for folder in ('migrations', 'functions')"
        " for p in (sql / folder).iterdir()))",
    )
    assert "0001_vcon_tables.sql" in files
    assert "0002_documents_and_functions.sql" in files
    assert "conserver_vcon_save.sql" in files
    assert sh(str(venv / "bin" / "conserver-supabase"), "migrate", "--print").startswith(
        "-- conserver-supabase database migrations"
    )
    with SentinelDeployment() as sentinels, ClusterDeployment() as cluster:
        probe_result = sh(
            str(venv / "bin" / "python"), "-c", REDIS_46_PROBE,
            redis_json_url, unreachable_redis_url, sentinels.url, cluster.url,
        )  # fmt: skip
    assert probe_result.strip() == "ok"
