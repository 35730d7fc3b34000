"""How the shipped SQL is laid out, and that a migrated database holds what the files say.

``conserver_supabase/sql/`` holds ``migrations/NNNN_name.sql`` (no function definitions),
``functions/<function>.sql`` (one file per function name: its current definition and its
privileges) and ``grants_helper.sql`` (the temporary procedure the others call for their
privileges). The database tests compare five databases on each server: main's unreleased
0001-0008 as they stood (git 0b9ddf4), this layout on an empty database (by the runner,
and by the printed script), and this layout over a database migrated by 0.1.0 and over
one migrated by main. The function definitions and every privilege must be the same in
all five: the layout moved the SQL, it changed nothing the database does.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import conserver_supabase
from conserver_supabase import _migrations as migrations

from ..support.past_builds import migrate_as
from ..support.services import with_database

SQL = Path(conserver_supabase.__file__).parent / "sql"
HELPER = "conserver_restrict_to_service_role"
# Every way to define a routine, to count them; CREATE below must account for each one.
ANY_DEFINITION = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b", re.I)
CREATE = re.compile(r"^CREATE OR REPLACE (?:FUNCTION|PROCEDURE) (?:(\w+)\.)?(\w+)\s*\(", re.M)
GRANT_CALL = re.compile(rf"^CALL pg_temp\.{HELPER}\('(FUNCTION|TABLE) (\w+)", re.M)
_names = itertools.count()


def definitions(text: str) -> list[tuple[str | None, str, str]]:
    """(schema, name, body) of each routine the text defines; the body is the text
    between the $fn$ quotes, which PostgreSQL keeps as prosrc."""
    found = []
    for match in CREATE.finditer(text):
        start = text.index("$fn$", match.end()) + len("$fn$")
        found.append((match.group(1), match.group(2), text[start : text.index("$fn$", start)]))
    return found


def shipped() -> dict[str, str]:
    """Every file under conserver_supabase/sql, by path relative to it."""
    return {p.relative_to(SQL).as_posix(): p.read_text("utf-8") for p in SQL.rglob("*.sql")}


class TestFiles:
    def test_only_the_three_kinds_of_file(self) -> None:
        everything = {p.relative_to(SQL).as_posix() for p in SQL.rglob("*") if p.is_file()}
        everything = {p for p in everything if "__pycache__" not in p}
        for path in everything:
            assert (
                path == "grants_helper.sql"
                or re.fullmatch(r"migrations/\d{4}_[a-z0-9_]+\.sql", path)
                or re.fullmatch(r"functions/conserver_[a-z0-9_]+\.sql", path)
            ), path
        assert {f"functions/{f.name}.sql" for f in migrations.functions()} == {
            p for p in everything if p.startswith("functions/")
        }

    def test_migrations_are_numbered_one_after_the_other(self) -> None:
        versions = [m.version for m in migrations.available()]
        assert versions == list(range(1, len(versions) + 1))
        assert len(versions) == len([p for p in shipped() if p.startswith("migrations/")])

    def test_no_function_is_defined_in_two_files(self) -> None:
        """Every routine is defined in exactly one file: functions/<its name>.sql (the
        grants helper: grants_helper.sql, in pg_temp); migrations define none."""
        where: dict[tuple[str | None, str], set[str]] = {}
        for path, text in shipped().items():
            found = definitions(text)
            assert len(ANY_DEFINITION.findall(text)) == len(found), path  # all counted
            for schema, name, _ in found:
                where.setdefault((schema, name), set()).add(path)
            if path.startswith("migrations/"):
                assert found == [], path
            elif path.startswith("functions/"):
                assert {(s, n) for s, n, _ in found} == {(None, Path(path).stem)}, path
            else:
                assert {(s, n) for s, n, _ in found} == {("pg_temp", HELPER)}, path
        for routine, paths in where.items():
            assert len(paths) == 1, (routine, paths)

    def test_every_function_file_ends_with_its_grants(self) -> None:
        """After the last definition: a grants call for each overload, or a comment saying
        it keeps PostgreSQL's default; nothing else."""
        for function in migrations.functions():
            text = function.sql
            tail = text[text.rindex("$fn$;") + len("$fn$;") :]
            statements = [
                line for line in tail.splitlines() if line.strip() and not line.startswith("--")
            ]
            calls = GRANT_CALL.findall(tail)
            assert len(calls) == len(statements), function.name
            assert calls == [("FUNCTION", function.name)] * len(definitions(text)) or (
                calls == [] and "-- Privileges: PostgreSQL's default" in tail
            ), function.name

    def test_migrations_set_table_privileges_through_the_helper_only(self) -> None:
        for migration in migrations.available():
            for kind, name in GRANT_CALL.findall(migration.sql):
                assert kind == "TABLE", (migration.name, name)


