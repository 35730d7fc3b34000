"""``conserver-supabase doctor``: check a configuration against the real services.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, and says how to fix what
failed. Nothing in the database is written; in Redis only a probe key is written
(with the cache TTL) and removed at once.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from . import _migrations as migrations
from ._errors import ConserverSupabaseError

if TYPE_CHECKING:
    from ._storage import SupabaseStorage

__all__ = ["Check", "key_role", "run_doctor"]


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: str  # "ok" | "warn" | "FAIL"
    detail: str


def run_doctor(storage: SupabaseStorage, out: TextIO) -> list[Check]:
    """Run every check of ``storage``'s configuration, print one line each to ``out``;
    return the checks."""
    config = storage.config
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
    record("database", lambda: _check_database(storage))
    record("redis", lambda: _check_redis(storage))
    if config.chain_lists:
        record("chain lists", lambda: _check_lists(storage))
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


def _check_database(storage: SupabaseStorage) -> tuple[str, str]:
    config = storage.config
    database = storage._database
    # Asking about a uuid that does not exist proves: reachable, key accepted, functions
    # installed and executable (up to the newest migration). It writes nothing: deleting
    # a vCon that does not exist returns before any write.
    probe = str(uuid.uuid4())
    database.fetch([probe])
    database.exists(probe)
    database.delete(probe)
    database.saved_between({"since": "9999-01-01T00:00:00Z", "limit": 1})
    where = f"{config.transport} transport, schema {config.schema}"
    if config.database_url is not None:
        url = config.database_url.reveal()
        waiting = [f"{m.version:04d}_{m.name}" for m in migrations.pending(url, config.schema)]
        waiting += [f.name for f in migrations.outdated_functions(url, config.schema)]
        if waiting:
            names = ", ".join(waiting)
            return "FAIL", f"{where}: migrations pending ({names}): run conserver-supabase migrate"
        return "ok", f"{where}: reachable, functions installed, migrations current"
    return "ok", f"{where}: reachable, key accepted, functions installed"


def _check_redis(storage: SupabaseStorage) -> tuple[str, str]:
    config, redis = storage.config, storage._redis
    has_json = redis.has_json_module()
    redis.probe(str(uuid.uuid4()))  # scripts allowed, JSON.SET allowed
    fmt = {"auto": "RedisJSON" if has_json else "JSON strings", "json": "RedisJSON"}.get(
        config.cache_format, "JSON strings"
    )
    detail = (
        f"{redis.location}: reachable, RedisJSON {'loaded' if has_json else 'not loaded'}; "
        f"new cache keys are {fmt}, TTL {config.cache_ttl} s"
    )
    if not has_json and config.cache_key_prefix == "vcon:":
        return "warn", detail + (
            "; a conserver keeps its vCons as RedisJSON: point redis_url at its Redis Stack"
        )
    return "ok", detail


def _check_lists(storage: SupabaseStorage) -> tuple[str, str]:
    parts, broken = [], []
    for name, kind, length in storage._redis.list_kinds(storage.config.chain_lists):
        if kind not in ("list", "none"):
            broken.append(f"{name} holds a {kind}, not a list")
        else:
            parts.append(f"{name} ({length if kind == 'list' else 0} queued)")
    if broken:
        return "FAIL", "; ".join(broken) + ": rename the list in chain_lists or remove that key"
    return "ok", ", ".join(parts)
