"""What earlier builds left: tests/data/migrations/<build>/ holds their migration files
byte for byte (0.1.0: git f00d0af; main's unreleased 0001-0008: git 0b9ddf4), and
:func:`migrate_as` applies them as those builds' runner did. Builds with function files
(the layout since 0b9ddf4) are kept as their printed script (``migrate --print``), which
applies everything that build's runner applied, records included: main at git 34b4e0b,
migration level 0003, before the change feed."""

from __future__ import annotations

import hashlib

import psycopg

from .services import TESTS

PAST = TESTS / "data" / "migrations"
RELEASED = {  # checksums those builds recorded (sha256 of the files)
    "0.1.0": {
        1: "8c81502526da7d63379dc084d3ac6f7c2aef443fdc276da6c1b405257fdad2c0",
        2: "6df3cd713942fb30aef763b26000b9ce205773de245f60129ba38166655cb7f4",
    },
}
# Their runner's record table (the same code in 0.1.0 and on main).
PAST_BOOTSTRAP = """\
CREATE TABLE IF NOT EXISTS conserver_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE conserver_schema_migrations ENABLE ROW LEVEL SECURITY;
"""


def past_files(build: str) -> list[tuple[int, str, str]]:
    """(version, name, text) of each migration that build shipped, in order."""
    found = []
    for path in sorted((PAST / build).glob("*.sql.txt")):
        version, name = path.name.removesuffix(".sql.txt").split("_", 1)
        found.append((int(version), name, path.read_text("utf-8")))
    return found


PRINTED = {"34b4e0b"}


def migrate_as(url: str, build: str) -> None:
    """Migrate as that build's runner did: its record table, then each file not recorded
    yet, in order, with its record, in one transaction (a build in PRINTED: its printed
    script, which does the same)."""
    if build in PRINTED:
        script = (PAST / build / "printed_script.sql.txt").read_text("utf-8")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(script)
        return
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL search_path TO public")
        conn.execute(PAST_BOOTSTRAP)
        done = {r[0] for r in conn.execute("SELECT version FROM conserver_schema_migrations")}
        for version, name, text in past_files(build):
            if version in done:
                continue
            conn.execute(text)
            conn.execute(
                "INSERT INTO conserver_schema_migrations (version, name, checksum) "
                "VALUES (%s, %s, %s)",
                [version, name, hashlib.sha256(text.encode()).hexdigest()],
            )
