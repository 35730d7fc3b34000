"""backfill, run as a subprocess the way an operator runs it, against real PostgreSQL
and Redis: every source, the report, resuming after an interruption, idempotence,
flat memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase._backfill import JsonLinesSource, run_backfill
from conserver_supabase.testing import make_vcon

from ..support.cli import env, run
from ..support.faults import CuttableProxy, postgres_upstream
from ..support.services import environment_without_services, redis_client

pytestmark = pytest.mark.integration


def versions(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT uuid::text, version FROM conserver_vcon_documents")
        return dict(rows.fetchall())


def jsonl(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), "utf-8")
    return path


def test_a_directory_with_bad_files(database_url: str, redis_json_url: str, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    documents = [make_vcon(seed=i) for i in range(25)]
    for index, document in enumerate(documents):
        folder = source / "sub" if index % 2 else source
        suffix = ".vcon.json" if index % 3 else ".json"
        (folder / f"{index:03d}{suffix}").write_text(json.dumps(document), "utf-8")
    (source / "broken.json").write_text('{"uuid": ', "utf-8")
    bad = make_vcon(seed=99)
    bad["parties"] = "nobody"
    (source / "sub" / "bad.vcon.json").write_text(json.dumps(bad), "utf-8")
    (source / "notes.txt").write_text("not a vCon file, not read", "utf-8")
    args = [
        "--batch",
        "10",
        "--checkpoint",
        str(tmp_path / "ck"),
        "--report",
        str(tmp_path / "rep"),
    ]
    where = env(database_url, redis_json_url)

    first = run("backfill", str(source), *args, env=where)
    assert first.returncode == 4, first.stderr
    assert first.stdout.startswith("saved 25, skipped 0 (done in an earlier run), failed 2 in ")
    assert f"failures with their reasons: {tmp_path / 'rep'}" in first.stdout
    failures = [json.loads(line) for line in (tmp_path / "rep").read_text().splitlines()]
    assert {f["source"] for f in failures} == {"broken.json", "sub/bad.vcon.json"}
    assert any("not valid JSON" in f["error"] for f in failures)
    assert any("parties" in f["error"] and f["uuid"] == bad["uuid"] for f in failures)
    assert versions(database_url) == {d["uuid"]: 1 for d in documents}
    r = redis_client(redis_json_url)
    assert r.keys("vcon:*") == []  # an import does not fill the cache
    assert r.keys("egress*") == []

    again = run("backfill", str(source), *args, env=where)
    assert again.returncode == 0
    assert "already complete" in again.stdout
    assert versions(database_url) == {d["uuid"]: 1 for d in documents}

    restarted = run("backfill", str(source), *args, "--restart", "--json", env=where)
    assert restarted.returncode == 4
    assert json.loads(restarted.stdout)["saved"] == 25
    assert versions(database_url) == {d["uuid"]: 2 for d in documents}  # same rows again
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        assert store.get_many([d["uuid"] for d in documents]) == {d["uuid"]: d for d in documents}


def test_standard_input_and_a_checkpoint_of_another_source(
    database_url: str, redis_json_url: str, tmp_path: Path
) -> None:
    documents = [make_vcon(seed=i) for i in range(3)]
    text = "".join(json.dumps(d) + "\n" for d in documents[:2]) + "\n[1, 2]\n"
    text += json.dumps(documents[2]) + "\n"
    where = env(database_url, redis_json_url)
    ck = tmp_path / "ck"
    result = subprocess.run(
        [sys.executable, "-m", "conserver_supabase", "backfill", "-", "--checkpoint", str(ck),
         "--report", str(tmp_path / "rep"), "--json"],
        input=text, capture_output=True, text=True, check=False, timeout=120,
        env={**environment_without_services(), **where},
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["saved"], summary["failed"]) == (3, 1)
    (failure,) = [json.loads(line) for line in (tmp_path / "rep").read_text().splitlines()]
    assert failure == {"source": "stdin:4", "uuid": None, "error": "is not a JSON object but list"}
    other = run("backfill", str(jsonl(tmp_path / "x.jsonl", documents)), "--checkpoint", str(ck),
                env=where)  # fmt: skip
    assert other.returncode == 2
    assert "belongs to a backfill of jsonl <stdin>" in other.stderr
    missing = run("backfill", str(tmp_path / "nothing-here"), env=where)
    assert missing.returncode == 2
    assert "neither a directory nor a file" in missing.stderr


def test_redis_keys_and_push(database_url: str, redis_json_url: str, tmp_path: Path) -> None:
    r = redis_client(redis_json_url)
    documents = [make_vcon(seed=i) for i in range(5)]
    for index, document in enumerate(documents):
        if index % 2:
            r.set(f"import:{index}", json.dumps(document))
        else:
            r.json().set(f"import:{index}", "$", document)
    r.rpush("import:list", "x")
    r.set("elsewhere", json.dumps(make_vcon(seed=50)))
    config = tmp_path / "config.yml"
    config.write_text(
        "storages:\n  s:\n    module: conserver_supabase\n    options:\n"
        f"      database_url: {database_url}\n      redis_url: {redis_json_url}\n"
        "      chain_lists: [egress]\n"
    )
    result = run(
        "backfill", "--redis-pattern", "import:*", "--push", "--batch", "2",
        "--checkpoint", str(tmp_path / "ck"), "--report", str(tmp_path / "rep"),
        "--config", str(config),
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert result.stdout.startswith("saved 5, skipped 0 (done in an earlier run), failed 1")
    assert "holds a list" in (tmp_path / "rep").read_text()
    assert set(versions(database_url)) == {d["uuid"] for d in documents}
    assert sorted(u.decode() for u in r.lrange("egress", 0, -1)) == sorted(
        d["uuid"] for d in documents
    )


def test_an_interrupted_backfill_resumes(
    database_url: str, redis_json_url: str, tmp_path: Path
) -> None:
    """The database goes away in the middle (exit code 1, the checkpoint keeps the last
    committed batch); a rerun skips what was done and saves the rest once."""
    documents = [make_vcon(seed=i) for i in range(600)]
    source = jsonl(tmp_path / "in.jsonl", documents)
    ck, rep = tmp_path / "ck", tmp_path / "rep"
    connect, template = postgres_upstream(database_url)
    with CuttableProxy(connect) as proxy:
        config = tmp_path / "config.yml"
        config.write_text(
            "storages:\n  s:\n    module: conserver_supabase\n    options:\n"
            f"      database_url: {template.format(port=proxy.port)}\n"
            f"      redis_url: {redis_json_url}\n      retry_deadline: 0.3\n      timeout: 1\n"
        )

        def cut_after_progress() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if json.loads(ck.read_text()).get("saved", 0) >= 100:
                        proxy.cut()
                        return
                except (OSError, ValueError):
                    pass
                time.sleep(0.005)

        cutter = threading.Thread(target=cut_after_progress)
        cutter.start()
        first = run("backfill", str(source), "--batch", "20", "--checkpoint", str(ck),
                    "--report", str(rep), "--config", str(config))  # fmt: skip
        cutter.join()
        assert first.returncode == 1, first.stdout + first.stderr
        assert "database unavailable" in first.stderr
        done = json.loads(ck.read_text())
        assert 100 <= done["saved"] < 600
        assert done.get("done") is not True
        proxy.restore()
        second = run("backfill", str(source), "--batch", "20", "--checkpoint", str(ck),
                     "--report", str(rep), "--config", str(config), "--json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["skipped"] == done["saved"]
    assert summary["saved"] == 600 - done["saved"]
    stored = versions(database_url)
    assert set(stored) == {d["uuid"] for d in documents}
    # At most the batch in flight at the cut was saved twice (idempotent); none more.
    assert sum(1 for v in stored.values() if v > 1) <= 20


def test_a_killed_backfill_resumes(database_url: str, redis_json_url: str, tmp_path: Path) -> None:
    documents = [make_vcon(seed=i) for i in range(800)]
    source = jsonl(tmp_path / "in.jsonl", documents)
    ck = tmp_path / "ck"
    command = [sys.executable, "-m", "conserver_supabase", "backfill", str(source), "--batch",
               "25", "--checkpoint", str(ck), "--report", str(tmp_path / "rep")]  # fmt: skip
    process = subprocess.Popen(
        command, env={**environment_without_services(), **env(database_url, redis_json_url)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(ck.read_text()).get("saved", 0) >= 100:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = json.loads(ck.read_text())["saved"]
    assert before < 800, "the backfill finished before it could be killed"
    resumed = run(*command[3:], "--json", env=env(database_url, redis_json_url))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == before
    assert summary["saved"] == 800 - before
    assert set(versions(database_url)) == {d["uuid"] for d in documents}


def test_memory_stays_flat_as_the_input_grows(
    database_url: str, redis_json_url: str, tmp_path: Path
) -> None:
    """Peak traced memory of a backfill of 3,000 vCons is about that of 300."""
    peaks = []
    options = {"database_url": database_url, "redis_url": redis_json_url}
    for count in (300, 3000):
        source = jsonl(tmp_path / f"{count}.jsonl", [make_vcon(seed=i) for i in range(count)])
        with SupabaseStorage(options) as store:
            tracemalloc.start()
            summary = run_backfill(
                store,
                JsonLinesSource(source),
                checkpoint=tmp_path / f"{count}.ck",
                report=tmp_path / f"{count}.rep",
                batch=100,
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert summary.saved == count
    assert peaks[1] < peaks[0] * 1.5, peaks
