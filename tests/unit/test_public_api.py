"""The public surface and what importing the package does (and must not do)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

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


LOGGING_PROBE = """
import io, logging, logging.handlers, sys, warnings
warnings.simplefilter("error")  # a host running with -W error
root = logging.getLogger()
root.setLevel(logging.WARNING)
root.addHandler(logging.StreamHandler(io.StringIO()))
file_handler = logging.FileHandler(sys.argv[2], mode="w")
root.addHandler(file_handler)
memory = logging.handlers.MemoryHandler(100, target=logging.StreamHandler(io.StringIO()))
logging.getLogger("app").addHandler(memory)
logging.getLogger("noisy").disabled = True
logging.getLogger("requests").setLevel(logging.DEBUG)

def state():
    named = [logging.getLogger(name) for name in ("app", "noisy", "requests", "paramiko")]
    # Handlers of the host's loggers only: requests adds a NullHandler to its own.
    loggers = [(lg.level, lg.propagate, lg.disabled) for lg in named], named[0].handlers[:]
    return (root.level, list(root.handlers), sorted(vars(root)), loggers,
            file_handler.stream is not None, memory.target is not None, list(warnings.filters))

before = state()
if sys.argv[1] == "ours":
    from conserver_supabase._documents import as_document
    class Obj:
        def to_dict(self):
            return {"uuid": "0190b0a8-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}
    as_document(Obj())
    assert "vcon" not in sys.modules, "saving an object must not import vcon"
    from conserver_supabase._library import vcon_module
    module = vcon_module()
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vcon as module
assert module.Vcon.build_new().uuid
print("unchanged" if state() == before else f"changed: {before} -> {state()}")
"""


def test_vcon_is_imported_with_the_host_logging_kept(tmp_path: Any) -> None:
    """Saving a vCon object imports nothing; building a vcon.Vcon imports the library
    with every logger, handler, the root's attributes and the warning filters as the
    host left them (a bare ``import vcon`` changes them: the control run)."""
    outcomes = {}
    for how in ("ours", "bare"):
        result = subprocess.run(
            [sys.executable, "-c", LOGGING_PROBE, how, str(tmp_path / f"{how}.log")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outcomes[how] = result.stdout
    assert outcomes["ours"].strip() == "unchanged"
    assert "\nchanged: " in outcomes["bare"]
    # ... and the library then prints its INFO records to the host's stdout.
    assert "INFO - Created new Vcon" in outcomes["bare"]
