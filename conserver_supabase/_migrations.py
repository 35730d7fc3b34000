"""The SQL shipped in ``conserver_supabase/sql`` and how it is applied.

Two kinds of files (docs/database.md, "How the SQL is laid out"):

* ``sql/migrations/NNNN_name.sql``: tables, indexes, triggers, extensions, one-off data
  fixes and DROPs of retired functions, never a function definition. Applied once each,
  in number order, and recorded in ``conserver_schema_migrations`` with their SHA-256.
  Immutable once released: a recorded checksum that differs from the shipped file's
  stops the runner, unless it is one of the few historical checksums listed below.
* ``sql/functions/<function>.sql``: one file per SQL function name (its overloads
  together), holding the current definition and ending with its privileges. Recorded
  in ``conserver_schema_functions`` and applied again whenever its checksum changes, as
  Flyway's repeatable migrations and Supabase's declarative schemas do.

:func:`apply` runs everything in one transaction under an advisory lock, so two
processes migrating at once cannot interleave: it creates the record tables, checks the
records (refusing a database it cannot vouch for), repairs the historical ones, applies
the changed function files (the grants helper first) and then the pending migrations.
Each file is idempotent on its own, so applying twice is a no-op. :func:`render_script`
prints the same thing for Supabase's SQL editor.

Privileges go through one temporary procedure, ``sql/grants_helper.sql``
(``pg_temp.conserver_restrict_to_service_role``), which the runner and the script create
before any other file and drop before committing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any, Final

from ._database._errors import database_errors
from ._database._postgres import import_psycopg
from ._version import __version__

__all__ = [
    "FUNCTIONS_TABLE",
    "MIGRATIONS_TABLE",
    "FunctionFile",
    "Migration",
    "apply",
    "available",
    "functions",
    "grants_helper",
    "outdated_functions",
    "pending",
    "render_script",
]

logger = logging.getLogger("conserver_supabase.migrations")

MIGRATIONS_TABLE: Final = "conserver_schema_migrations"
FUNCTIONS_TABLE: Final = "conserver_schema_functions"
_LOCK_KEY: Final = 0x636F6E73  # "cons": arbitrary, constant advisory-lock key
_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_FUNCTION_FILE: Final = re.compile(r"^(conserver_[a-z0-9_]+)\.sql$")

# Recorded checksums that are not the shipped files' but are known. Each one is the
# sha256 of a file as it stood in git; these are the only exceptions to "a recorded
# checksum must equal the shipped file's".
#
# Released migrations whose file was rewritten since: the same migration, new text. The
# record is updated to the shipped checksum.
_REWRITTEN: Final = (
    # 0002 as released in 0.1.0 (git f00d0af): it also created the first functions and
    # their privileges, which moved to sql/functions/. The document table is unchanged.
    (2, "6df3cd713942fb30aef763b26000b9ce205773de245f60129ba38166655cb7f4"),
)
# Unreleased migrations of a development build whose content is in shipped files now.
# The record is removed (so the migration that holds the content is applied) and every
# function file is applied again (they defined functions).
_SUPERSEDED: Final = (
    # main up to git 0b9ddf4, never released: their tables, indexes and triggers are in
    # 0003_search_tombstones_requeue, their functions in sql/functions/.
    (3, "exists_and_versions", "5da73b825f8d5ae5e0fc96966c27830a616f4665beb9128a7a28ef5cb15fbb27"),
    (4, "search", "21783fd62734982b05e948a1076e6087e92b3fd6cd7f0fd5c5193eda5aa81501"),
    (5, "delete_versions", "da9902b655f6f0284b4a63503d246a91a62cfcf6a9196007122827a448f688cf"),
    (6, "requeue", "f513a310a5e495babbc4bc5af50197cc9a5d3ba46153ee1b4f9e6fa0f0884b74"),
    (7, "set_based_save", "a8660a44a40b1aeb5815044eb2201d21515b76e4c8be280d3f3aed2839cda33e"),
    (8, "tenants", "e4d24a3f8c122021f147d3f664688cc763d82233a58a48d24c41c54e5c885d0c"),
)

_BOOTSTRAP: Final = f"""\
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {MIGRATIONS_TABLE} ENABLE ROW LEVEL SECURITY;
CREATE TABLE IF NOT EXISTS {FUNCTIONS_TABLE} (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {FUNCTIONS_TABLE} ENABLE ROW LEVEL SECURITY;
"""

# A function may be created before the tables it reads (a fresh database gets the
# function files first, because migrations need functions for expression indexes and
# triggers): PostgreSQL then checks SQL function bodies when they first run instead.
_FUNCTION_BODIES: Final = "SET LOCAL check_function_bodies = off;"
# Dropped before COMMIT, so no other session ever sees it (sql/grants_helper.sql).
_DROP_GRANTS_HELPER: Final = (
    "DROP PROCEDURE pg_temp.conserver_restrict_to_service_role(text, text[]);"
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One shipped migration file."""

    version: int
    name: str
    sql: str = dataclasses.field(repr=False)

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, recorded when applied."""
        return _sha256(self.sql)


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionFile:
    """One shipped function file: every overload of one SQL function, and its privileges."""

    name: str
    sql: str = dataclasses.field(repr=False)

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, recorded when applied; a new one means apply it again."""
        return _sha256(self.sql)


def _read(folder: str, pattern: re.Pattern[str]) -> Iterator[tuple[re.Match[str], str]]:
    for entry in (resources.files("conserver_supabase") / "sql" / folder).iterdir():
        match = pattern.match(entry.name)
        if match:
            yield match, entry.read_text("utf-8")


def available() -> list[Migration]:
    """Return every migration shipped with the package, in order."""
    found = [
        Migration(int(m.group(1)), m.group(2), sql)
        for m, sql in _read("migrations", _MIGRATION_FILE)
    ]
    return sorted(found, key=lambda m: m.version)


def functions() -> list[FunctionFile]:
    """Return every function file shipped with the package, by name (the order they are
    applied in: a fresh database gets them before its tables, so no order is needed)."""
    found = [FunctionFile(m.group(1), sql) for m, sql in _read("functions", _FUNCTION_FILE)]
    return sorted(found, key=lambda f: f.name)


def grants_helper() -> str:
    """Return the SQL creating ``pg_temp.conserver_restrict_to_service_role``, which every
    function file and migrations 0002 and 0003 call for their privileges.

    The runner and :func:`render_script` run it first, in the same transaction; run it
    first when applying one of those files by hand.
    """
    return (resources.files("conserver_supabase") / "sql" / "grants_helper.sql").read_text("utf-8")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _values(rows: Iterable[tuple[object, ...]]) -> str:
    """A VALUES list of our own numbers and names (ints and quoted strings only)."""
    return ", ".join(
        "(" + ", ".join(str(v) if isinstance(v, int) else _literal(str(v)) for v in row) + ")"
        for row in rows
    )


# Why a record is refused, and what to do; % are filled in by the check below (RAISE).
_CHANGED: Final = (
    "conserver-supabase: migration % recorded in schema % has checksum %, but the file "  # noqa: S608 - a message
    f"conserver-supabase {__version__} ships has %: the migration in the database is not "
    "the shipped one (its file was edited after it was applied, or another build applied "
    "it), so nothing is migrated. Compare the database with the shipped file "
    "(conserver-supabase migrate --print); if they match, record the shipped checksum "
    f"(UPDATE {MIGRATIONS_TABLE} SET checksum = % WHERE version = %) and migrate again."
)
_UNRELEASED: Final = (
    "conserver-supabase: migration % recorded in schema % (checksum %) was applied by an "  # noqa: S608 - a message
    "unreleased development build of conserver-supabase other than the last one "
    f"conserver-supabase {__version__} upgrades from (git 0b9ddf4, checksum %), so nothing "
    "is migrated: what it created is unknown. Compare the database with that build's "
    f"file; if they match, record its checksum (UPDATE {MIGRATIONS_TABLE} SET checksum = % "
    "WHERE version = %) and migrate again."
)
_NEWER: Final = (
    f"conserver-supabase: migration % recorded in schema % is not one conserver-supabase "
    f"{__version__} knows: the database was migrated by a newer conserver-supabase, so "
    "nothing is migrated. Upgrade conserver-supabase (pip install -U conserver-supabase) "
    "and migrate with that."
)


def _check_sql() -> str:
    """A DO block that raises, naming the record and what to do, unless every recorded
    migration is a shipped one, a rewritten one or a superseded one. It only reads."""
    shipped = [(m.version, m.name, m.checksum) for m in available()]
    accepted = [(v, c) for v, _, c in shipped] + list(_REWRITTEN)
    accepted += [(v, c) for v, _, c in _SUPERSEDED]
    return f"""\
DO $check$
DECLARE
    bad record;
BEGIN
    SELECT r.version, format('%s_%s', lpad(r.version::text, 4, '0'), r.name) AS migration,
           r.checksum, s.checksum AS shipped, u.checksum AS unreleased
      INTO bad
      FROM {MIGRATIONS_TABLE} r
      LEFT JOIN (VALUES {_values(shipped)}) AS s (version, name, checksum)
             ON s.version = r.version
      LEFT JOIN (VALUES {_values(_SUPERSEDED)}) AS u (version, name, checksum)
             ON u.version = r.version
     WHERE (r.version, r.checksum) NOT IN (VALUES {_values(accepted)})
     ORDER BY r.version
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    ELSIF bad.shipped IS NOT NULL THEN
        RAISE EXCEPTION {_literal(_CHANGED)}, bad.migration, current_schema(), bad.checksum,
            bad.shipped, quote_literal(bad.shipped), bad.version;
    ELSIF bad.unreleased IS NOT NULL THEN
        RAISE EXCEPTION {_literal(_UNRELEASED)}, bad.migration, current_schema(), bad.checksum,
            bad.unreleased, quote_literal(bad.unreleased), bad.version;
    ELSE
        RAISE EXCEPTION {_literal(_NEWER)}, bad.migration, current_schema();
    END IF;
END
$check$;
"""  # noqa: S608 - our table, numbers and hex checksums


def _repair_sql() -> str:
    """A DO block that turns the known historical records into current ones."""
    shipped = {m.version: m for m in available()}
    updates = "".join(
        f"\n    UPDATE {MIGRATIONS_TABLE} SET name = {_literal(shipped[v].name)}, "  # noqa: S608 - ours
        f"checksum = {_literal(shipped[v].checksum)}\n"
        f"     WHERE (version, checksum) = ({v}, {_literal(c)});"
        for v, c in _REWRITTEN
    )
    superseded = _values((v, c) for v, _, c in _SUPERSEDED)
    return f"""\
DO $repair$
BEGIN
    DELETE FROM {MIGRATIONS_TABLE} WHERE (version, checksum) IN (VALUES {superseded});
    IF FOUND THEN
        -- the superseded migrations defined functions: apply every function file again
        DELETE FROM {FUNCTIONS_TABLE};
    END IF;{updates}
END
$repair$;
"""  # noqa: S608 - our tables and constants


def _preamble() -> str:
    """What the runner and the printed script do first, inside their transaction."""
    return "\n".join(
        [
            f"SELECT pg_advisory_xact_lock({_LOCK_KEY});",
            _FUNCTION_BODIES,
            _BOOTSTRAP,
            _check_sql(),
            _repair_sql(),
            grants_helper(),
        ]
    )


def _record_migration_sql(migration: Migration) -> str:
    # Name and checksum come from our own file names and hashes: [a-z0-9_] and hex.
    return (
        f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) "  # noqa: S608 - our own file names
        f"VALUES ({migration.version}, {_literal(migration.name)}, {_literal(migration.checksum)}) "
        "ON CONFLICT (version) DO NOTHING;"
    )


