"""The command line, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from conserver_supabase import _migrations as migrations

from ..support.cli import jwt, run
from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client, unavailable


@pytest.mark.integration
def test_migrate_applies_then_reports_up_to_date(empty_database_url: str) -> None:
    first = run("migrate", "--database-url", empty_database_url)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_vcon_tables" in first.stdout
    assert f"{len(migrations.available())} migration(s) applied" in first.stdout
    second = run("migrate", env={"SUPABASE_DB_URL": empty_database_url})
    assert second.returncode == 0, second.stderr
    assert "database is up to date" in second.stdout
    with psycopg.connect(empty_database_url) as conn:
        count = conn.execute("SELECT count(*) FROM conserver_schema_migrations").fetchone()
        assert count == (len(migrations.available()),)


@pytest.mark.integration
def test_demo_on_a_given_database_and_redis_leaves_nothing_behind(
    empty_database_url: str, redis_json_url: str
) -> None:
    result = run(
        "demo", "--count", "3", "--database-url", empty_database_url, "--redis-url", redis_json_url
    )
    assert result.returncode == 0, result.stderr
    assert "identical after get: 3/3 from the cache, 3/3 from the database" in result.stdout
    assert "cache: 3 hits, 6 misses, 6 fills, 0 errors; keys are ReJSON-RL" in result.stdout
    assert "chain list got 12/12 uuids" in result.stdout
    assert "deleted 3/3" in result.stdout
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM vcons").fetchone() == (0,)
    client = redis_client(redis_json_url)
    left = client.keys("*")  # only the deletes' tombstones (-version), expiring with the TTL
    assert len(left) == 3
    for key in left:
        assert key.startswith(b"conserver_supabase:version:{vcon:")
        assert int(client.get(key)) < 0
        assert client.ttl(key) > 0


@pytest.mark.integration
def test_demo_through_postgrest_from_the_environment(
    database_url: str, redis_json_url: str
) -> None:
    """SUPABASE_URL, the key and REDIS_URL set: the demo uses them, and only its own uuids."""
    other = redis_client(redis_json_url)
    other.set("someone-elses-key", "untouched")
    with PostgrestStandIn(database_url, key="k") as server:
        env = {"SUPABASE_URL": server.url, "SUPABASE_SERVICE_ROLE_KEY": "k"}
        result = run("demo", "--count", "2", env={**env, "REDIS_URL": redis_json_url})
        rpc_calls = len(server.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "through PostgREST" in result.stdout
    assert "starting an embedded" not in result.stdout
    assert "identical after get: 2/2 from the cache, 2/2 from the database" in result.stdout
    assert rpc_calls > 0
    mine = [k for k in other.keys("*") if not k.startswith(b"conserver_supabase:version:")]
    assert mine == [b"someone-elses-key"]  # plus the deletes' tombstones
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM vcons").fetchone() == (0,)


@pytest.mark.integration
def test_demo_with_no_configuration_runs_on_embedded_services() -> None:
    """The README's main command: no Supabase account, no Redis, nothing installed by hand."""
    result = run("demo", "--count", "2")
    if result.returncode != 0 and "[embedded]" in result.stderr:
        unavailable("the embedded extra is not installed")
    assert result.returncode == 0, result.stderr
    assert "starting an embedded PostgreSQL" in result.stdout
    assert "starting an embedded Redis with RedisJSON" in result.stdout
    assert "identical after get: 2/2 from the cache, 2/2 from the database" in result.stdout


