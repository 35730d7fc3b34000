"""Running the command line as a subprocess, the way an operator runs it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from .services import environment_without_services


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``conserver-supabase ARGS`` with only ``env``'s services in its environment."""
    environ = environment_without_services()
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "conserver_supabase", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )


def env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a conserver container with these services."""
    return {"SUPABASE_DB_URL": database_url, "REDIS_URL": redis_url}


def jwt(role: str) -> str:
    """A Supabase-style JWT granting ``role`` (not signed by anyone)."""

    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'role': role, 'iss': 'supabase'})}.c2lnbmF0dXJl"
