"""The operator's command line: ``conserver-supabase COMMAND``.

Exit codes: 0 success, 1 the operation failed (database, Redis), 2 bad usage or
configuration, 3 the vCon does not exist (get, exists, delete), 4 backfill finished
but some items failed (listed in its report file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__, migrations
from .config import StorageConfig, redact_url
from .errors import ConfigurationError, ConserverSupabaseError, InvalidVconError
from .search import FILTERS

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_PARTIAL = 4


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
    _add_filters(search)
    search.add_argument("--limit", type=int, default=50, help="results per page (default 50)")
    search.add_argument("--cursor", help="the next-page cursor a previous search printed")
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.add_argument(
        "--vcons", action="store_true", help="with --json: whole vCons instead of uuids"
    )
    _add_config(search)
    search.set_defaults(handler=_search)

    get = commands.add_parser(
        "get",
        help="print one vCon as JSON",
        description=(
            "Print the vCon as pretty JSON: from the cache, else from the database (which "
            "then fills the cache). --no-cache reads the database and leaves the cache "
            "alone. Exit code 3 when the vCon does not exist."
        ),
    )
    get.add_argument("uuid", help="the vCon's uuid")
    get.add_argument("--no-cache", action="store_true", help="read the database, not the cache")
    _add_config(get)
    get.set_defaults(handler=_get)

    exists = commands.add_parser(
        "exists",
        help="tell whether a vCon exists (exit code 0 yes, 3 no)",
        description=(
            "Whether the vCon is in the database (a vCon a save cached answers from "
            "Redis). Exit code 0 when it exists, 3 when it does not."
        ),
    )
    exists.add_argument("uuid", help="the vCon's uuid")
    exists.add_argument("--json", action="store_true", help="print JSON")
    _add_config(exists)
    exists.set_defaults(handler=_exists)

    delete = commands.add_parser(
        "delete",
        help="delete one vCon from the database and the cache",
        description=(
            "Delete the vCon and all its rows from the database, then its cache entry. "
            "Asks first unless --yes (without a terminal, --yes is required). Exit code 3 "
            "when the vCon did not exist."
        ),
    )
    delete.add_argument("uuid", help="the vCon's uuid")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    delete.add_argument("--json", action="store_true", help="print JSON")
    _add_config(delete)
    delete.set_defaults(handler=_delete)

    cache = commands.add_parser(
        "cache",
        help="inspect, fill or empty the Redis cache",
        description="Cache tooling; every subcommand touches only keys under cache_key_prefix.",
    )
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    stats = cache_commands.add_parser(
        "stats",
        help="keys under the prefix, their memory, the server's hit ratio",
        description=(
            "Count the keys under cache_key_prefix (SCAN, in batches), how many hold a "
            "vCon the database has (saved or read through this storage; the others are "
            "working copies not saved yet), their memory (MEMORY USAGE), and the hit "
            "ratio of the whole Redis server since it started (INFO: every client's "
            "reads, not only this storage's)."
        ),
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    _add_config(stats)
    stats.set_defaults(handler=_cache_stats)
    flush = cache_commands.add_parser(
        "flush",
        help="remove the cached vCons the database holds (never KEYS or FLUSHDB)",
        description=(
            "Remove the keys under cache_key_prefix that hold a vCon the database has, "
            "found with SCAN in batches (never KEYS or FLUSHDB). Keys without a saved "
            "version (a conserver's working copy that was never saved) are kept, so no "
            "vCon is lost; the small version keys stay and expire with the TTL. Asks "
            "first unless --yes (without a terminal, --yes is required)."
        ),
    )
    flush.add_argument("--yes", action="store_true", help="do not ask")
    _add_config(flush)
    flush.set_defaults(handler=_cache_flush)
    warm = cache_commands.add_parser(
        "warm",
        help="fill the cache with the vCons a search finds",
        description=(
            "Search the database with the given filters (all of them must hold; none: "
            "every vCon) and cache each match that is not cached yet, one database read "
            "per 500 matches. Never replaces what is cached."
        ),
    )
    _add_filters(warm)
    warm.add_argument("--json", action="store_true", help="print JSON")
    _add_config(warm)
    warm.set_defaults(handler=_cache_warm)

    backfill = commands.add_parser(
        "backfill",
        help="import vCons from files, JSON Lines, standard input or Redis keys",
        description=(
            "Save many vCons, in batches (one transaction each): every *.json file under "
            "a directory (one vCon per file), a JSON Lines file (one vCon per line), "
            "standard input as JSON Lines ('-'), or the Redis keys matching "
            "--redis-pattern. Resumable: a checkpoint file records the last committed "
            "batch and a rerun starts after it (--restart to start over). Idempotent: "
            "saving a vCon again leaves the same rows. Imported vCons are not added to "
            "the cache (cached ones are updated) and not pushed onto chain lists unless "
            "--push. Unreadable or invalid items, and vCons the database refuses, go to "
            "the report file with the reason. Exit code 0 when all were saved, 4 when "
            "some failed, 1 when a database failure stopped it (rerun to resume)."
        ),
    )
    source = backfill.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "path", nargs="?", help="a directory, a .jsonl file, or - for standard input"
    )
    source.add_argument(
        "--redis-pattern", metavar="PATTERN", help="read the Redis keys matching PATTERN"
    )
    backfill.add_argument(
        "--batch", type=int, default=100, help="vCons per transaction (default 100)"
    )
    backfill.add_argument(
        "--checkpoint",
        metavar="FILE",
        default="conserver-supabase-backfill.checkpoint.json",
        help="where progress is kept (default: %(default)s)",
    )
    backfill.add_argument(
        "--report",
        metavar="FILE",
        default="conserver-supabase-backfill.failures.jsonl",
        help="where failed items are listed, one JSON object per line (default: %(default)s)",
    )
    backfill.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint and start over"
    )
    backfill.add_argument(
        "--push", action="store_true", help="push each uuid onto the configured chain lists"
    )
    backfill.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_config(backfill)
    backfill.set_defaults(handler=_backfill)

    requeue = commands.add_parser(
        "requeue",
        help="push the uuids of vCons saved in a time window onto a chain list",
        description=(
            "Push onto --list the uuid of every vCon saved through this storage at or "
            "after --since and before --until (default: now), oldest first, 1,000 per "
            "database call. For recovery after a chain push failure (ChainPushError). "
            "Times are ISO 8601 with a timezone, e.g. 2026-11-25T09:00:00Z."
        ),
    )
    requeue.add_argument("--since", required=True, metavar="ISO", help="start (inclusive)")
    requeue.add_argument("--until", metavar="ISO", help="end (exclusive; default: now)")
    requeue.add_argument("--list", required=True, metavar="NAME", help="the chain list")
    requeue.add_argument("--json", action="store_true", help="print JSON")
    _add_config(requeue)
    requeue.set_defaults(handler=_requeue)

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
    _add_config(replay)
    replay.set_defaults(handler=_replay)
    return parser


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The search filters as flags (search, cache warm)."""
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
        parser.add_argument(flag, dest=name, metavar="VALUE", help=FILTERS[name])
    parser.add_argument(
        "--tag", dest="tags", action="append", metavar="KEY:VALUE", help="a tag; repeatable"
    )


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="read the options from a config.yml")
    parser.add_argument("--storage", metavar="NAME", help="the entry under 'storages:'")


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


