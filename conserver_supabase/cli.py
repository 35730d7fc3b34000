"""The operator's command line: ``conserver-supabase COMMAND``.

Exit codes: 0 success, 1 the operation failed (database, Redis), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__, migrations
from .config import StorageConfig, redact_url
from .errors import ConfigurationError, ConserverSupabaseError

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
        help="save, load, re-save and delete generated vCons, with timings",
        description=(
            "Drive a short session against the database and print per-operation timings. "
            "With no database configured it starts an embedded PostgreSQL (needs the "
            "'embedded' extra), applies the migrations and removes everything afterwards. "
            "With --database-url (or SUPABASE_DB_URL) it uses that database, applies "
            "pending migrations, and touches only the vCons it creates."
        ),
    )
    demo.add_argument(
        "--database-url", metavar="URL", help="use this PostgreSQL instead of an embedded one"
    )
    demo.add_argument("--count", type=int, default=20, help="vCons to generate (default 20)")
    demo.set_defaults(handler=_demo)
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
    from contextlib import ExitStack

    from .demo import run_demo
    from .embedded import EmbeddedPostgres

    if args.count < 1:
        raise ConfigurationError("--count must be at least 1")
    options = {"database_url": args.database_url} if args.database_url else {}
    config = StorageConfig.from_options(options)
    with ExitStack() as stack:
        if config.database_url is None:
            print("starting an embedded PostgreSQL (no database configured) ...")
            embedded = stack.enter_context(EmbeddedPostgres())
            config = StorageConfig.from_options({"database_url": embedded.url})
        run_demo(config, count=args.count, out=sys.stdout)
    return EXIT_OK


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
