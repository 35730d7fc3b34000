"""Upgrades from what 0.1.0 and main's unreleased migrations left, refused records, and
function files applied again when they change, on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg
import pytest

from conserver_supabase import DatabaseRejectedError, StorageConfig
from conserver_supabase import _migrations as migrations
from conserver_supabase._database import Tenant
from conserver_supabase._database._postgres import PostgresDatabase

from ..support.past_builds import RELEASED, migrate_as, past_files
from ..support.schema import CORE_TABLES, catalog, run_sql
from ..support.sql_calls import SqlCalls
from ..support.vcons import all_samples, new_uuid, rich_vcon, sample

pytestmark = pytest.mark.integration

TABLES = (
    *CORE_TABLES,
    "conserver_vcon_documents",
    "conserver_vcon_tombstones",
    "conserver_vcon_changes",
)
ACME = {"tenant_id": "acme", "exclusive": True}


def rows(url: str, *, tsvectors: bool = True) -> dict[str, list[str]]:
    """Every row of our tables as sorted JSON text (the tsvector columns only if asked)."""
    found = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
                continue
            records = [r[0] for r in conn.execute(f"SELECT to_jsonb(x) FROM {table} x")]
            found[table] = sorted(
                json.dumps(
                    {k: v for k, v in r.items() if tsvectors or not k.endswith("_tsvector")},
                    sort_keys=True,
                )
                for r in records
            )
    return found


def with_document_versions(before: dict[str, list[str]]) -> dict[str, list[str]]:
    """``before`` (rows from before migration 0004) as 0004 and 0006 leave them: every
    document row current (document_version = version) without an exact text (0006: the
    jsonb document answers), the change log empty."""
    documents = []
    for text in before["conserver_vcon_documents"]:
        row = json.loads(text)
        current = {**row, "document_version": row["version"], "document_text": None}
        documents.append(json.dumps(current, sort_keys=True))
    return {
        **before,
        "conserver_vcon_documents": sorted(documents),
        "conserver_vcon_changes": [],
    }


def records(url: str) -> dict[str, Any]:
    """The runner's records: (version, name, checksum) of migrations, functions' checksums."""
    with psycopg.connect(url) as conn:
        versions = conn.execute(
            "SELECT version, name, checksum FROM conserver_schema_migrations ORDER BY 1"
        ).fetchall()
        functions: dict[str, str] = dict(
            conn.execute("SELECT name, checksum FROM conserver_schema_functions").fetchall()
        )
    return {"migrations": versions, "functions": functions}


def current_records() -> dict[str, Any]:
    return {
        "migrations": [(m.version, m.name, m.checksum) for m in migrations.available()],
        "functions": {f.name: f.checksum for f in migrations.functions()},
    }


class Saved:
    """The vCons a test put into a database through a past build's SQL functions."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}  # uuid -> what load must return
        self.versions: dict[str, int] = {}  # uuid -> the version its last save returned
        self.rows_only = new_uuid()  # rows another program wrote, no document row
        self.deleted: list[str] = []

    def save(self, conn: Any, document: dict[str, Any], *tenant: dict[str, Any]) -> None:
        arguments = "%s::jsonb" + ", %s::jsonb" * len(tenant)
        version = conn.execute(
            f"SELECT conserver_vcon_save({arguments})",
            [json.dumps(document), *map(json.dumps, tenant)],
        ).fetchone()[0]
        self.documents[document["uuid"]] = document
        self.versions[document["uuid"]] = version

    def save_many(self, conn: Any, documents: list[dict[str, Any]], *tenants: Any) -> None:
        arguments = "%s::jsonb" + ", %s::jsonb" * len(tenants)
        versions = conn.execute(
            f"SELECT conserver_vcon_save_many({arguments})",
            [json.dumps(documents), *map(json.dumps, tenants)],
        ).fetchone()[0]
        for document in documents:
            self.documents[document["uuid"]] = document
            self.versions[document["uuid"]] = versions[document["uuid"]]

    def write_rows_only(self, conn: Any) -> None:
        conn.execute(
            "INSERT INTO vcons (id, uuid, subject, created_at, updated_at) "
            "VALUES (%s, %s, 'written by another program', '2026-01-01Z', '2026-01-01Z')",
            [self.rows_only, self.rows_only],
        )
        conn.execute(
            "INSERT INTO parties (vcon_id, party_index, tel, name) "
            "VALUES (%s, 0, '+15550100999', 'Other Writer')",
            [self.rows_only],
        )