def _storage(args: argparse.Namespace) -> Any:
    from .storage import SupabaseStorage

    return SupabaseStorage(_conserver_options(args))


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """``--yes``, or a yes typed at the terminal; without a terminal, a usage error."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigurationError(f"{question.rstrip('?')}: pass --yes to confirm (no terminal)")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _get(args: argparse.Namespace) -> int:
    import json

    with _storage(args) as storage:
        vcon = storage.get_vcon(args.uuid, use_cache=not args.no_cache)
    if vcon is None:
        print(f"conserver-supabase: vCon {args.uuid} not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(vcon, indent=2, ensure_ascii=False))
    return EXIT_OK


def _exists(args: argparse.Namespace) -> int:
    import json

    with _storage(args) as storage:
        found = storage.exists(args.uuid)
    if args.json:
        print(json.dumps({"uuid": args.uuid, "exists": found}))
    else:
        print(f"vCon {args.uuid} {'exists' if found else 'does not exist'}")
    return EXIT_OK if found else EXIT_NOT_FOUND


def _delete(args: argparse.Namespace) -> int:
    import json

    from .validation import canonical_uuid

    canonical_uuid(args.uuid)  # a bad uuid is refused before the question
    if not _confirm(args, f"Delete vCon {args.uuid} from the database and the cache?"):
        print("not deleted")
        return EXIT_OK
    with _storage(args) as storage:
        existed = storage.delete_vcon(args.uuid)
    if args.json:
        print(json.dumps({"uuid": args.uuid, "deleted": existed}))
    elif existed:
        print(f"deleted vCon {args.uuid} (database and cache)")
    else:
        print(f"vCon {args.uuid} was not in the database (its cache entry is removed)")
    return EXIT_OK if existed else EXIT_NOT_FOUND


def _cache_stats(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    with _storage(args) as storage:
        usage = storage.cache_usage()
        where = storage._cache.location
    lookups = usage.server_hits + usage.server_misses
    ratio = usage.server_hits / lookups if lookups else None
    if args.json:
        print(json.dumps({**dataclasses.asdict(usage), "server_hit_ratio": ratio}, indent=2))
        return EXIT_OK
    print(f"{where}, prefix {usage.prefix!r}")
    print(f"keys under the prefix: {usage.keys}")
    print(f"  holding a vCon the database has: {usage.saved}")
    print(f"  working copies not saved yet:    {usage.keys - usage.saved}")
    print(f"memory of those keys: {_size(usage.memory_bytes)}")
    print(f"server memory: {_size(usage.server_memory_bytes)}")
    shown = "n/a (no reads yet)" if ratio is None else f"{ratio:.1%}"
    print(
        f"server hit ratio since start: {shown} ({usage.server_hits} hits, "
        f"{usage.server_misses} misses; all clients)"
    )
    return EXIT_OK


def _cache_flush(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        prefix = storage.config.cache_key_prefix
        if not _confirm(args, f"Remove the cached vCons under {prefix!r}?"):
            print("nothing removed")
            return EXIT_OK
        removed, kept = storage.flush_cache()
    print(f"removed {removed} cached vCon(s) under {prefix!r}")
    if kept:
        print(f"kept {kept} key(s) without a saved version (working copies not saved yet)")
    return EXIT_OK


def _cache_warm(args: argparse.Namespace) -> int:
    import json

    filters = {name: getattr(args, name) for name in FILTERS}
    interactive = sys.stderr.isatty()

    def progress(matched: int, filled: int) -> None:
        if interactive:
            print(f"\rmatched {matched}, filled {filled}", end="", file=sys.stderr, flush=True)

    with _storage(args) as storage:
        matched, filled = storage.warm_cache(filters, progress=progress)
    if interactive:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"matched": matched, "filled": filled}))
    else:
        print(f"{matched} vCon(s) matched, {filled} filled into the cache")
    return EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    from tqdm import tqdm

    from .backfill import DirectorySource, JsonLinesSource, RedisSource, Source, run_backfill

    with _storage(args) as storage:
        source: Source
        if args.redis_pattern:
            source = RedisSource(storage._cache.client, args.redis_pattern, args.batch)
        elif args.path == "-":
            source = JsonLinesSource(None)
        else:
            path = Path(args.path)
            if path.is_dir():
                source = DirectorySource(path)
            elif path.is_file():
                source = JsonLinesSource(path)
            else:
                raise ConfigurationError(f"{path} is neither a directory nor a file")
        report = Path(args.report)
        with tqdm(
            total=source.total(), unit=" vCon", file=sys.stderr, disable=None, smoothing=0.1
        ) as bar:
            summary = run_backfill(
                storage,
                source,
                checkpoint=Path(args.checkpoint),
                report=report,
                batch=args.batch,
                restart=args.restart,
                push=args.push,
                progress=bar.update,
            )
    if args.json:
        result = {**dataclasses.asdict(summary), "report": str(report)}
        result["seconds"] = round(summary.seconds, 3)
        print(json.dumps(result))
    elif summary.already_complete:
        print(
            f"already complete according to {args.checkpoint} ({summary.skipped} item(s)); "
            "pass --restart to run it again"
        )
    else:
        rate = summary.saved / summary.seconds if summary.seconds else 0.0
        print(
            f"saved {summary.saved}, skipped {summary.skipped} (done in an earlier run), "
            f"failed {summary.failed} in {summary.seconds:.1f} s ({rate:.0f} vCon/s)"
        )
        if summary.unpushed:
            print(f"not pushed onto every chain list: {summary.unpushed}")
        if summary.failed:
            print(f"failures with their reasons: {report}")
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _moment(flag: str, text: str | None) -> Any:
    from datetime import datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{flag} {text!r} is not an ISO 8601 time (e.g. 2026-11-25T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"{flag} {text!r} needs a timezone (Z or +hh:mm)")
    return moment


def _requeue(args: argparse.Namespace) -> int:
    import json

    since, until = _moment("--since", args.since), _moment("--until", args.until)
    with _storage(args) as storage:
        pushed = storage.requeue(args.list, since, until)
    window = f"from {since.isoformat()} to {until.isoformat() if until else 'now'}"
    if args.json:
        print(json.dumps({"list": args.list, "pushed": pushed, "since": args.since,
                          "until": args.until}))  # fmt: skip
    else:
        print(f"pushed {pushed} uuid(s) onto {args.list} (vCons saved {window})")
    return EXIT_OK


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


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
    except InvalidVconError as exc:  # a bad uuid on the command line
        print(f"conserver-supabase: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConserverSupabaseError as exc:
        print(f"conserver-supabase: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
