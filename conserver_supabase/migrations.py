"""The SQL migrations shipped in ``conserver_supabase/sql`` and how they are applied.

Files are named ``NNNN_description.sql`` and applied in number order. Each one is
idempotent on its own (``IF NOT EXISTS``, ``CREATE OR REPLACE``), and each applied
one is recorded in ``conserver_schema_migrations``, so applying twice is a no-op.
:func:`apply` runs all pending migrations in one transaction under an advisory
lock, so two processes migrating at once cannot interleave. :func:`render_script`
prints the same thing for Supabase's SQL editor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from importlib import resources
from typing import Any, Final

from ._database._errors import database_errors
from ._database._postgres import import_psycopg

__all__ = ["MIGRATIONS_TABLE", "Migration", "apply", "available", "pending", "render_script"]

logger = logging.getLogger(__name__)

MIGRATIONS_TABLE: Final = "conserver_schema_migrations"
_LOCK_KEY: Final = 0x636F6E73  # "cons": arbitrary, constant advisory-lock key
_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP: Final = f"""\
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {MIGRATIONS_TABLE} ENABLE ROW LEVEL SECURITY;
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One shipped migration file."""

    version: int
    name: str
    sql: str = dataclasses.field(repr=False)

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, recorded when applied."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available() -> list[Migration]:
    """Return every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("conserver_supabase.sql").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render_script(schema: str = "public") -> str:
    """Return all migrations as one script to paste into Supabase's SQL editor.

    The script runs in a transaction, records what it applied, and can be pasted
    again without harm.
    """
    parts = [
        "-- conserver-supabase database migrations",
        "-- Paste into the Supabase SQL editor (or run with psql). Safe to run again.",
        "BEGIN;",
        f"SET LOCAL search_path TO {_quote_ident(schema)};",
        _BOOTSTRAP,
    ]
    for migration in available():
        parts.append(f"-- ===== {migration.version:04d}_{migration.name}.sql =====")
        parts.append(migration.sql)
        parts.append(_record_sql(migration) + ";")
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def _record_sql(migration: Migration) -> str:
    # Name and checksum come from our own file names and hashes: [a-z0-9_] and hex.
    return (
        f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) "  # noqa: S608 - our own file names
        f"VALUES ({migration.version}, '{migration.name}', '{migration.checksum}') "
        "ON CONFLICT (version) DO NOTHING"
    )


def _connect(database_url: str) -> Any:
    psycopg = import_psycopg()
    with database_errors("migrate"):
        return psycopg.connect(database_url, autocommit=False, connect_timeout=10)


def pending(database_url: str, schema: str = "public") -> list[Migration]:
    """Return the shipped migrations not yet recorded in the database."""
    with _connect(database_url) as conn, database_errors("migrate"):
        applied = _applied(conn, schema)
    return [m for m in available() if m.version not in applied]


def _applied(conn: Any, schema: str) -> set[int]:
    row = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", [schema, MIGRATIONS_TABLE]
    ).fetchone()
    if row[0] is None:
        return set()
    table = f"{_quote_ident(schema)}.{MIGRATIONS_TABLE}"  # schema is a validated identifier
    rows = conn.execute(f"SELECT version FROM {table}").fetchall()  # noqa: S608 - quoted ident
    return {r[0] for r in rows}


def apply(database_url: str, schema: str = "public") -> list[Migration]:
    """Apply pending migrations in one transaction; return the ones applied."""
    with _connect(database_url) as conn, database_errors("migrate"):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
        conn.execute(f"SET LOCAL search_path TO {_quote_ident(schema)}")
        conn.execute(_BOOTSTRAP)
        done = _applied(conn, schema)
        todo = [m for m in available() if m.version not in done]
        for migration in todo:
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql)
            conn.execute(_record_sql(migration))
        conn.commit()
    return todo