def _record_function_sql(function: FunctionFile) -> str:
    return (
        f"INSERT INTO {FUNCTIONS_TABLE} (name, checksum) "  # noqa: S608 - our own file names
        f"VALUES ({_literal(function.name)}, {_literal(function.checksum)}) "
        "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now();"
    )


def render_script(schema: str = "public") -> str:
    """Return all the SQL as one script to paste into Supabase's SQL editor.

    The script runs in a transaction, checks the records as :func:`apply` does (and
    refuses what it refuses), applies every function file and every migration (each is
    idempotent), records them, and can be pasted again without harm.
    """
    parts = [
        "-- conserver-supabase database migrations",
        "-- Paste into the Supabase SQL editor (or run with psql). Safe to run again.",
        "BEGIN;",
        f"SET LOCAL search_path TO {_quote_ident(schema)};",
        _preamble(),
    ]
    for function in functions():
        parts.append(f"-- ===== functions/{function.name}.sql =====")
        parts.append(function.sql)
        parts.append(_record_function_sql(function))
    for migration in available():
        parts.append(f"-- ===== migrations/{migration.version:04d}_{migration.name}.sql =====")
        parts.append(migration.sql)
        parts.append(_record_migration_sql(migration))
    parts.append(_DROP_GRANTS_HELPER)
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def _connect(database_url: str) -> Any:
    psycopg = import_psycopg()
    with database_errors("migrate"):
        return psycopg.connect(database_url, autocommit=False, connect_timeout=10)


