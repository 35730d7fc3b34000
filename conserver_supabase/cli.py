"""The operator's command line: ``conserver-supabase COMMAND``.

Exit codes: 0 success, 1 the operation failed (database, Redis), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__, migrations
from .config import StorageConfig, redact_url
from .errors import ConfigurationError, ConserverSupabaseError
from .search import FILTERS

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conserver-supabase",
        description="Supabase/PostgreSQL storage with a Redis hot tier for the vCon conserver.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the tables and SQL functions",
        description=(
            "Apply the database migrations. With --print, write them as one SQL script "
            "to paste into the Supabase SQL editor (hosted projects without a direct "
            "connection string). Applying twice is a no-op."
        ),
    )
    target = migrate.add_mutually_exclusive_group()
    target.add_argument(
        "--print",
        action="store_true",
        dest="print_sql",
        help="print the SQL instead of applying it",
    )
    target.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL connection string (default: $SUPABASE_DB_URL)",
    )
    migrate.add_argument(
        "--schema", default=None, help="schema that holds the tables (default: public)"
    )
    migrate.set_defaults(handler=_migrate)

    demo = commands.add_parser(
        "demo",
        help="save, read, re-save and delete generated vCons through the storage, with timings",
        description=(
            "Drive a short session through the conserver interface and SupabaseStorage "
            "(working copy in Redis, save, cache hits and misses, re-save, delete, a chain "
            "list) and print per-operation timings and cache statistics. The database is "
            "--database-url, else SUPABASE_DB_URL, else SUPABASE_URL with "
            "SUPABASE_SERVICE_ROLE_KEY, else an embedded PostgreSQL; Redis is --redis-url, "
            "else REDIS_URL, else an embedded Redis with RedisJSON (embedded services need "
            "the 'embedded' extra and are removed afterwards). On your own services it "
            "touches only the vCons and the chain list it creates."
        ),
    )
    demo.add_argument(
        "--database-url", metavar="URL", help="use this PostgreSQL instead of an embedded one"
    )
    demo.add_argument(
        "--redis-url", metavar="URL", help="use this Redis instead of an embedded one"
    )
    demo.add_argument("--count", type=int, default=20, help="vCons to generate (default 20)")
    demo.set_defaults(handler=_demo)

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration against the database and Redis",
        description=(
            "Check that the database is reachable, the key accepted, the SQL functions "
            "installed and (with a connection string) the migrations current; that Redis "
            "answers, whether it has RedisJSON, and that the chain lists are lists. "
            "Options come from the environment, or from a conserver's config.yml with "
            "--config. Writes nothing to the database. Exit code 1 when a check fails."
        ),
    )
    doctor.add_argument(
        "--config", metavar="PATH", help="read the options from this conserver config.yml"
    )
    doctor.add_argument(
        "--storage",
        metavar="NAME",
        help="the entry under 'storages:' (default: the one with module conserver_supabase)",
    )
    doctor.set_defaults(handler=_doctor)

    search = commands.add_parser(
        "search",
        help="find vCons in the database by text, party, tags, dates, types",
        description=(
            "Search the database (one round trip) and print the newest matches as a table, "
            "or as JSON with --json. All given filters must hold. Options come from the "
            "environment, or from a conserver's config.yml with --config."
        ),
    )
    for flag, name in (
        ("--text", "text"),
        ("--subject", "subject"),
        ("--tel", "tel"),
        ("--mailto", "mailto"),
        ("--name", "name"),
        ("--party-uuid", "party_uuid"),
        ("--created-after", "created_after"),
        ("--created-before", "created_before"),
        ("--updated-after", "updated_after"),
        ("--updated-before", "updated_before"),
        ("--dialog-type", "dialog_type"),
        ("--analysis-type", "analysis_type"),
        ("--analysis-vendor", "analysis_vendor"),
    ):
        search.add_argument(flag, dest=name, metavar="VALUE", help=FILTERS[name])
    search.add_argument(
        "--tag", dest="tags", action="append", metavar="KEY:VALUE", help="a tag; repeatable"
    )
    search.add_argument("--limit", type=int, default=50, help="results per page (default 50)")
    search.add_argument("--cursor", help="the next-page cursor a previous search printed")
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.add_argument(
        "--vcons", action="store_true", help="with --json: whole vCons instead of uuids"
    )
    search.add_argument("--config", metavar="PATH", help="read the options from a config.yml")
    search.add_argument("--storage", metavar="NAME", help="the entry under 'storages:'")
    search.set_defaults(handler=_search)

    replay = commands.add_parser(
        "replay",
        help="save again every vCon on the failed-save journal",
        description=(
            "A save that failed for good (after the retries) leaves its vCon on a Redis "
            "list, the failed-save journal (option journal_list). This saves each one "
            "again, oldest first, and removes it from the journal once saved. Running it "
            "twice is harmless. It stops at the first database failure and keeps the rest. "
            "Exit code 1 when it stopped early."
        ),
    )
    replay.add_argument("--config", metavar="PATH", help="read the options from a config.yml")
    replay.add_argument("--storage", metavar="NAME", help="the entry under 'storages:'")
    replay.set_defaults(handler=_replay)
    return parser


def _migrate(args: argparse.Namespace) -> int:
    options = {"schema": args.schema}
    if args.database_url:
        options["database_url"] = args.database_url
    config = StorageConfig.from_options(options)
    if args.print_sql:
        sys.stdout.write(migrations.render_script(config.schema))
        return EXIT_OK
    if config.database_url is None:
        raise ConfigurationError(
            "migrate needs a database: pass --database-url URL (or set SUPABASE_DB_URL), "
            "or use --print and paste the SQL into the Supabase SQL editor",
            option="database_url",
        )
    url = config.database_url.reveal()
    applied = migrations.apply(url, config.schema)
    where = f"{redact_url(url)} (schema {config.schema})"
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
        print(f"{len(applied)} migration(s) applied to {where}")
    else:
        print(f"database is up to date: {where}")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    import os
    from contextlib import ExitStack

    from .demo import run_demo
    from .embedded import EmbeddedPostgres, EmbeddedRedis

    if args.count < 1:
        raise ConfigurationError("--count must be at least 1")
    options = {"database_url": args.database_url, "redis_url": args.redis_url}
    config = StorageConfig.from_options(options)
    with ExitStack() as stack:
        if config.database_url is None and config.url is None:
            print("starting an embedded PostgreSQL (no database configured) ...")
            options["database_url"] = stack.enter_context(EmbeddedPostgres()).url
        if not (args.redis_url or os.environ.get("REDIS_URL", "").strip()):
            print("starting an embedded Redis with RedisJSON (no REDIS_URL) ...")
            options["redis_url"] = stack.enter_context(EmbeddedRedis()).url
        run_demo(StorageConfig.from_options(options), count=args.count, out=sys.stdout)
    return EXIT_OK


def _conserver_options(args: argparse.Namespace) -> Any:
    """The options of ``--config PATH [--storage NAME]``, or None (the environment)."""
    from pathlib import Path

    from .doctor import load_conserver_options

    if args.storage and not args.config:
        raise ConfigurationError("--storage needs --config PATH")
    return load_conserver_options(Path(args.config), args.storage) if args.config else None


def _search(args: argparse.Namespace) -> int:
    import json

    from .storage import SupabaseStorage

    options = _conserver_options(args)
    filters = {name: getattr(args, name) for name in FILTERS}
    with SupabaseStorage(options) as storage:
        page = storage.search(
            filters,
            limit=args.limit,
            cursor=args.cursor,
            include_vcons=args.vcons or not args.json,
        )
    if args.json:
        print(json.dumps({"items": page.items, "next_cursor": page.next_cursor}, indent=2))
        return EXIT_OK
    print(f"{'uuid':<38}{'created_at':<27}{'parties':<28}subject")
    for vcon in page.items:
        names = ", ".join(
            str(p.get("name") or p.get("tel") or p.get("mailto") or "?")
            for p in vcon.get("parties") or []
        )
        print(
            f"{vcon['uuid']:<38}{vcon.get('created_at', '')!s:<27}"
            f"{names[:26]:<28}{str(vcon.get('subject') or '')[:60]}"
        )
    print(f"{len(page)} vCon(s)")
    if page.next_cursor:
        print(f"more: add --cursor {page.next_cursor}")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:

    from .storage import SupabaseStorage

    options = _conserver_options(args)
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if interactive:
            bar = "#" * (30 * done // total)
            print(f"\r[{bar:<30}] {done}/{total}", end="", file=sys.stderr, flush=True)
        elif done == total or done % 100 == 0:
            print(f"replayed {done}/{total}", file=sys.stderr)

    with SupabaseStorage(options) as storage:
        report = storage.replay_journal(progress)
    if interactive and report.total:
        print(file=sys.stderr)
    print(f"journal {storage.config.journal_list}: {report.total} vCon(s) waiting")
    print(f"saved again: {report.replayed}")
    for line in report.dropped:
        print(f"removed without a save: {line}")
    for line in report.unpushed:
        print(f"saved, not pushed: {line}")
    for line in report.kept:
        print(f"refused by the database, kept on the journal: {line}")
    if report.error:
        print(f"stopped, the rest stays journaled: {report.error}")
        return EXIT_FAILED
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:

    from .doctor import run_doctor

    options = _conserver_options(args)
    config = StorageConfig.from_options(options)
    config.require_database()
    checks = run_doctor(config, sys.stdout)
    return EXIT_FAILED if any(check.status == "FAIL" for check in checks) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except ConfigurationError as exc:
        print(f"conserver-supabase: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConserverSupabaseError as exc:
        print(f"conserver-supabase: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
