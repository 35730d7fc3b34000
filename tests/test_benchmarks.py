"""The benchmarks keep running (on a few hundred vCons; the real run is make bench-search)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import TESTS

pytestmark = pytest.mark.integration


def test_search_benchmark_runs_and_reports_every_kind() -> None:
    """It loads, times every filter kind against the unfiltered baseline, and explains."""
    script = TESTS.parent / "scripts" / "bench_search.py"
    result = subprocess.run(
        [sys.executable, str(script), "--count", "300", "--repeat", "2"],
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