@dataclasses.dataclass(frozen=True, slots=True)
class _Records:
    """What a database records: (version, checksum) of migrations, checksum by function."""

    migrations: frozenset[tuple[int, str]]
    functions: dict[str, str]

    def pending(self) -> list[Migration]:
        done = self.migrations & ({(m.version, m.checksum) for m in available()} | set(_REWRITTEN))
        versions = {v for v, _ in done}
        return [m for m in available() if m.version not in versions]

    def outdated(self) -> list[FunctionFile]:
        if self.migrations & {(v, c) for v, _, c in _SUPERSEDED}:
            return functions()  # the repair clears every function record
        return [f for f in functions() if self.functions.get(f.name) != f.checksum]


def _records(conn: Any, schema: str, *, check: bool = True) -> _Records:
    """Read the records of ``schema`` (search_path set); with ``check``, refuse them as
    :func:`apply` would. Without record tables, nothing is recorded."""
    found = {}
    for table in (MIGRATIONS_TABLE, FUNCTIONS_TABLE):
        row = conn.execute(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", [schema, table]
        ).fetchone()
        found[table] = row[0] is not None
    migrations: set[tuple[int, str]] = set()
    if found[MIGRATIONS_TABLE]:
        if check:
            conn.execute(_check_sql())
        rows = conn.execute(f"SELECT version, checksum FROM {MIGRATIONS_TABLE}").fetchall()  # noqa: S608 - our table
        migrations = {(r[0], r[1]) for r in rows}
    recorded: dict[str, str] = {}
    if found[FUNCTIONS_TABLE]:
        rows = conn.execute(f"SELECT name, checksum FROM {FUNCTIONS_TABLE}").fetchall()  # noqa: S608 - our table
        recorded = {r[0]: r[1] for r in rows}
    return _Records(frozenset(migrations), recorded)