def fill_as_0_1_0(url: str) -> Saved:
    """vCons saved through 0.1.0's functions: one by one, again, in a batch, deleted, and
    one that another program wrote as rows only."""
    saved = Saved()
    with psycopg.connect(url, autocommit=True) as conn:
        for document in all_samples():
            saved.save(conn, document)
        saved.save(conn, next(iter(saved.documents.values())))  # version 2
        saved.save_many(conn, [rich_vcon(), sample()])
        gone = sample()
        conn.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(gone)])
        assert conn.execute("SELECT conserver_vcon_delete(%s)", [gone["uuid"]]).fetchone()[0]
        saved.deleted.append(gone["uuid"])
        saved.write_rows_only(conn)
    return saved


def fill_as_main(url: str) -> Saved:
    """vCons saved through main's functions (0b9ddf4): with and without tenants, in
    batches, removed (tombstones), saved again after a removal."""
    saved = Saved()
    with psycopg.connect(url, autocommit=True) as conn:
        for document in all_samples()[:3]:
            saved.save(conn, document)
        for document in all_samples()[3:]:
            saved.save(conn, document, ACME)
        saved.save_many(conn, [rich_vcon(), sample()], [ACME, {"tenant_id": None}])
        saved.save_many(conn, [sample(), sample()])
        gone = sample()
        saved.save(conn, gone, ACME)
        assert conn.execute("SELECT conserver_vcon_remove(%s)", [gone["uuid"]]).fetchone()[0] == 2
        saved.documents.pop(gone["uuid"])
        saved.deleted.append(gone["uuid"])
        back = sample()
        saved.save(conn, back)
        conn.execute("SELECT conserver_vcon_remove(%s)", [back["uuid"]])
        saved.save(conn, back, ACME)  # continues after its tombstone: version 3
        assert saved.versions[back["uuid"]] == 3
        saved.write_rows_only(conn)
    return saved


def assert_functions_work(url: str, saved: Saved) -> None:
    """The upgraded database answers through today's Python code: load, fetch, search,
    save, remove, save again."""
    db = SqlCalls(PostgresDatabase(StorageConfig.from_options({"database_url": url})))
    try:
        assert db.load_many(list(saved.documents)) == saved.documents
        for vcon_uuid, document in saved.documents.items():
            assert db.fetch(vcon_uuid) == (document, saved.versions[vcon_uuid])
        for vcon_uuid in saved.deleted:
            assert db.load(vcon_uuid) is None
        assert db.load(saved.rows_only)["parties"] == [
            {"tel": "+15550100999", "name": "Other Writer"}
        ]
        assert saved.rows_only in db.search({"filters": {"tel": "+1 555 010 0999"}})["uuids"]
        rich = [u for u, d in saved.documents.items() if "double bill" in (d.get("subject") or "")]
        found = db.search({"filters": {"text": "double bill"}, "limit": 100})["uuids"]
        assert rich
        assert set(rich) <= set(found)
        document = rich_vcon()
        assert db.save(document, document["uuid"], Tenant("acme", exclusive=True)) == 1
        found = db.search({"filters": {"text": "double bill"}, "limit": 100})["uuids"]
        assert document["uuid"] in found
        some = next(iter(saved.documents))
        removed = db.delete(some)
        assert removed == saved.versions[some] + 1
        assert db.save(saved.documents[some], some) == removed + 1
    finally:
        db.close()


