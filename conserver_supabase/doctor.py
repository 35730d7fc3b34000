"""``conserver-supabase doctor``: check a configuration against the real services.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, and says how to fix what
failed. Nothing in the database is written; in Redis only a probe key is written
(with the cache TTL) and removed at once.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import migrations
from ._boundary import cache_errors
from .cache import RedisCache
from .config import StorageConfig
from .database import open_database
from .errors import ConfigurationError, ConserverSupabaseError

__all__ = ["Check", "key_role", "load_conserver_options", "run_doctor"]


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: str  # "ok" | "warn" | "FAIL"
    detail: str


def load_conserver_options(path: Path, storage: str | None) -> Mapping[str, Any] | None:
    """Return the ``options:`` of our storage in a conserver's config.yml.

    ``storage`` names the entry under ``storages:``; by default the one whose
    ``module`` is ``conserver_supabase``.
    """
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no type stubs
    except ImportError:  # pragma: no cover - the conserver always has PyYAML
        raise ConfigurationError("reading config.yml needs PyYAML: pip install pyyaml") from None
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may hold a key: say where only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigurationError(f"cannot parse {path}{where}: {problem}") from None
    storages = (loaded or {}).get("storages") if isinstance(loaded, dict) else None
    if not isinstance(storages, dict):
        raise ConfigurationError(f"{path} has no 'storages:' section")
    if storage is None:
        ours = [n for n, e in storages.items() if (e or {}).get("module") == "conserver_supabase"]
        if not ours:
            raise ConfigurationError(
                f"{path}: no storage uses module conserver_supabase "
                f"(storages: {', '.join(map(str, storages)) or 'none'})"
            )
        storage = ours[0]
    entry = storages.get(storage)
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path}: no storage named {storage!r} under 'storages:'")
    options = entry.get("options")
    return options if isinstance(options, Mapping) else None


def run_doctor(config: StorageConfig, out: TextIO) -> list[Check]:
    """Run every check, print one line each to ``out``; return the checks."""
    checks: list[Check] = []

    def record(name: str, probe: Callable[[], tuple[str, str]]) -> None:
        try:
            status, detail = probe()
        except ConserverSupabaseError as exc:
            status, detail = "FAIL", str(exc)
        checks.append(Check(name, status, detail))
        print(f"{status:<5} {name}: {detail}", file=out)

    summary = ", ".join(f"{k}={v}" for k, v in config.describe().items())
    print(f"configuration: {summary}", file=out)
    if config.transport == "postgrest" and config.key is not None:
        key = config.key.reveal()
        record("key", lambda: _check_key(key))
    record("database", lambda: _check_database(config))
    cache = RedisCache.from_config(config)
    try:
        record("redis", lambda: _check_redis(cache, config))
        if config.chain_lists:
            record("chain lists", lambda: _check_lists(cache, config))
    finally:
        cache.close()
    failed = sum(check.status == "FAIL" for check in checks)
    print("all checks passed" if not failed else f"{failed} check(s) failed", file=out)
    return checks


def key_role(key: str) -> str | None:
    """The role a Supabase key grants, read from the key itself (nothing is verified):
    a legacy JWT's ``role`` claim, or ``service_role``/``anon`` for ``sb_secret_``/
    ``sb_publishable_`` keys; ``None`` when it cannot be told."""
    if key.startswith("sb_secret_"):
        return "service_role"
    if key.startswith("sb_publishable_"):
        return "anon"
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else None


def _check_key(key: str) -> tuple[str, str]:
    role = key_role(key)
    if role == "service_role":
        return "ok", "a service-role key"
    if role is None:
        return "warn", "not a Supabase JWT or sb_ key: its role cannot be told"
    return "FAIL", (
        f"the key grants the role {role!r}: vcon-mcp's tables have row-level security and "
        "this storage's functions are granted to service_role, not to anon; use the "
        "project's service-role (secret) key"
    )


def _check_database(config: StorageConfig) -> tuple[str, str]:
    database = open_database(config)
    try:
        # Asking about a uuid that does not exist proves: reachable, key accepted,
        # functions installed and executable (up to the newest migration). It writes
        # nothing: deleting a vCon that does not exist returns before any write.
        probe = str(uuid.uuid4())
        database.fetch(probe)
        database.exists(probe)
        database.delete(probe)
        database.saved_between({"since": "9999-01-01T00:00:00Z", "limit": 1})
    finally:
        database.close()
    where = f"{config.transport} transport, schema {config.schema}"
    if config.database_url is not None:
        waiting = migrations.pending(config.database_url.reveal(), config.schema)
        if waiting:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in waiting)
            return "FAIL", f"{where}: migrations pending ({names}): run conserver-supabase migrate"
        return "ok", f"{where}: reachable, functions installed, migrations current"
    return "ok", f"{where}: reachable, key accepted, functions installed"


def _check_redis(cache: RedisCache, config: StorageConfig) -> tuple[str, str]:
    has_json = cache.has_json_module()
    probe = str(uuid.uuid4())
    cache.write(probe, '{"probe": true}', mode="fill")  # scripts allowed, JSON.SET allowed
    with cache_errors("probe", None, cache.location):  # no tombstone: it never was a vCon
        cache.client.delete(cache.key(probe), cache.version_key(probe))
    fmt = {"auto": "RedisJSON" if has_json else "JSON strings", "json": "RedisJSON"}.get(
        config.cache_format, "JSON strings"
    )
    detail = (
        f"{cache.location}: reachable, RedisJSON {'loaded' if has_json else 'not loaded'}; "
        f"new cache keys are {fmt}, TTL {config.cache_ttl} s"
    )
    if not has_json and config.cache_key_prefix == "vcon:":
        return "warn", detail + (
            "; a conserver keeps its vCons as RedisJSON: point redis_url at its Redis Stack"
        )
    return "ok", detail


def _check_lists(cache: RedisCache, config: StorageConfig) -> tuple[str, str]:
    with cache_errors("chain list check", None, cache.location):
        pipe = cache.client.pipeline(transaction=False)
        for name in config.chain_lists:
            pipe.type(name)
            pipe.llen(name)
        replies = pipe.execute(raise_on_error=False)
    parts, broken = [], []
    for index, name in enumerate(config.chain_lists):
        kind, length = replies[2 * index], replies[2 * index + 1]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("list", "none"):
            broken.append(f"{name} holds a {kind}, not a list")
        else:
            parts.append(f"{name} ({length if kind == 'list' else 0} queued)")
    if broken:
        return "FAIL", "; ".join(broken) + ": rename the list in chain_lists or remove that key"
    return "ok", ", ".join(parts)
