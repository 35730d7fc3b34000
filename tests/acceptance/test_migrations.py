"""Migrations on a real PostgreSQL: a fresh database, on top of vcon-mcp, twice, printed,
without Supabase's roles (upgrades from earlier builds: test_upgrades.py)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from conserver_supabase import DatabaseRejectedError, StorageConfig
from conserver_supabase import _migrations as migrations
from conserver_supabase._database._postgres import PostgresDatabase

from ..support.schema import CORE_TABLES, catalog, run_sql
from ..support.services import TESTS, embedded_postgres
from ..support.sql_calls import SqlCalls
from ..support.vcons import rich_vcon, sample

pytestmark = pytest.mark.integration


class TestFreshDatabase:
    def test_creates_tables_and_records_every_migration(self, empty_database_url: str) -> None:
        applied = migrations.apply(empty_database_url)
        assert [m.version for m in applied] == [m.version for m in migrations.available()]
        state = catalog(empty_database_url)
        tables = {row[0] for row in state["columns"]}
        assert set(CORE_TABLES) | {"conserver_vcon_documents"} <= tables
        assert [(v, n) for v, n, _ in state["versions"]] == [
            (m.version, m.name) for m in migrations.available()
        ]
        assert [c for _, _, c in state["versions"]] == [m.checksum for m in migrations.available()]

    def test_children_cascade_from_vcons_uuid(self, empty_database_url: str) -> None:
        migrations.apply(empty_database_url)
        with psycopg.connect(empty_database_url) as conn:
            fks: list[tuple[str, str]] = conn.execute(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' ORDER BY 1"
            ).fetchall()
        for table in ("analysis", "attachments", "conserver_vcon_documents", "dialog", "parties"):
            definition = dict(fks)[table]
            assert "REFERENCES vcons(uuid) ON DELETE CASCADE" in definition, table

    def test_applying_twice_is_a_no_op(self, empty_database_url: str) -> None:
        migrations.apply(empty_database_url)
        before = catalog(empty_database_url)
        assert migrations.apply(empty_database_url) == []
        assert migrations.pending(empty_database_url) == []
        assert catalog(empty_database_url) == before

    def test_rerunning_every_file_by_hand_changes_nothing(self, empty_database_url: str) -> None:
        """Each file is idempotent on its own, even outside the runner's bookkeeping."""
        migrations.apply(empty_database_url)
        before = catalog(empty_database_url)
        for function in migrations.functions():
            run_sql(empty_database_url, migrations.grants_helper() + function.sql)
        for migration in migrations.available():
            run_sql(empty_database_url, migrations.grants_helper() + migration.sql)
        assert catalog(empty_database_url) == before

    def test_concurrent_migrators_do_not_collide(self, empty_database_url: str) -> None:
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                migrations.apply(empty_database_url)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert len(catalog(empty_database_url)["versions"]) == len(migrations.available())

    def test_other_schema(self, empty_database_url: str) -> None:
        migrations.apply(empty_database_url, schema="vcon_store")
        assert len(catalog(empty_database_url, "vcon_store")["versions"]) == len(
            migrations.available()
        )
        config = StorageConfig.from_options(
            {"database_url": empty_database_url, "schema": "vcon_store"}
        )
        db = SqlCalls(PostgresDatabase(config))
        try:
            document = sample()
            assert db.save(document, document["uuid"]) == 1
            assert db.load(document["uuid"]) == document
        finally:
            db.close()


def test_search_triggers_backfill_rows_written_before_them(database_url: str) -> None:
    """Rows whose tsvector is missing (written before the trigger, as by 0.1.0) are
    filled when migration 0003 creates the trigger, and found by text search afterwards."""
    db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": database_url})))
    document = sample()
    try:
        db.save(document, document["uuid"])
        word = document["subject"].split()[0]
        run_sql(
            database_url,
            "DROP TRIGGER conserver_tsv_vcons ON vcons; UPDATE vcons SET subject_tsvector = NULL",
        )
        sql_file = next(m for m in migrations.available() if m.name == "search_tombstones_requeue")
        run_sql(database_url, migrations.grants_helper() + sql_file.sql)
        with psycopg.connect(database_url) as conn:
            missing = conn.execute(
                "SELECT count(*) FROM vcons WHERE subject_tsvector IS NULL"
            ).fetchone()[0]
        assert missing == 0
        found = db.search({"filters": {"text": word, "subject": word}, "limit": 5})["uuids"]
        assert found == [document["uuid"]]
    finally:
        db.close()


class TestPrintedScript:
    def test_pasting_the_script_twice_then_runner_finds_nothing(
        self, empty_database_url: str
    ) -> None:
        script = migrations.render_script()
        run_sql(empty_database_url, script)
        once = catalog(empty_database_url)
        run_sql(empty_database_url, script)
        assert catalog(empty_database_url) == once
        assert migrations.pending(empty_database_url) == []


