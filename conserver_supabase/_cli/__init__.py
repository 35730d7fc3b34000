"""The operator's command line: ``conserver-supabase COMMAND``.

The commands and their options are data (:mod:`._table`); their handlers
(:mod:`._commands`) go through :class:`~conserver_supabase.SupabaseStorage`'s public
methods only.

Exit codes: 0 success, 1 the operation failed (database, Redis), 2 bad usage or
configuration, 3 the vCon does not exist (get, exists, delete), 4 backfill finished
but some items failed (listed in its report file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._errors import ConfigurationError, ConserverSupabaseError, InvalidVconError
from .._version import __version__
from . import _commands
from ._table import COMMANDS, CONNECTION_HELP, GROUPS, Command

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`._table.COMMANDS`."""
    top = argparse.ArgumentParser(
        prog="conserver-supabase",
        description="Supabase/PostgreSQL storage with a Redis hot tier for the vCon conserver.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    nested: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for command in COMMANDS:
        parent, _, child = command.name.rpartition(" ")
        where = nested[parent] if parent else commands
        epilog = CONNECTION_HELP if "config" in command.groups else None
        sub = where.add_parser(
            child, help=command.help, description=command.description, epilog=epilog
        )
        if any(other.name.startswith(f"{command.name} ") for other in COMMANDS):
            nested[command.name] = sub.add_subparsers(
                dest=f"{child}_command", metavar="SUBCOMMAND", required=True
            )
            continue
        _add_arguments(sub, command)
        sub.set_defaults(handler=getattr(_commands, command.name.replace(" ", "_")))
    return top


def _add_arguments(sub: argparse.ArgumentParser, command: Command) -> None:
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for spec in (*command.args, *(a for group in command.groups for a in GROUPS[group])):
        target: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup = sub
        if spec.exclusive is not None:
            if spec.exclusive not in exclusive:
                required = spec.exclusive.startswith("!")
                exclusive[spec.exclusive] = sub.add_mutually_exclusive_group(required=required)
            target = exclusive[spec.exclusive]
        target.add_argument(*spec.names, **spec.options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except ConfigurationError as exc:
        print(f"conserver-supabase: configuration error: {exc}", file=sys.stderr)
        return _commands.EXIT_USAGE
    except InvalidVconError as exc:  # a bad uuid on the command line
        print(f"conserver-supabase: {exc}", file=sys.stderr)
        return _commands.EXIT_USAGE
    except ConserverSupabaseError as exc:
        print(f"conserver-supabase: {exc}", file=sys.stderr)
        return _commands.EXIT_FAILED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
