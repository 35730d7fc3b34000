"""The layout's promises, checked: one public surface, private modules, small modules
and functions, redis-py only in the Redis package, every Redis command through the one
guard, and every script that writes the cache behind the version rule."""

from __future__ import annotations

import ast
import json
import re
import types
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import fakeredis
import pytest

import conserver_supabase
from conserver_supabase import CacheError, SupabaseStorage
from conserver_supabase._redis._guard import inside_guard
from conserver_supabase.testing import MemoryDatabase, make_vcon, put_working_copy

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "conserver_supabase"
#: Source folders held to the size limits (the tests too).
SOURCES = (PACKAGE, ROOT / "tests", ROOT / "benchmarks", ROOT / "scripts")


def python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def test_the_public_names_are_exactly_all() -> None:
    """Like httpx's test_exported_members: what the package namespace offers besides its
    modules is what ``__all__`` lists, sorted."""
    public = {
        name
        for name, value in vars(conserver_supabase).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(conserver_supabase.__all__) - {"__version__"}
    assert conserver_supabase.__all__ == sorted(conserver_supabase.__all__)


def test_every_module_but_testing_is_private() -> None:
    modules = [
        p.relative_to(PACKAGE)
        for p in python_files(PACKAGE)
        if p.name not in ("__init__.py", "__main__.py")
    ]
    public = [m for m in modules if not any(part.startswith("_") for part in m.parts)]
    assert [str(m) for m in public] == ["testing.py"]


def test_no_module_over_500_lines_and_no_function_over_80() -> None:
    too_long: list[str] = []
    for path in python_files(*SOURCES):
        text = path.read_text("utf-8")
        if len(text.splitlines()) > 500:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert too_long == []


def test_only_the_redis_package_imports_redis_py() -> None:
    found: list[str] = []
    for path in python_files(PACKAGE):
        if "_redis" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "redis"]
    assert found == []


def test_every_script_that_writes_the_cache_passes_the_version_rule() -> None:
    """The rule is written once (lua/fence.lua); a script that SETs the cache key or its
    version key without calling it could write a stale vCon."""
    folder = resources.files("conserver_supabase._redis") / "lua"
    writes = re.compile(r"redis\.p?call\('(SET|JSON\.SET)', KEYS\[[12]\]")
    for script in folder.iterdir():
        text = script.read_text("utf-8")
        if script.name != "fence.lua" and writes.search(text):
            assert "fence(" in text, script.name
    assert "local function fence(" in (folder / "fence.lua").read_text("utf-8")


class GuardCheckingRedis(fakeredis.FakeRedis):
    """A fake Redis that fails every command not sent from inside ``Guard.call``."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        assert inside_guard(), f"Redis command {args[0]!r} sent outside Guard.call"
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def checked(*args: Any, **kwargs: Any) -> Any:
            assert inside_guard(), "a Redis pipeline sent outside Guard.call"
            return execute(*args, **kwargs)

        pipe.execute = checked  # type: ignore[method-assign]
        return pipe


def test_every_redis_command_of_the_whole_surface_goes_through_the_guard(
    tmp_path: Path,
) -> None:
    database = MemoryDatabase()
    options = {
        "database_url": "postgresql://unused/x",
        "chain_lists": ["egress"],
        "retry_deadline": 0,
    }
    with SupabaseStorage(
        options, database=database, redis_client=GuardCheckingRedis(server=fakeredis.FakeServer())
    ) as store:
        documents = [make_vcon(seed=i) for i in range(4)]
        store.save_vcon(documents[0])
        store.save_many(documents[1:3])
        put_working_copy(store, documents[3])
        store.save_working_copy(documents[3]["uuid"])
        assert store.get_vcon(documents[0]["uuid"]) == documents[0]
        assert store.get_many([d["uuid"] for d in documents])
        assert store.exists(documents[1]["uuid"])
        assert store.warm_cache() == (4, 0)
        assert store.flush_cache()[0] == 4
        assert store.get_vcon(documents[0]["uuid"]) == documents[0]  # a miss, filled
        store.delete_vcon(documents[0]["uuid"])
        with pytest.raises(CacheError):  # fakeredis has no INFO; the guard still ran it
            store.cache_usage()
        database.fail = conserver_supabase.DatabaseUnavailableError("down", operation="save")
        with pytest.raises(conserver_supabase.DatabaseUnavailableError):
            store.save_vcon(make_vcon(seed=9))  # journaled
        database.fail = None
        assert store.replay_journal().replayed == 1
        store.requeue("again", since=datetime(2020, 1, 1, tzinfo=UTC))
        summary = store.backfill(
            redis_pattern="vcon:*",
            checkpoint=tmp_path / "checkpoint.json",
            report=tmp_path / "report.jsonl",
        )
        assert summary.failed == 0, (tmp_path / "report.jsonl").read_text()
    assert json.dumps(store.stats())  # nothing left unreported
