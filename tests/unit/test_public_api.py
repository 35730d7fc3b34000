"""The public surface and what importing the package does (and must not do)."""

from __future__ import annotations

import subprocess
import sys

import conserver_supabase


def test_all_is_sorted_and_complete() -> None:
    names = conserver_supabase.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(conserver_supabase, name), name


def test_version_is_a_string() -> None:
    assert isinstance(conserver_supabase.__version__, str)
    assert conserver_supabase.__version__.count(".") >= 2


def test_default_options_is_a_plain_mapping_of_every_option() -> None:
    options = conserver_supabase.default_options
    assert isinstance(options, dict)
    for name in (
        "url",
        "key",
        "database_url",
        "schema",
        "timeout",
        "redis_url",
        "cache_ttl",
        "cache_key_prefix",
        "chain_lists",
    ):
        assert name in options
    assert options["cache_key_prefix"] == "vcon:"


IMPORT_PROBE = """
import logging, sys
root = logging.getLogger()
before = (root.level, list(root.handlers), logging.getLogger().manager.disable)
import conserver_supabase
after = (root.level, list(root.handlers), logging.getLogger().manager.disable)
assert before == after, (before, after)
assert "vcon" not in sys.modules, "the vcon library must be imported lazily"
assert "supabase" not in sys.modules and "psycopg" not in sys.modules and "redis" not in sys.modules
print("ok")
"""


def test_import_has_no_side_effects() -> None:
    """No logging configuration, no vcon/supabase/psycopg/redis import at import time."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