def assert_tsvectors_filled(url: str) -> None:
    with psycopg.connect(url) as conn:
        for table, text, column in [
            ("vcons", "subject", "subject_tsvector"),
            ("parties", "name", "party_tsvector"),
            ("analysis", "body", "body_tsvector"),
        ]:
            missing = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {text} IS NOT NULL AND {column} IS NULL"
            ).fetchone()[0]
            assert missing == 0, table


class TestUpgrade:
    """A database migrated by 0.1.0, or by main's unreleased 0001-0008, upgrades to this
    layout with every row and document intact, and works."""

    def test_the_past_files_are_the_ones_those_builds_recorded(self) -> None:
        checksums = {v: hashlib.sha256(t.encode()).hexdigest() for v, _, t in past_files("0.1.0")}
        assert checksums == RELEASED["0.1.0"]
        main = past_files("0b9ddf4")
        assert [(v, n) for v, n, _ in main[:2]] == [(v, n) for v, n, _ in past_files("0.1.0")]
        assert [v for v, _, _ in main] == list(range(1, 9))
        shipped = migrations.available()[0]
        assert (shipped.version, shipped.checksum) == (1, RELEASED["0.1.0"][1])  # unchanged

    def test_from_0_1_0(self, empty_database_url: str) -> None:
        migrate_as(empty_database_url, "0.1.0")
        saved = fill_as_0_1_0(empty_database_url)
        before = rows(empty_database_url, tsvectors=False)
        assert [m.version for m in migrations.pending(empty_database_url)] == [3, 4, 5, 6]
        assert migrations.outdated_functions(empty_database_url) == migrations.functions()
        assert [m.version for m in migrations.apply(empty_database_url)] == [3, 4, 5, 6]
        assert rows(empty_database_url, tsvectors=False) == with_document_versions(
            {**before, "conserver_vcon_tombstones": []}  # new in this layout
        )
        assert records(empty_database_url) == current_records()
        assert migrations.pending(empty_database_url) == []
        assert migrations.outdated_functions(empty_database_url) == []
        assert_tsvectors_filled(empty_database_url)
        assert_functions_work(empty_database_url, saved)

    def test_from_main(self, empty_database_url: str) -> None:
        migrate_as(empty_database_url, "0b9ddf4")
        saved = fill_as_main(empty_database_url)
        before = rows(empty_database_url)
        with psycopg.connect(empty_database_url) as conn:
            tenants = conn.execute(
                "SELECT count(*) FROM vcons WHERE tenant_id = 'acme'"
            ).fetchone()[0]
            assert tenants >= 3
            assert conn.execute("SELECT count(*) FROM conserver_vcon_tombstones").fetchone() == (2,)
        assert [m.version for m in migrations.pending(empty_database_url)] == [3, 4, 5, 6]
        assert [m.version for m in migrations.apply(empty_database_url)] == [3, 4, 5, 6]
        # tombstones and tenants included
        assert rows(empty_database_url) == with_document_versions(before)
        assert records(empty_database_url) == current_records()
        assert migrations.pending(empty_database_url) == []
        assert_functions_work(empty_database_url, saved)

    def test_from_the_last_level_before_the_change_feed(self, empty_database_url: str) -> None:
        """A database main left at migration 0003 (git 34b4e0b, its printed script), filled
        through that build's functions, gets 0004, 0005 and every changed function file:
        every row and document intact, each document current, and other writers' changes logged."""
        migrate_as(empty_database_url, "34b4e0b")
        saved = fill_as_main(empty_database_url)
        before = rows(empty_database_url)
        assert "conserver_vcon_changes" not in before
        assert [m.version for m in migrations.pending(empty_database_url)] == [4, 5, 6]
        outdated = {f.name for f in migrations.outdated_functions(empty_database_url)}
        assert {"conserver_vcon_write", "conserver_vcon_fetch", "conserver_vcon_merge"} <= outdated
        assert [m.version for m in migrations.apply(empty_database_url)] == [4, 5, 6]
        assert rows(empty_database_url) == with_document_versions(before)
        assert records(empty_database_url) == current_records()
        assert migrations.pending(empty_database_url) == []
        assert_functions_work(empty_database_url, saved)
        some = next(u for u in saved.documents if u not in saved.deleted)
        with psycopg.connect(empty_database_url, autocommit=True) as conn:
            conn.execute("UPDATE vcons SET subject = 'changed elsewhere' WHERE uuid = %s", [some])
            ops = conn.execute(
                "SELECT op FROM conserver_vcon_changes WHERE vcon_uuid = %s ORDER BY seq", [some]
            ).fetchall()
        assert ops[-1] == ("rows",)
        db = SqlCalls(
            PostgresDatabase(StorageConfig.from_options({"database_url": empty_database_url}))
        )
        try:
            assert db.load(some)["subject"] == "changed elsewhere"
        finally:
            db.close()

    def test_main_run_again_after_the_upgrade_is_repaired(self, empty_database_url: str) -> None:
        """Someone ran main's runner on an upgraded database (it applies its 0004-0008 over
        our 0003): its records are removed and every function file applied again."""
        migrations.apply(empty_database_url)
        migrate_as(empty_database_url, "0b9ddf4")
        assert [r[0] for r in records(empty_database_url)["migrations"]] == list(range(1, 9))
        assert migrations.outdated_functions(empty_database_url) == migrations.functions()
        assert migrations.apply(empty_database_url) == []
        assert records(empty_database_url) == current_records()

    def test_the_printed_script_upgrades_0_1_0(self, empty_database_url: str) -> None:
        migrate_as(empty_database_url, "0.1.0")
        saved = fill_as_0_1_0(empty_database_url)
        before = rows(empty_database_url, tsvectors=False)
        run_sql(empty_database_url, migrations.render_script())
        assert rows(empty_database_url, tsvectors=False) == with_document_versions(
            {**before, "conserver_vcon_tombstones": []}
        )
        assert records(empty_database_url) == current_records()
        assert migrations.pending(empty_database_url) == []
        assert migrations.outdated_functions(empty_database_url) == []
        assert_functions_work(empty_database_url, saved)


