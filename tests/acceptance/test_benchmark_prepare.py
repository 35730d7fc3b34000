"""benchmarks/prepare.py on small inputs (beside tests/acceptance/test_benchmarks.py):
every part and contender reported, with its ratio to the floor of its group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_prepare_benchmark_reports_every_part(empty_database_url: str) -> None:
    """Validation and the number check against dumps, the exact text's literal against
    psycopg's own, for both vCon kinds."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.prepare import render, run

    results = run(empty_database_url, repeat=3, batch=5)
    for case in ("standard", "1 MiB recording"):
        found = results["cases"][case]
        assert set(found["checks"]) == {"dumps (floor)", "validate_vcon", "holds_exactly"}
        assert set(found["parameter"]) == {"psycopg Jsonb + libpq quoting", "exact_jsonb (ours)"}
        assert found["checks"]["dumps (floor)"]["x_p50"] == 1.0
        assert all(entry["x_p50"] > 0 for entry in found["checks"].values())
    assert "exact_jsonb (ours)" in render(results)