def _create(admin_url: str) -> str:
    name = f"csb_layout_{os.getpid()}_{next(_names)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


SUPABASE_DEFAULTS = """\
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
"""


@pytest.fixture(scope="module", params=["supabase_defaults", "no_defaults"])
def databases(request: pytest.FixtureRequest, pg_admin_url: str) -> Iterator[dict[str, str]]:
    """The five databases, by name: main as it was, this layout fresh (migrated, and
    pasted), and this layout over 0.1.0 and over main. With Supabase's default
    privileges (its API roles get every new table and function), or without any."""
    names: dict[str, str] = {}
    try:
        for kind in ("main", "fresh", "pasted", "from_0_1_0", "from_main"):
            names[kind] = _create(pg_admin_url)
            url = with_database(pg_admin_url, names[kind])
            if request.param == "supabase_defaults":
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(SUPABASE_DEFAULTS)
            if kind in ("main", "from_main"):
                migrate_as(url, "0b9ddf4")
            elif kind == "from_0_1_0":
                migrate_as(url, "0.1.0")
            if kind == "pasted":
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(migrations.render_script())
            elif kind != "main":
                migrations.apply(url)
        yield {kind: with_database(pg_admin_url, name) for kind, name in names.items()}
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def routines(url: str) -> dict[str, dict[str, Any]]:
    """Every conserver_* routine of schema public by signature: its name, definition,
    source and effective privileges (grantee, privilege, grantable; PUBLIC for everyone)."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            """
            SELECT p.oid::regprocedure::text, p.proname, pg_get_functiondef(p.oid), p.prosrc,
                   (SELECT array_agg(format('%s %s %s', coalesce(r.rolname, 'PUBLIC'),
                                            a.privilege_type, a.is_grantable) ORDER BY 1)
                      FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      LEFT JOIN pg_roles r ON r.oid = a.grantee)
              FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'conserver\\_%'
            """
        ).fetchall()
    return {
        signature: {"name": name, "definition": definition, "source": source, "acl": acl}
        for signature, name, definition, source, acl in found
    }


def table_privileges(url: str) -> dict[str, list[str]]:
    """Effective privileges of every table of schema public."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            """
            SELECT c.relname,
                   (SELECT array_agg(format('%s %s %s', coalesce(r.rolname, 'PUBLIC'),
                                            a.privilege_type, a.is_grantable) ORDER BY 1)
                      FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                      LEFT JOIN pg_roles r ON r.oid = a.grantee)
              FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
            """
        ).fetchall()
    return dict(found)


LAYOUT = ("fresh", "pasted", "from_0_1_0", "from_main")
#: What changed on purpose since main (git 0b9ddf4), by signature; everything else is
#: identical. The two copies of one trigger function (dialog, analysis) became one that
#: takes the weight as the trigger's argument; load and load_many are fetch and
#: fetch_many without the versions instead of repeating their queries. The replay's
#: fenced save (issue 15) is new. The change feed (issue 16, migration 0004): two new
#: trigger functions (the log's writer, other writers' rows), the projection and merge of
#: a document with the rows; the write skips the feed triggers, writes the document rows
#: last and keeps document_version, fetch merges when the rows changed, a new document
#: row gets its document_version, requeue leaves out head rows. The conflict rule (issue
#: 16): the three-way merge and its tags set (new), the write merging before it writes
#: and taking the copies' bases (a new overload; the old one calls it), save and
#: save_many with a base (new overloads; the old ones call them). The exact text (issue
#: 17, migration 0006): the write taking the texts (a new overload; the old ones call
#: it), the reads returning them (new), search returning them when asked (redefined).
#: Search in one pass (issue 18): the page's condition in a function of its own (new),
#: which search calls (redefined), and search's json form for whole vCons (a new overload).
#: Issue 18: the write taking its batch as an array (a new overload; the JSON one calls it),
#: the tsvector's guard only for long texts (redefined).
GONE_SINCE_MAIN = frozenset({"conserver_tsv_dialog()", "conserver_tsv_analysis()"})
#: New since main, by signature: the routine of main whose privileges each has.
NEW_SINCE_MAIN = {
    "conserver_tsv_body()": "conserver_tsv_vcons()",  # a trigger function, as those it replaced
    "conserver_vcon_replay(jsonb,jsonb,jsonb)": "conserver_vcon_save(jsonb,jsonb)",
    "conserver_vcon_record_change()": "conserver_vcon_tombstone_on_delete()",
    "conserver_vcon_rows_changed()": "conserver_vcon_tombstone_on_delete()",
    "conserver_vcon_project(jsonb,timestamp with time zone)": "conserver_vcon_assemble(uuid)",
    "conserver_vcon_merge(jsonb,jsonb,timestamp with time zone)": "conserver_vcon_assemble(uuid)",
    "conserver_vcon_feed_poll(text,jsonb,integer)": "conserver_vcon_save(jsonb,jsonb)",
    "conserver_vcon_rebase(jsonb,jsonb,timestamp with time zone)": "conserver_vcon_assemble(uuid)",
    "conserver_vcon_rebase_tags(jsonb,jsonb,jsonb,jsonb)": "conserver_vcon_assemble(uuid)",
    "conserver_vcon_write(jsonb,jsonb,jsonb)": "conserver_vcon_write(jsonb,jsonb)",
    "conserver_vcon_write(jsonb,jsonb,jsonb,jsonb)": "conserver_vcon_write(jsonb,jsonb)",
    "conserver_vcon_write(jsonb[],jsonb,jsonb,jsonb)": "conserver_vcon_write(jsonb,jsonb)",
    "conserver_vcon_read(uuid)": "conserver_vcon_fetch(uuid)",
    "conserver_vcon_read_many(jsonb)": "conserver_vcon_fetch_many(jsonb)",
    "conserver_vcon_save(jsonb,jsonb,jsonb)": "conserver_vcon_save(jsonb,jsonb)",
    "conserver_vcon_save_many(jsonb,jsonb,jsonb)": "conserver_vcon_save_many(jsonb,jsonb)",
    "conserver_vcon_search(jsonb,boolean)": "conserver_vcon_search(jsonb)",
    "conserver_vcon_search_where(jsonb)": "conserver_vcon_search(jsonb)",
}
REDEFINED_SINCE_MAIN = frozenset(
    {
        "conserver_vcon_load(uuid)",
        "conserver_vcon_load_many(jsonb)",
        "conserver_vcon_write(jsonb,jsonb)",
        "conserver_vcon_fetch(uuid)",
        "conserver_vcon_version_after_delete()",
        "conserver_vcon_saved_between(jsonb)",
        "conserver_vcon_save(jsonb,jsonb)",
        "conserver_vcon_save_many(jsonb,jsonb)",
        "conserver_vcon_search(jsonb)",
        'conserver_tsvector(regconfig,text,"char")',
    }
)


def as_in_main(found: dict[str, Any], kind: str) -> dict[str, Any]:
    """``found`` (by signature) with what changed on purpose since main set aside."""
    if kind == "main":
        return {s: v for s, v in found.items() if s not in GONE_SINCE_MAIN}
    assert set(found) >= set(NEW_SINCE_MAIN), kind
    return {s: v for s, v in found.items() if s not in NEW_SINCE_MAIN}


@pytest.mark.integration
class TestMigratedDatabases:
    def test_every_routine_has_its_file_and_only_those(self, databases: dict[str, str]) -> None:
        files = {f.name for f in migrations.functions()}
        for kind in LAYOUT:
            assert {r["name"] for r in routines(databases[kind]).values()} == files, kind
            with psycopg.connect(databases[kind]) as conn:
                helper = conn.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [HELPER])
                assert helper.fetchone() == (0,), kind  # temporary: nothing left behind

    def test_the_sources_are_the_files(self, databases: dict[str, str]) -> None:
        """prosrc of each routine is the body its file holds (overloads together)."""
        files = {
            f.name: sorted(body for _, _, body in definitions(f.sql))
            for f in migrations.functions()
        }
        for kind in LAYOUT:
            found: dict[str, list[str]] = {}
            for routine in routines(databases[kind]).values():
                found.setdefault(routine["name"], []).append(routine["source"])
            assert {name: sorted(bodies) for name, bodies in found.items()} == files, kind

    def test_the_definitions_are_mains_in_every_database(self, databases: dict[str, str]) -> None:
        """pg_get_functiondef (arguments, return type, language, volatility, SECURITY, SET
        clauses, body) of every routine: the same after any path, and the same as main's."""
        everywhere = {
            kind: {s: r["definition"] for s, r in routines(databases[kind]).items()}
            for kind in LAYOUT
        }
        main = as_in_main(
            {s: r["definition"] for s, r in routines(databases["main"]).items()}, "main"
        )
        for signature in REDEFINED_SINCE_MAIN:
            main.pop(signature)
            assert len({everywhere[kind].pop(signature) for kind in LAYOUT}) == 1, signature
        # save and save_many have three overloads, write four, search two
        assert len(everywhere["fresh"]) == len(migrations.functions()) + 8 - len(
            REDEFINED_SINCE_MAIN
        )
        for kind in LAYOUT:
            assert as_in_main(everywhere[kind], kind) == main, kind

    def test_the_privileges_are_mains_in_every_database(self, databases: dict[str, str]) -> None:
        main = {s: r["acl"] for s, r in routines(databases["main"]).items()}
        main_tables = table_privileges(databases["main"])
        for kind in LAYOUT:
            found = {s: r["acl"] for s, r in routines(databases[kind]).items()}
            for signature, like in NEW_SINCE_MAIN.items():
                assert found[signature] == main[like], (kind, signature)
            assert as_in_main(found, kind) == as_in_main(main, "main"), kind
            tables = table_privileges(databases[kind])
            # The one new table, the function records, is set up like the migration records.
            assert tables.pop(migrations.FUNCTIONS_TABLE) == tables[migrations.MIGRATIONS_TABLE]
            # The change log (0004) is set up like the tombstones.
            assert tables.pop("conserver_vcon_changes") == tables["conserver_vcon_tombstones"]
            # The feed's cursors and state (0005) too.
            assert tables.pop("conserver_vcon_feed_cursors") == tables["conserver_vcon_tombstones"]
            assert tables.pop("conserver_vcon_feed_state") == tables["conserver_vcon_tombstones"]
            assert tables == main_tables, kind

    def test_service_role_only_where_main_had_it(self, databases: dict[str, str]) -> None:
        """What the comparison above protects, spelled out: anon executes no conserver_vcon_*
        function; service_role executes all of them."""
        with psycopg.connect(databases["fresh"]) as conn:
            if not conn.execute("SELECT to_regrole('anon') IS NOT NULL").fetchone()[0]:
                pytest.skip("no Supabase roles on this server")
            found = conn.execute(
                "SELECT p.oid::regprocedure::text,"
                " has_function_privilege('anon', p.oid, 'EXECUTE'),"
                " has_function_privilege('service_role', p.oid, 'EXECUTE') FROM pg_proc p"
                " WHERE p.proname LIKE 'conserver\\_vcon\\_%'"
            ).fetchall()
        assert found
        for signature, anon, service in found:
            assert (anon, service) == (False, True), signature