def refusal(url: str) -> str:
    """The message apply, pending, outdated_functions and the printed script refuse ``url``
    with: the same, and nothing changed."""
    before = catalog(url)
    messages = []
    for call in (migrations.apply, migrations.pending, migrations.outdated_functions):
        with pytest.raises(DatabaseRejectedError) as caught:
            call(url)
        assert caught.value.operation == "migrate"
        messages.append(str(caught.value).removeprefix("migrate failed: database rejected it: "))
    with pytest.raises(psycopg.errors.RaiseException) as raised:
        run_sql(url, migrations.render_script())
    messages.append(str(raised.value.diag.message_primary))
    assert len(set(messages)) == 1, messages
    assert catalog(url) == before
    return messages[0]


class TestRefused:
    """A recorded migration that is not the shipped one stops the runner and the printed
    script, naming the migration, both checksums and what to do."""

    @pytest.mark.parametrize("version", [1, 2])
    def test_a_changed_released_migration(self, fresh_database_url: str, version: int) -> None:
        shipped = migrations.available()[version - 1]
        run_sql(
            fresh_database_url,
            f"UPDATE conserver_schema_migrations SET checksum = '{'0' * 64}' "
            f"WHERE version = {version}",
        )
        message = refusal(fresh_database_url)
        assert f"migration {version:04d}_{shipped.name} recorded in schema public" in message
        assert f"has checksum {'0' * 64}" in message
        assert f"ships has {shipped.checksum}" in message
        assert (
            f"UPDATE conserver_schema_migrations SET checksum = '{shipped.checksum}' "
            f"WHERE version = {version}" in message
        )

    def test_0_1_0_with_another_0002(self, empty_database_url: str) -> None:
        """Only 0.1.0's own 0002 counts as that migration."""
        migrate_as(empty_database_url, "0.1.0")
        run_sql(
            empty_database_url,
            "UPDATE conserver_schema_migrations SET checksum = md5('x') || md5('y') "
            "WHERE version = 2",
        )
        assert "migration 0002_documents_and_functions" in refusal(empty_database_url)

    def test_a_newer_conserver_supabase(self, fresh_database_url: str) -> None:
        run_sql(
            fresh_database_url,
            "INSERT INTO conserver_schema_migrations (version, name, checksum) "
            f"VALUES (9, 'from_the_future', '{'a' * 64}')",
        )
        message = refusal(fresh_database_url)
        assert "migration 0009_from_the_future recorded in schema public is not one" in message
        assert "migrated by a newer conserver-supabase" in message

    def test_another_development_build(self, empty_database_url: str) -> None:
        """main's 0007 as it stood before 0b9ddf4: not the build this release knows."""
        migrate_as(empty_database_url, "0b9ddf4")
        run_sql(
            empty_database_url,
            f"UPDATE conserver_schema_migrations SET checksum = '{'b' * 64}' WHERE version = 7",
        )
        message = refusal(empty_database_url)
        assert "migration 0007_set_based_save recorded in schema public" in message
        assert "unreleased development build" in message
        assert "a8660a44a40b1aeb5815044eb2201d21515b76e4c8be280d3f3aed2839cda33e" in message


