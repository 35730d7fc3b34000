"""The benchmarks keep running (on small inputs; the real runs are make bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..support.services import TESTS

pytestmark = [pytest.mark.integration, pytest.mark.one_database]


def test_search_benchmark_runs_and_reports_every_kind(tmp_path: Path) -> None:
    """It loads, times every filter kind against the unfiltered baseline, explains, and
    writes the same figures as JSON (a timing and a plan summary per kind)."""
    script = TESTS.parent / "benchmarks" / "search.py"
    out = tmp_path / "bench-search.json"
    # Pages of 2 so that the few vCons of one agent still have a second page to time.
    args = ["--count", "1000", "--limit", "2", "--repeat", "2", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for kind in ("no filter", "text", "tel", "tags", "created range", "include_vcons"):
        assert f"\n{kind} " in result.stdout, kind
    assert "x base" in result.stdout
    assert "indexes in the plan" in result.stdout

    document = json.loads(out.read_text("utf-8"))
    assert document["run"]["count"] == 1000
    assert document["run"]["repeat"] == 2
    assert document["run"]["postgres_version"]
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.search import kinds as benchmark_kinds

    kinds = {entry["name"]: entry for entry in document["kinds"]}
    assert list(kinds) == [kind.name for kind in benchmark_kinds("", "")]
    assert kinds["no filter"]["x_base"] == 1.0
    assert kinds["tel"]["filters"]["tel"]  # the value picked from the loaded data
    for entry in document["kinds"]:
        assert entry["skipped"] is None, entry["name"]
        assert entry["p50_ms"] > 0, entry["name"]
        assert entry["p95_ms"] >= entry["p50_ms"], entry["name"]
        plan = entry["plan"]
        assert plan["index_only"] == (not plan["seq_scans"]), entry["name"]
        assert isinstance(plan["indexes"], list), entry["name"]
    assert kinds["no filter"]["plan"]["indexes"]


def test_round_trips_per_operation_against_the_example_design(
    database_url: str, redis_json_url: str
) -> None:
    """One database round trip per save, miss, search and delete, none per hit; the
    example's pattern needs 11, 5, 101 and 1 (counted by the proxy on the wire)."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.round_trips import run

    results = run(database_url, redis_json_url, latency=0.0, repeat=2)["operations"]
    trips = {name: (r["ours"]["round_trips"], r["baseline"]["round_trips"])
             for name, r in results.items()}  # fmt: skip
    assert trips == {
        "save": (1, 11),
        "get miss": (1, 5),
        "get hit": (0, 0),
        "search, 20 hits": (1, 101),
        "delete": (1, 1),
    }


def test_cache_hit_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(TESTS.parent / "benchmarks" / "cache_hit.py"), "--iterations", "50"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "RedisJSON key" in result.stdout
    assert "string key" in result.stdout


def test_change_feed_benchmark_runs(pg_admin_url: str) -> None:
    """Saves with the change-feed triggers, without them, and with the write before the
    change feed, side by side; only the first logs changes (checked by the script)."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.change_feed import render, run

    results = run(pg_admin_url, repeat=10, batch=5)
    assert set(results["operations"]) == {"save, new", "save, again", "save_many of 5"}
    for name in ("save, new", "save, again"):
        assert results["operations"][name]["ratio_p50"] > 0, name
    assert "save, again" in render(results)


def test_exact_text_benchmark_runs(empty_database_url: str) -> None:
    """Saves and reads with the exact text and in the object form, side by side; the
    script checks that only the text form keeps a text."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.exact_text import render, run

    results = run(empty_database_url, repeat=6)
    assert set(results["kinds"]) == {"standard", "1 MiB recording"}
    for found in results["kinds"].values():
        assert found["disk_bytes"]["document_text"] > 0
        assert found["save"]["text"]["p50_ms"] > 0
    assert "disk per vCon" in render(results)


