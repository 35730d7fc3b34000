"""The schema as the tests see it: what a migration can change, raw SQL, the rows of a
vCon and the row counts of the tables."""

from __future__ import annotations

from typing import Any

import psycopg

CORE_TABLES = ("vcons", "parties", "dialog", "analysis", "attachments")


def catalog(url: str, schema: str = "public") -> dict[str, Any]:
    """What a migration can change: columns, functions, constraints, recorded versions."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY 1, 2",
            [schema],
        ).fetchall()
        functions = conn.execute(
            "SELECT p.proname, md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = %s ORDER BY 1, 2",  # overloads
            [schema],
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
            [schema],
        ).fetchall()
        versions = (
            conn.execute(
                f"SELECT version, name, checksum FROM {schema}.conserver_schema_migrations "
                "ORDER BY 1"
            ).fetchall()
            if conn.execute(
                "SELECT to_regclass(%s)", [f"{schema}.conserver_schema_migrations"]
            ).fetchone()[0]
            else []
        )
    return {
        "columns": columns,
        "functions": functions,
        "constraints": constraints,
        "versions": versions,
    }


def run_sql(url: str, text: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text)


def rows(sql: Any, table: str, vcon_uuid: str, index: str) -> list[dict[str, Any]]:
    cur = sql.execute(f"SELECT * FROM {table} WHERE vcon_id = %s ORDER BY {index}", [vcon_uuid])
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def counts(sql: Any) -> dict[str, int]:
    tables = ["vcons", "parties", "dialog", "analysis", "attachments", "conserver_vcon_documents"]
    return {t: sql.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
