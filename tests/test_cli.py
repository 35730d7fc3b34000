"""The command line, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from conserver_supabase import migrations


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "REDIS_"))}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "conserver_supabase", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )


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


@pytest.mark.integration
def test_migrate_applies_then_reports_up_to_date(empty_database_url: str) -> None:
    first = run("migrate", "--database-url", empty_database_url)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_vcon_tables" in first.stdout
    assert "2 migration(s) applied" in first.stdout
    second = run("migrate", env={"SUPABASE_DB_URL": empty_database_url})
    assert second.returncode == 0, second.stderr
    assert "database is up to date" in second.stdout
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM conserver_schema_migrations").fetchone() == (2,)


@pytest.mark.integration
def test_demo_on_a_given_database_leaves_nothing_behind(empty_database_url: str) -> None:
    result = run("demo", "--count", "3", "--database-url", empty_database_url)
    assert result.returncode == 0, result.stderr
    assert "round trip identical: 3/3" in result.stdout
    assert "deleted 3/3" in result.stdout
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM vcons").fetchone() == (0,)


@pytest.mark.integration
def test_demo_with_no_configuration_runs_on_embedded_postgres() -> None:
    """The README's main command: no Supabase account, nothing installed by hand."""
    result = run("demo", "--count", "2")
    if result.returncode != 0 and "pgserver" in result.stderr:
        pytest.skip("embedded extra not installed")
    assert result.returncode == 0, result.stderr
    assert "starting an embedded PostgreSQL" in result.stdout
    assert "round trip identical: 2/2" in result.stdout