def _inspect(database_url: str, schema: str) -> _Records:
    with _connect(database_url) as conn, database_errors("migrate"):
        conn.execute(f"SET LOCAL search_path TO {_quote_ident(schema)}")
        records = _records(conn, schema)
        conn.rollback()  # it only read; nothing to keep
    return records


def pending(database_url: str, schema: str = "public") -> list[Migration]:
    """Return the shipped migrations the database has not applied yet.

    Raises :class:`~conserver_supabase.errors.DatabaseRejectedError` where :func:`apply`
    would refuse the database.
    """
    return _inspect(database_url, schema).pending()


def outdated_functions(database_url: str, schema: str = "public") -> list[FunctionFile]:
    """Return the shipped function files whose current text the database has not applied
    (changed since, or never applied): :func:`apply` applies them.

    Raises :class:`~conserver_supabase.errors.DatabaseRejectedError` where :func:`apply`
    would refuse the database.
    """
    return _inspect(database_url, schema).outdated()


def apply(database_url: str, schema: str = "public") -> list[Migration]:
    """Apply the changed function files and the pending migrations in one transaction;
    return the migrations applied.

    Raises :class:`~conserver_supabase.errors.DatabaseRejectedError`, with nothing
    changed, when a recorded migration is not the shipped one or was applied by a newer
    conserver-supabase.
    """
    with _connect(database_url) as conn, database_errors("migrate"):
        # The lock before anything else: two CREATE SCHEMA IF NOT EXISTS at once can
        # collide. The preamble takes it again (it is the printed script's too): harmless.
        conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
        conn.execute(f"SET LOCAL search_path TO {_quote_ident(schema)}")
        conn.execute(_preamble())  # checks and repairs the records
        records = _records(conn, schema, check=False)
        for function in records.outdated():
            logger.info("applying function file %s.sql", function.name)
            conn.execute(function.sql)
            conn.execute(_record_function_sql(function))
        todo = records.pending()
        for migration in todo:
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql)
            conn.execute(_record_migration_sql(migration))
        conn.execute(_DROP_GRANTS_HELPER)
        conn.commit()
    return todo