def test_feed_lag_benchmark_runs(tmp_path: Path) -> None:
    """The change feed's lag, woken by LISTEN and polling through PostgREST."""
    out = tmp_path / "bench-feed-lag.json"
    script = TESTS.parent / "benchmarks" / "feed_lag.py"
    args = ["--samples", "10", "--vcons", "20", "--rate", "20", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for name in ("listen", "poll"):
        assert figures[name]["samples"] > 0, name
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p99_ms"], name


def test_bulk_ingest_and_backfill_memory_benchmarks_run(
    pg_admin_url: str, redis_json_url: str
) -> None:
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.bulk_ingest import run

    cases = run(pg_admin_url, redis_json_url, count=60, batch=25)["cases"]
    assert set(cases) == {
        "save_many, psycopg",
        "save_many, PostgREST",
        "save_vcon one by one, psycopg",
        "floor: INSERT ... SELECT",
    }
    assert all(c["vcons_per_second"] > 0 for c in cases.values())
    result = subprocess.run(
        [sys.executable, str(TESTS.parent / "benchmarks" / "backfill_memory.py"),
         "--counts", "50", "100"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "peak RSS MiB" in result.stdout


def test_peer_benchmark_runs_every_contender(tmp_path: Path) -> None:
    """Ours, vcon-server's postgres storage pattern and both floors, single saves and bulk,
    in one run; each contender ran and is reported against the peer and the floors."""
    out = tmp_path / "bench-peer.json"
    script = TESTS.parent / "benchmarks" / "peer.py"
    args = ["--repeat", "4", "--count", "40", "--batches", "10", "20", "--chunk", "20",
            "--json", str(out)]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.peer import FLOOR_A, FLOOR_B, SINGLE

    figures = json.loads(out.read_text("utf-8"))
    assert figures["run"]["count"] == 40
    assert set(figures["single"]) == {"standard", "1 MiB recording"}
    for kind, found in figures["single"].items():
        assert list(found["contenders"]) == SINGLE, kind
        for name, r in found["contenders"].items():
            assert 0 < r["p50_ms"] <= r["p95_ms"], (kind, name)
        assert found["contenders"]["peer, as its save() runs"]["x_peer_p50"] == 1.0
        assert found["contenders"]["single-INSERT floor"]["x_floor_p50"] == 1.0
    bulk = figures["bulk"]
    assert list(bulk) == [
        "ours, save_many batch 10",
        "ours, save_many batch 20",
        "peer, INSERT loop",
        FLOOR_A,
        FLOOR_B,
    ]
    assert all(r["vcons_per_second"] > 0 for r in bulk.values())
    assert all(r["disk_bytes_per_vcon"] > 0 for r in bulk.values())
    assert figures["run"]["document_text_bytes"] > 0
    assert bulk[FLOOR_A]["x_floor_a"] == bulk[FLOOR_B]["x_floor_b"] == 1.0
    for line in ("single save, standard vCon", "bulk ingest of 40", "x floor (b)"):
        assert line in result.stdout, line


def test_save_profile_reports_python_and_sql_parts(pg_admin_url: str, redis_json_url: str) -> None:
    """The profile splits a single, a large and a bulk save into their Python parts and
    times the SQL with parts taken away; the per-function table names our write."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.profile_save import OPS, PARTS, render, run

    results = run(pg_admin_url, redis_json_url, repeat=4, batch=5, many=2)
    assert set(results["python"]) == set(OPS)
    for op, r in results["python"].items():
        assert 0 < r["wall"]["p50_ms"] <= r["wall"]["p95_ms"], op
        assert list(r["parts_ms"]) == [label for label, _, _ in PARTS], op
        assert r["parts_ms"]["database call"] > 0, op
        assert r["parts_ms"]["cache write (RedisTier.store)"] > 0, op
        assert r["parts_ms"]["database call"] < r["profiled_total_ms"], op
    modes = ["as migrated", "no change-feed triggers", "no feed, no search triggers or GIN",
             "rows alone, set-based", "rows + document, set-based"]  # fmt: skip
    for op in OPS:
        assert list(results["sql"][op]) == modes, op
        assert results["sql"][op]["as migrated"]["of_migrated_p50"] == 1.0
        names = [f["function"] for f in results["sql"]["functions"][op]["by_self_time"]]
        assert "conserver_vcon_write" in names, op
    copies = results["sql"]["copy rows"]
    assert list(copies) == modes[:3]
    assert all(r["vcons_per_second"] > 0 for r in copies.values())
    assert "SQL functions by self time" in render(results)


def test_search_scale_benchmark_times_every_kind_at_both_sizes(tmp_path: Path) -> None:
    """It loads the small size, copies it and adds the rest of the corpus, times every
    kind of the search benchmark (uuids and whole vCons) at both sizes, reports p50/p95
    and the growth with both plans, and --check fails on a growth over --max-growth."""
    script = TESTS.parent / "benchmarks" / "search_scale.py"
    out = tmp_path / "bench-search-scale.json"
    # --max-growth 0: every timed kind "grows too much", so --check must exit 1 and list
    # each of them (the real limit is 2.0; tiny databases say nothing about growth).
    args = ["--sizes", "1000", "2000", "--batch", "500", "--limit", "2", "--repeat", "2",
            "--check", "--max-growth", "0", "--json", str(out)]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "p95 grows more than 0.0x in:" in result.stdout
    assert "load 2,000: 1,000 vCons added in" in result.stdout

    document = json.loads(out.read_text("utf-8"))
    run = document["run"]
    assert run["sizes"] == [1000, 2000]
    assert run["load"]["1000"]["tables"]["vcons"] == 1000
    assert run["load"]["2000"]["tables"]["vcons"] == 2000
    assert run["load"]["2000"]["vcons_added"] == 1000
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.search import kinds as benchmark_kinds

    expected = [(k.name, returns) for k in benchmark_kinds("", "") if not k.include_vcons
                for returns in ("uuids", "vcons")]  # fmt: skip
    assert [(e["name"], e["returns"]) for e in document["kinds"]] == expected
    over = set(document["check"]["over_growth"])
    for entry in document["kinds"]:
        label = f"{entry['name']} ({entry['returns']})"
        assert entry["skipped"] is None, label
        small, large = entry["sizes"]["1000"], entry["sizes"]["2000"]
        for at in (small, large):
            assert 0 < at["p50_ms"] <= at["p95_ms"], label
            assert isinstance(at["plan"]["indexes"], list), label
        assert large["matches"] >= small["matches"], label
        assert entry["growth_p95"] == pytest.approx(large["p95_ms"] / small["p95_ms"], abs=0.01)
        assert entry["over"] == (not entry["common"]), label
        assert (label in over) == entry["over"], label
        assert ("plans" in entry) == entry["over"], label


def test_index_trial_times_kinds_with_and_without_the_candidate(
    pg_admin_url: str, fresh_database_url: str
) -> None:
    """The candidate exists only in the copy: the plans there use it, the original's
    do not, and each kind has p50/p95 for both arms and their ratio."""
    import psycopg

    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.search import load
    from benchmarks.search_index_trial import run

    from ..support.services import drop_database, with_database

    load(fresh_database_url, 500, 250, 1, 1)
    create = "CREATE INDEX trial_subject ON vcons (lower(subject) text_pattern_ops)"
    copy = urlsplit(fresh_database_url).path.lstrip("/") + "_trial"
    try:
        results = run(fresh_database_url, create, ["subject"], repeat=2, limit=2)
        found = {}
        for url in (fresh_database_url, with_database(pg_admin_url, copy)):
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT to_regclass('trial_subject')").fetchone()
                found[url] = row is not None and row[0] is not None
    finally:
        drop_database(pg_admin_url, copy)
    assert found == {fresh_database_url: False, with_database(pg_admin_url, copy): True}
    assert list(results["kinds"]) == ["subject (uuids)", "subject (vcons)"]
    for label, entry in results["kinds"].items():
        for arm in ("with", "without"):
            assert 0 < entry[arm]["p50_ms"] <= entry[arm]["p95_ms"], (label, arm)
            assert isinstance(entry[arm]["indexes"], list), (label, arm)
        assert "trial_subject" not in entry["without"]["indexes"], label
        assert entry["with_over_without_p95"] > 0, label