class TestOnTopOfVconMcp:
    """vcon-mcp's migrations ran first (their CREATE TABLEs have no IF NOT EXISTS, so
    that is the order that works); ours must add only what is ours."""

    @pytest.fixture
    def vcon_mcp_url(self, empty_database_url: str) -> str:
        run_sql(empty_database_url, (TESTS / "sql" / "vcon_mcp_layout.sql").read_text())
        return empty_database_url

    def test_existing_tables_are_left_as_they_are(self, vcon_mcp_url: str) -> None:
        before = catalog(vcon_mcp_url)
        migrations.apply(vcon_mcp_url)
        after = catalog(vcon_mcp_url)
        core = lambda rows: [r for r in rows if r[0] in CORE_TABLES]  # noqa: E731
        assert core(after["columns"]) == core(before["columns"])
        assert [c for c in after["constraints"] if c[0] in CORE_TABLES] == [
            c for c in before["constraints"] if c[0] in CORE_TABLES
        ]
        assert {f for f in before["functions"]} <= set(after["functions"])

    def test_what_we_write_is_what_vcon_mcp_reads(self, vcon_mcp_url: str) -> None:
        migrations.apply(vcon_mcp_url)
        db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": vcon_mcp_url})))
        document = rich_vcon()
        u = document["uuid"]
        try:
            db.save(document, u)
            db.save(document, u)  # a re-save must not enqueue again or break triggers
        finally:
            db.close()
        with psycopg.connect(vcon_mcp_url, autocommit=True) as conn:
            # vcon-mcp joins children on vcons.id: only id = uuid rows are visible that way
            joined = conn.execute(
                "SELECT count(*) FROM vcons v JOIN dialog d ON d.vcon_id = v.id WHERE v.uuid = %s",
                [u],
            ).fetchone()[0]
            assert joined == len(document["dialog"])
            assert conn.execute(
                "SELECT subject_tsvector IS NOT NULL, must_support FROM vcons WHERE uuid = %s", [u]
            ).fetchone() == (True, ["x-acme"])
            assert (
                conn.execute(
                    "SELECT count(*) FROM parties WHERE vcon_id = %s AND party_tsvector IS NULL",
                    [u],
                ).fetchone()[0]
                == 0
            )
            assert (
                conn.execute(
                    "SELECT count(*) FROM embedding_queue WHERE vcon_id = %s", [u]
                ).fetchone()[0]
                == 1
            )
            conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY vcon_tags_mv")
            assert conn.execute("SELECT tags FROM vcon_tags_mv WHERE vcon_id = %s", [u]).fetchone()[
                0
            ] == {"category": "billing", "priority": "high"}

    def test_search_rides_on_vcon_mcp_triggers(self, vcon_mcp_url: str) -> None:
        """Its tsvector triggers stay the only ones; search finds what we wrote."""
        migrations.apply(vcon_mcp_url)
        with psycopg.connect(vcon_mcp_url, autocommit=True) as conn:
            ours = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'conserver\\_tsv\\_%'"
            ).fetchone()[0]
        assert ours == 0
        db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": vcon_mcp_url})))
        document = rich_vcon()
        try:
            db.save(document, document["uuid"])
            for filters in (
                {"text": "double bill"},
                {"tel": "+1 (555) 123-4567"},
                {"tags": ["category:billing", "priority:high"]},
            ):
                result = db.search({"filters": filters, "limit": 10})
                assert result["uuids"] == [document["uuid"]], filters
        finally:
            db.close()

    def test_older_vcon_mcp_layout_is_refused_with_a_clear_message(self, vcon_mcp_url: str) -> None:
        run_sql(
            vcon_mcp_url,
            "ALTER TABLE dialog DROP COLUMN session_id; "
            "ALTER TABLE dialog ADD COLUMN session_id text",
        )
        with pytest.raises(DatabaseRejectedError) as caught:
            migrations.apply(vcon_mcp_url)
        assert "dialog.session_id (jsonb)" in str(caught.value)
        assert catalog(vcon_mcp_url)["versions"] == []  # nothing recorded, all rolled back


def test_plain_postgresql_without_supabase_roles() -> None:
    """A cluster without anon/service_role: the grants are skipped, saves work."""
    with embedded_postgres() as url:
        check_plain_postgresql(url)


def check_plain_postgresql(url: str) -> None:
    with psycopg.connect(url) as conn:
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    assert not roles & {"anon", "authenticated", "service_role"}
    migrations.apply(url)
    db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": url})))
    try:
        document = sample()
        assert db.save(document, document["uuid"]) == 1
        assert db.load(document["uuid"]) == document
    finally:
        db.close()
