"""The command line, run as a subprocess the way an operator runs it, where no server is
needed: usage, help, the printed migrations, bad input, an unreachable database."""

from __future__ import annotations

import pytest

from conserver_supabase import _migrations as migrations

from ..support.cli import jwt, run


def test_help_lists_migrate() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "migrate" in result.stdout


def test_migrate_print_writes_the_whole_script() -> None:
    result = run("migrate", "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout == migrations.render_script("public")
    assert result.stdout.startswith("-- conserver-supabase database migrations")
    assert result.stdout.rstrip().endswith("COMMIT;")


def test_migrate_print_for_another_schema() -> None:
    result = run("migrate", "--print", "--schema", "vcon_store")
    assert 'SET LOCAL search_path TO "vcon_store";' in result.stdout


def test_migrate_without_a_database_says_how_to_fix_it() -> None:
    result = run("migrate")
    assert result.returncode == 2
    assert "--database-url" in result.stderr
    assert "--print" in result.stderr


def test_migrate_bad_schema_is_a_usage_error() -> None:
    result = run("migrate", "--print", "--schema", "x; drop table vcons")
    assert result.returncode == 2
    assert "schema" in result.stderr


def test_migrate_unreachable_database_fails_with_exit_1() -> None:
    secret = "hunter2-not-a-real-password"
    result = run("migrate", "--database-url", f"postgresql://u:{secret}@127.0.0.1:1/db")
    assert result.returncode == 1
    assert "migrate failed: database unavailable" in result.stderr
    assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("key", "role"),
    [
        (jwt("service_role"), "service_role"),
        (jwt("anon"), "anon"),
        ("sb_secret_abc", "service_role"),
        ("sb_publishable_abc", "anon"),
        ("plain-text", None),
        ("a.b!.c", None),
    ],
)
def test_key_role_is_read_from_the_key(key: str, role: str | None) -> None:
    from conserver_supabase._doctor import key_role

    assert key_role(key) == role
