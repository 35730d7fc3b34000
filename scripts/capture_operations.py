"""Write docs/operations.md with the real output of every command.

Run from the repository root (``make operations-doc``; needs the ``test`` extra)::

    python scripts/capture_operations.py [--out docs/operations.md]

It starts an embedded PostgreSQL and an embedded Redis with RedisJSON, applies the
migrations, writes a conserver config.yml, and runs each command of the guide as a
subprocess (``python -m conserver_supabase ...``), capturing standard output, standard
error and the exit code. Temporary paths and ports are replaced by placeholders
(``<tmp>``, ``<port>``); nothing else is edited.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conserver_supabase import DatabaseUnavailableError, SupabaseStorage  # noqa: E402
from conserver_supabase.testing import EmbeddedPostgres, EmbeddedRedis, make_vcon  # noqa: E402


class Session:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.replacements: list[tuple[str, str]] = []

    def clean(self, text: str) -> str:
        for old, new in self.replacements:
            text = text.replace(old, new)
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
        return text.rstrip()

    def run(self, *args: str, stdin: str | None = None, shown: str | None = None) -> str:
        result = subprocess.run(  # noqa: S603 - our own command, arguments from this script
            [sys.executable, "-m", "conserver_supabase", *args],
            capture_output=True,
            text=True,
            input=stdin,
            env=self.env,
            cwd=self.tmp,
            timeout=300,
            check=False,
        )
        command = shown or "conserver-supabase " + " ".join(_quote(a) for a in args)
        lines = [f"$ {self.clean(command)}"]
        if result.stdout.strip():
            lines.append(self.clean(result.stdout))
        if result.stderr.strip():
            lines.append(self.clean(result.stderr))
        lines.append(f"(exit code {result.returncode})")
        return "```console\n" + "\n".join(lines) + "\n```"


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./<>-]+", arg) else f"'{arg}'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "operations.md")
    args = parser.parse_args()
    template = (ROOT / "docs" / "operations.template.md").read_text("utf-8")
    with (
        tempfile.TemporaryDirectory(prefix="csb-ops-") as tmp_name,
        EmbeddedPostgres() as postgres,
        EmbeddedRedis(json=True) as redis_server,
    ):
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "REDIS_"))}
        env.update(SUPABASE_DB_URL=postgres.url, REDIS_URL=redis_server.url, COLUMNS="88")
        session = Session(tmp, env)
        session.replacements = [
            (postgres.url, "$SUPABASE_DB_URL"),
            (str(tmp), "<tmp>"),
            (tempfile.gettempdir(), "<tmp>"),
        ]
        blocks = capture(session, postgres.url, redis_server.url)
    text = template
    for name, block in blocks.items():
        text = text.replace("{{" + name + "}}", block)
    missing = re.findall(r"\{\{(\w+)\}\}", text)
    if missing:
        raise SystemExit(f"the template names captures that were not made: {missing}")
    args.out.write_text(text, "utf-8")
    print(f"wrote {args.out}")
    return 0


def capture(session: Session, database_url: str, redis_url: str) -> dict[str, str]:
    blocks = _setup_and_vcons(session, database_url, redis_url)
    blocks.update(_bulk_and_recovery(session))
    blocks.update(_journal(session, redis_url))
    blocks.update(_failures_and_stats(session, database_url, redis_url))
    return blocks


def _setup_and_vcons(session: Session, database_url: str, redis_url: str) -> dict[str, str]:
    """migrate, doctor, demo, and the commands on single vCons and the cache."""
    run = session.run
    blocks: dict[str, str] = {}
    blocks["help"] = run("--help")
    blocks["migrate"] = run("migrate")
    blocks["migrate_again"] = run("migrate")
    blocks["doctor"] = run("doctor")
    blocks["get_help"] = run("get", "--help")
    blocks["migrate_rest"] = run("migrate", "--url", "https://abcdefgh.supabase.co")
    blocks["demo"] = run("demo", "--count", "3")

    documents = [make_vcon(seed=i) for i in range(5)]
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_url}) as store:
        store.save_many(documents)
    first = documents[0]["uuid"]
    blocks["get"] = run("get", first)
    blocks["get_no_cache"] = _head(run("get", first, "--no-cache"), 6)
    blocks["exists"] = run("exists", first) + "\n\n" + run("exists", first, "--json")
    blocks["delete_unasked"] = run("delete", first)
    blocks["delete"] = run("delete", first, "--yes")
    blocks["get_missing"] = run("get", first)
    blocks["exists_missing"] = run("exists", first)
    blocks["search"] = run("search", "--limit", "3")
    blocks["cache_stats"] = run("cache", "stats")
    blocks["cache_stats_json"] = run("cache", "stats", "--json")
    blocks["cache_flush"] = run("cache", "flush", "--yes")
    blocks["cache_warm"] = run("cache", "warm")
    return blocks


def _bulk_and_recovery(session: Session) -> dict[str, str]:
    """backfill (a directory, again, standard input), requeue, replay."""
    run = session.run
    blocks: dict[str, str] = {}
    inbox = session.tmp / "inbox"
    inbox.mkdir()
    for index in range(10, 40):
        (inbox / f"{index:03d}.vcon.json").write_text(json.dumps(make_vcon(seed=index)))
    (inbox / "broken.json").write_text('{"uuid": ')
    bad = make_vcon(seed=99)
    bad["dialog"][0]["type"] = "fax"
    (inbox / "bad.vcon.json").write_text(json.dumps(bad))
    blocks["backfill"] = run("backfill", "inbox", "--batch", "10")
    blocks["backfill_report"] = _cat(session, "conserver-supabase-backfill.failures.jsonl")
    blocks["backfill_again"] = run("backfill", "inbox")
    lines = "".join(json.dumps(make_vcon(seed=i)) + "\n" for i in range(40, 45))
    blocks["backfill_stdin"] = run(
        "backfill",
        "-",
        "--checkpoint",
        "stdin.checkpoint.json",
        "--json",
        stdin=lines,
        shown="cat more.jsonl | conserver-supabase backfill - --checkpoint "
        "stdin.checkpoint.json --json",
    )
    blocks["requeue"] = run(
        "requeue", "--since", "2026-01-01T00:00:00Z", "--list", "recovery_ingress"
    )
    blocks["feed_once"] = run("feed", "--once")
    blocks["feed_again"] = run("feed", "--once", "--json")
    return blocks


def _journal(session: Session, redis_url: str) -> dict[str, str]:
    """A save while the database is unreachable, journaled; journal list, replay, purge."""
    run = session.run
    down = {
        "database_url": "postgresql://postgres@127.0.0.1:9/postgres",
        "redis_url": redis_url,
        "retry_deadline": 0.5,
    }
    with SupabaseStorage(down) as store:
        for seed in (50, 51):
            with contextlib.suppress(DatabaseUnavailableError):
                store.save_vcon(make_vcon(seed=seed))
    blocks = {"journal_list": run("journal", "list")}
    blocks["journal_list_json"] = run("journal", "list", "--json")
    blocks["replay"] = run("replay")
    blocks["journal_list_dead"] = run("journal", "list", "--dead")
    blocks["journal_purge"] = run("journal", "purge", "--older-than", "0", "--yes")
    return blocks


def _failures_and_stats(session: Session, database_url: str, redis_url: str) -> dict[str, str]:
    """An unreachable database, a bad uuid, and storage.stats() after a few reads."""
    run = session.run
    blocks: dict[str, str] = {}
    config = session.tmp / "config.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            storages:
              supabase:
                module: conserver_supabase
                options:
                  database_url: postgresql://postgres@127.0.0.1:9/postgres
                  redis_url: {redis_url}
                  retry_deadline: 1
            """
        )
    )
    never_cached = make_vcon(seed=12345)["uuid"]  # a cache miss: the database is asked
    probed = make_vcon(seed=1)["uuid"]  # saved by _setup_and_vcons, not deleted
    blocks["unreachable"] = run("get", never_cached, "--config", "config.yml")
    blocks["bad_uuid"] = run("get", "vcon:*")

    stats_probe = textwrap.dedent(
        f"""\
        import json
        from conserver_supabase import SupabaseStorage
        with SupabaseStorage({{"database_url": {database_url!r}, "redis_url": {redis_url!r}}}) as s:
            for _ in range(3):
                s.get_vcon({probed!r})
            stats = s.stats()
        print(json.dumps(stats["operations"]["get"], indent=2))
        shown = ("cache", "retries", "journaled", "conflicts", "circuit")
        print(json.dumps({{k: stats[k] for k in shown}}, indent=2))
        """
    )
    result = subprocess.run(  # noqa: S603 - our own probe
        [sys.executable, "-c", stats_probe],
        capture_output=True,
        text=True,
        env=session.env,
        check=True,
        timeout=120,
    )
    blocks["stats"] = "```json\n" + session.clean(result.stdout) + "\n```"
    return blocks


def _head(block: str, lines: int) -> str:
    body = block.removeprefix("```console\n").removesuffix("\n```").split("\n")
    if len(body) <= lines + 2:
        return block
    kept = [*body[: lines + 1], "...", body[-1]]
    return "```console\n" + "\n".join(kept) + "\n```"


def _cat(session: Session, name: str) -> str:
    text = (session.tmp / name).read_text("utf-8")
    return f"```console\n$ cat {name}\n" + session.clean(text) + "\n```"


if __name__ == "__main__":
    raise SystemExit(main())