class TestFunctionFiles:
    def test_a_changed_file_is_applied_again_and_only_it(
        self, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Its record and definition follow the new text; the other files are not run
        (a definition changed behind the runner's back stays as it is)."""
        with psycopg.connect(fresh_database_url) as conn:
            applied_before: dict[str, Any] = dict(
                conn.execute("SELECT name, applied_at FROM conserver_schema_functions")
            )
            conn.execute(
                "CREATE OR REPLACE FUNCTION conserver_vcon_load(p_uuid uuid) RETURNS jsonb "
                "LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$ SELECT NULL::jsonb $$"
            )
        shipped = migrations.functions()
        changed = next(f for f in shipped if f.name == "conserver_vcon_exists")
        edited = migrations.FunctionFile(
            changed.name,
            changed.sql.replace(
                "SELECT EXISTS (SELECT FROM vcons WHERE uuid = p_uuid)",
                "SELECT EXISTS (SELECT FROM vcons WHERE uuid = p_uuid) -- edited",
            ),
        )
        assert edited.checksum != changed.checksum
        files = [edited if f is changed else f for f in shipped]
        monkeypatch.setattr(migrations, "functions", lambda: files)

        assert migrations.outdated_functions(fresh_database_url) == [edited]
        assert migrations.apply(fresh_database_url) == []
        assert migrations.outdated_functions(fresh_database_url) == []
        with psycopg.connect(fresh_database_url) as conn:
            recorded = conn.execute(
                "SELECT name, checksum, applied_at FROM conserver_schema_functions"
            ).fetchall()
            source = {
                name: src
                for name, src in conn.execute(
                    "SELECT proname, prosrc FROM pg_proc "
                    "WHERE proname IN ('conserver_vcon_exists', 'conserver_vcon_load')"
                )
            }
        for name, checksum, applied_at in recorded:
            assert checksum == {f.name: f.checksum for f in files}[name]
            assert (applied_at != applied_before[name]) is (name == edited.name), name
        assert source["conserver_vcon_exists"].endswith("-- edited\n")
        assert source["conserver_vcon_load"].strip() == "SELECT NULL::jsonb"

    def test_the_grants_helper_comes_first_and_is_gone_after(self, database_url: str) -> None:
        script = migrations.render_script()
        helper = script.index(
            "CREATE OR REPLACE PROCEDURE pg_temp.conserver_restrict_to_service_role"
        )
        first_file = script.index("-- ===== functions/")
        drop = script.index("DROP PROCEDURE pg_temp.conserver_restrict_to_service_role")
        assert helper < first_file < drop < script.index("COMMIT;")
        with psycopg.connect(database_url) as conn:
            migrations.apply(database_url)
            left = conn.execute(
                "SELECT count(*) FROM pg_proc WHERE proname = 'conserver_restrict_to_service_role'"
            ).fetchone()
        assert left == (0,)
