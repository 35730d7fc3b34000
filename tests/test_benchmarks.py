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