class TestDoctor:
    def test_without_a_database_it_says_what_to_set(self) -> None:
        result = run("doctor")
        assert result.returncode == 2
        assert "no database configured" in result.stderr

    @pytest.mark.integration
    def test_a_healthy_setup_passes(
        self, database_url: str, redis_json_url: str, tmp_path: Path
    ) -> None:
        config = tmp_path / "config.yml"
        config.write_text(
            "storages:\n"
            "  files:\n    module: storage.file\n"
            "  supabase:\n    module: conserver_supabase\n    options:\n"
            "      database_url: ${SUPABASE_DB_URL}\n"
            "      chain_lists: [egress]\n"
        )
        result = run(
            "doctor",
            "--config",
            str(config),
            env={"SUPABASE_DB_URL": database_url, "REDIS_URL": redis_json_url},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok    database: postgres transport" in result.stdout
        assert "migrations current" in result.stdout
        assert "ok    redis:" in result.stdout
        assert "RedisJSON loaded; new cache keys are RedisJSON" in result.stdout
        assert "ok    chain lists: egress (0 queued)" in result.stdout
        assert "all checks passed" in result.stdout
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM vcons").fetchone() == (0,)
        assert redis_client(redis_json_url).dbsize() == 0

    @pytest.mark.integration
    def test_every_failure_is_named_with_its_fix(
        self, empty_database_url: str, redis_plain_url: str
    ) -> None:
        result = run(
            "doctor", env={"SUPABASE_DB_URL": empty_database_url, "REDIS_URL": redis_plain_url}
        )
        assert result.returncode == 1
        assert "FAIL  database" in result.stdout
        assert "run `conserver-supabase migrate`" in result.stdout
        assert "warn  redis:" in result.stdout
        assert "RedisJSON not loaded" in result.stdout

    @pytest.mark.integration
    def test_wrong_list_type_and_unreachable_redis(
        self, database_url: str, redis_json_url: str, unreachable_redis_url: str, tmp_path: Path
    ) -> None:
        redis_client(redis_json_url).set("broken", "x")
        config = tmp_path / "config.yml"
        config.write_text(
            "storages:\n  mine:\n    module: conserver_supabase\n    options:\n"
            f"      database_url: {database_url}\n"
            f"      redis_url: {redis_json_url}\n"
            "      chain_lists: [broken]\n"
        )
        result = run("doctor", "--config", str(config), "--storage", "mine")
        assert result.returncode == 1
        assert "FAIL  chain lists: broken holds a string, not a list" in result.stdout
        secret = "hunter2-redis"
        down = run(
            "doctor",
            env={
                "SUPABASE_DB_URL": database_url,
                "REDIS_URL": unreachable_redis_url.replace("//", f"//:{secret}@"),
            },
        )
        assert down.returncode == 1
        assert "FAIL  redis: probe failed" in down.stdout
        assert "is unavailable" in down.stdout
        assert secret not in down.stdout + down.stderr

    @pytest.mark.integration
    def test_through_postgrest_a_wrong_key_is_named(
        self, database_url: str, redis_json_url: str
    ) -> None:
        with PostgrestStandIn(database_url, key="right") as server:
            good = run(
                "doctor",
                env={"SUPABASE_URL": server.url, "SUPABASE_SERVICE_ROLE_KEY": "right",
                     "REDIS_URL": redis_json_url},
            )  # fmt: skip
            bad = run(
                "doctor",
                env={"SUPABASE_URL": server.url, "SUPABASE_SERVICE_ROLE_KEY": "wrong",
                     "REDIS_URL": redis_json_url},
            )  # fmt: skip
        assert good.returncode == 0, good.stdout + good.stderr
        assert "warn  key: not a Supabase JWT" in good.stdout
        assert "reachable, key accepted, functions installed" in good.stdout
        assert bad.returncode == 1
        assert "service-role key" in bad.stdout
        assert "wrong" not in bad.stdout.replace("wrong kind", "")

    @pytest.mark.integration
    def test_through_postgrest_a_missing_migration_is_named(
        self, fresh_database_url: str, redis_json_url: str
    ) -> None:
        """Without a connection string doctor cannot read the migrations table: probing
        every function (0005's delete included, on a uuid that does not exist) finds it."""
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            conn.execute("DROP FUNCTION conserver_vcon_remove(uuid)")
        with PostgrestStandIn(fresh_database_url, key="k") as server:
            result = run(
                "doctor",
                env={"SUPABASE_URL": server.url, "SUPABASE_SERVICE_ROLE_KEY": "k",
                     "REDIS_URL": redis_json_url},
            )  # fmt: skip
        assert result.returncode == 1
        assert "FAIL  database" in result.stdout
        assert "conserver-supabase migrate" in result.stdout

    def test_a_config_without_our_storage_is_a_usage_error(self, tmp_path: Path) -> None:
        config = tmp_path / "config.yml"
        config.write_text("storages:\n  files:\n    module: storage.file\n")
        result = run("doctor", "--config", str(config))
        assert result.returncode == 2
        assert "no storage uses module conserver_supabase" in result.stderr


def test_doctor_names_an_anon_key_without_showing_it(unreachable_redis_url: str) -> None:
    anon = jwt("anon")
    result = run(
        "doctor",
        env={
            "SUPABASE_URL": "http://127.0.0.1:9",
            "SUPABASE_SERVICE_ROLE_KEY": anon,
            "REDIS_URL": unreachable_redis_url,
        },
    )
    assert result.returncode == 1
    assert "FAIL  key: the key grants the role 'anon'" in result.stdout
    assert anon not in result.stdout + result.stderr


class TestSearchCommand:
    @pytest.mark.integration
    def test_a_table_then_the_next_page_then_json(
        self, database_url: str, redis_json_url: str
    ) -> None:
        from conserver_supabase import StorageConfig
        from conserver_supabase._database._postgres import PostgresDatabase
        from conserver_supabase.testing import make_vcon

        documents = [make_vcon(seed=i) for i in range(5)]
        for document in documents:
            document["subject"] = f"cli search probe {document['subject']}"
        database = PostgresDatabase(StorageConfig.from_options({"database_url": database_url}))
        database.save(documents, None)
        database.close()
        env = {"SUPABASE_DB_URL": database_url, "REDIS_URL": redis_json_url}
        first = run("search", "--subject", "CLI Search Probe", "--limit", "3", env=env)
        assert first.returncode == 0, first.stderr
        assert "3 vCon(s)" in first.stdout
        cursor = first.stdout.split("--cursor ")[1].split()[0]
        rest = run("search", "--subject", "CLI Search Probe", "--cursor", cursor, "--json", env=env)
        assert rest.returncode == 0, rest.stderr
        page = json.loads(rest.stdout)
        assert len(page["items"]) == 2
        assert page["next_cursor"] is None
        shown = {line.split()[0] for line in first.stdout.splitlines()[1:4]}
        assert shown | set(page["items"]) == {d["uuid"] for d in documents}

    def test_a_bad_filter_is_a_usage_error(self) -> None:
        result = run(
            "search",
            "--created-after",
            "yesterday",
            env={"SUPABASE_DB_URL": "postgresql://127.0.0.1:1/x"},
        )
        assert result.returncode == 2
        assert "created_after" in result.stderr
