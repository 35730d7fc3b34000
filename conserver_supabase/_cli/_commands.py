"""The handlers of the commands of :mod:`._table`, one function per command (named after
it), each through :class:`~conserver_supabase.SupabaseStorage`'s public methods."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .._config import redact_url
from .._errors import ConfigurationError
from .._search import FILTERS
from .._storage import SupabaseStorage
from .._validation import canonical_uuid
from ._connection import connection

__all__ = [
    "backfill",
    "cache_flush",
    "cache_stats",
    "cache_warm",
    "delete",
    "demo",
    "doctor",
    "exists",
    "get",
    "journal_list",
    "journal_purge",
    "migrate",
    "replay",
    "requeue",
    "search",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_PARTIAL: Final = 4


def _storage(args: argparse.Namespace) -> SupabaseStorage:
    return SupabaseStorage(connection(args).config())


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in FILTERS}


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """``--yes``, or a yes typed at the terminal; without a terminal, a usage error."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigurationError(f"{question.rstrip('?')}: pass --yes to confirm (no terminal)")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def migrate(args: argparse.Namespace) -> int:
    given = connection(args)
    rest = "runs SQL over a direct PostgreSQL connection (--database-url), not Supabase's REST API"
    for option in ("url", "key"):
        given.refuse("migrate", option, rest)
    given.refuse("migrate", "redis_url", "does not use Redis")
    if args.print_sql:
        given.refuse("migrate --print", "database_url", "connects to nothing")
    config = given.config(**({} if args.schema is None else {"schema": args.schema}))
    if args.print_sql:
        sys.stdout.write(SupabaseStorage.migration_script(config.schema))
        return EXIT_OK
    if config.database_url is None:
        rest = " (Supabase's REST API, 'url', cannot run SQL)" if config.url else ""
        raise ConfigurationError(
            f"migrate needs a direct PostgreSQL connection{rest}: pass --database-url URL "
            "(or set database_url in --config, or SUPABASE_DB_URL), or use --print and "
            "paste the SQL into the Supabase SQL editor",
            option="database_url",
        )
    with SupabaseStorage(config) as storage:
        applied = storage.migrate()
    where = f"{redact_url(config.database_url.reveal())} (schema {config.schema})"
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"{len(applied)} migration(s) applied to {where}" if applied else
          f"database is up to date: {where}")  # fmt: skip
    return EXIT_OK


def demo(args: argparse.Namespace) -> int:
    from .._demo import run_demo
    from ..testing import EmbeddedPostgres, EmbeddedRedis

    if args.count < 1:
        raise ConfigurationError("--count must be at least 1")
    given = connection(args)
    config = given.config()
    embedded: dict[str, str] = {}
    with ExitStack() as stack:
        if config.database_url is None and config.url is None:
            print("starting an embedded PostgreSQL (no database configured) ...")
            embedded["database_url"] = stack.enter_context(EmbeddedPostgres()).url
        if not given.names("redis_url"):
            print("starting an embedded Redis with RedisJSON (no REDIS_URL) ...")
            embedded["redis_url"] = stack.enter_context(EmbeddedRedis()).url
        run_demo(given.config(**embedded), count=args.count, out=sys.stdout)
    return EXIT_OK


def doctor(args: argparse.Namespace) -> int:
    config = connection(args).config()
    config.require_database()
    with SupabaseStorage(config) as storage:
        checks = storage.doctor(sys.stdout)
    return EXIT_FAILED if any(check.status == "FAIL" for check in checks) else EXIT_OK


def search(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        page = storage.search(
            _filters(args),
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


def get(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        vcon = storage.get_vcon(args.uuid, use_cache=not args.no_cache)
    if vcon is None:
        print(f"conserver-supabase: vCon {args.uuid} not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(vcon, indent=2, ensure_ascii=False))
    return EXIT_OK


def exists(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        found = storage.exists(args.uuid)
    if args.json:
        print(json.dumps({"uuid": args.uuid, "exists": found}))
    else:
        print(f"vCon {args.uuid} {'exists' if found else 'does not exist'}")
    return EXIT_OK if found else EXIT_NOT_FOUND


def delete(args: argparse.Namespace) -> int:
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


def cache_stats(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        usage = storage.cache_usage()
    lookups = usage.server_hits + usage.server_misses
    ratio = usage.server_hits / lookups if lookups else None
    if args.json:
        shown = {k: v for k, v in dataclasses.asdict(usage).items() if k != "location"}
        print(json.dumps({**shown, "server_hit_ratio": ratio}, indent=2))
        return EXIT_OK
    print(f"{usage.location}, prefix {usage.prefix!r}")
    print(f"keys under the prefix: {usage.keys}")
    print(f"  holding a vCon the database has: {usage.saved}")
    print(f"  working copies not saved yet:    {usage.keys - usage.saved}")
    print(f"memory of those keys: {_size(usage.memory_bytes)}")
    print(f"server memory: {_size(usage.server_memory_bytes)}")
    shown_ratio = "n/a (no reads yet)" if ratio is None else f"{ratio:.1%}"
    print(
        f"server hit ratio since start: {shown_ratio} ({usage.server_hits} hits, "
        f"{usage.server_misses} misses; all clients)"
    )
    return EXIT_OK


def cache_flush(args: argparse.Namespace) -> int:
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


def cache_warm(args: argparse.Namespace) -> int:
    interactive = sys.stderr.isatty()

    def progress(matched: int, filled: int) -> None:
        if interactive:
            print(f"\rmatched {matched}, filled {filled}", end="", file=sys.stderr, flush=True)

    with _storage(args) as storage:
        matched, filled = storage.warm_cache(_filters(args), progress=progress)
    if interactive:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"matched": matched, "filled": filled}))
    else:
        print(f"{matched} vCon(s) matched, {filled} filled into the cache")
    return EXIT_OK


def backfill(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    report = Path(args.report)
    with _storage(args) as storage, tqdm(
        unit=" vCon", file=sys.stderr, disable=None, smoothing=0.1
    ) as bar:  # fmt: skip

        def progress(handled: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(handled)

        summary = storage.backfill(
            args.path,
            redis_pattern=args.redis_pattern,
            checkpoint=Path(args.checkpoint),
            report=report,
            batch=args.batch,
            restart=args.restart,
            push=args.push,
            progress=progress,
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
        _print_backfill(summary, report)
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _print_backfill(summary: Any, report: Path) -> None:
    rate = summary.saved / summary.seconds if summary.seconds else 0.0
    print(
        f"saved {summary.saved}, skipped {summary.skipped} (done in an earlier run), "
        f"failed {summary.failed} in {summary.seconds:.1f} s ({rate:.0f} vCon/s)"
    )
    if summary.unpushed:
        print(f"not pushed onto every chain list: {summary.unpushed}")
    if summary.failed:
        print(f"failures with their reasons: {report}")


def requeue(args: argparse.Namespace) -> int:
    since, until = _moment("--since", args.since), _moment("--until", args.until)
    assert since is not None  # required by the parser
    with _storage(args) as storage:
        pushed = storage.requeue(args.list, since, until)
    window = f"from {since.isoformat()} to {until.isoformat() if until else 'now'}"
    if args.json:
        print(json.dumps({"list": args.list, "pushed": pushed, "since": args.since,
                          "until": args.until}))  # fmt: skip
    else:
        print(f"pushed {pushed} uuid(s) onto {args.list} (vCons saved {window})")
    return EXIT_OK


def feed(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        consumer = storage.change_feed(args.name)

        def report(done: Any) -> None:
            if args.json:
                print(json.dumps({"cursor": consumer.name, **dataclasses.asdict(done)}), flush=True)
            elif done.changes or done.flushed:
                flushed = ", flushed the cache first (it had lost changes)" if done.flushed else ""
                known = done.changes - done.removed - done.marked - done.recorded
                print(
                    f"{consumer.name}: {done.changes} change(s): {known} known to this Redis "
                    f"already, {done.removed} key(s) removed, {done.marked} working cop(ies) "
                    f"marked, {done.recorded} version(s) recorded{flushed}",
                    flush=True,
                )

        if args.once:
            report(consumer.poll())
            consumer.checkpoint()
            return EXIT_OK
        stop = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop(timeout=0))
        try:
            consumer.run(on_round=report)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, stop)
    return EXIT_OK


def _progress(verb: str) -> Any:
    """A progress reporter on stderr: a bar at a terminal, a line per 100 otherwise."""
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if interactive:
            bar = "#" * (30 * done // total)
            end = "\n" if done == total else ""
            print(f"\r[{bar:<30}] {done}/{total}", end=end, file=sys.stderr, flush=True)
        elif done == total or done % 100 == 0:
            print(f"{verb} {done}/{total}", file=sys.stderr)

    return progress


def replay(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        report = storage.replay_journal(_progress("replayed"))
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return EXIT_FAILED if report.error else EXIT_OK
    lines: list[tuple[str, list[str]]] = [
        ("removed without a save", report.dropped),
        ("superseded, removed", report.superseded),
        ("refused for its data, moved to the dead letters", report.dead_lettered),
        ("saved, not pushed", report.unpushed),
    ]
    print(f"journal {storage.config.journal_list}: {report.total} vCon(s) waiting")
    print(f"saved again: {report.replayed}")
    for label, entries in lines:
        for line in entries:
            print(f"{label}: {line}")
    if report.error:
        print(f"stopped, the rest stays journaled: {report.error}")
        return EXIT_FAILED
    return EXIT_OK


def journal_list(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        entries = storage.journal_entries(dead=args.dead)
        name = storage.config.journal_list + (":dead" if args.dead else "")
        days = storage.config.journal_retention_days
    if args.json:
        print(json.dumps(entries, indent=2))
        return EXIT_OK
    what = "dead letter(s)" if args.dead else "journaled vCon(s)"
    print(f"{name}: {len(entries)} {what}, each kept at most {days:g} day(s)")
    for entry in entries:
        if args.dead:
            print(f"{entry['uuid']}  dead since {entry['dead_since']}  {entry['bytes']} B  "
                  f"{entry['reason']}")  # fmt: skip
        else:
            base = entry["base"] if entry["base"] is not None else "unknown"
            tenant = (entry["tenant"] or {}).get("tenant_id", "as is")
            print(f"{entry['uuid']}  failed {entry['journaled_at']}  base {base}  "
                  f"tenant {tenant}  {entry['kept_as']} {entry['bytes']} B")  # fmt: skip
    return EXIT_OK


def journal_purge(args: argparse.Namespace) -> int:
    with _storage(args) as storage:
        days = storage.config.journal_retention_days if args.older_than is None else args.older_than
        what = "dead letters" if args.dead else "journal entries"
        if not _confirm(args, f"Remove the {what} kept at least {days:g} day(s)?"):
            print("nothing removed")
            return EXIT_OK
        removed = storage.purge_journal(days, dead=args.dead, progress=_progress("checked"))
    if args.json:
        print(json.dumps({"removed": removed, "dead": args.dead, "older_than_days": days}))
    else:
        print(f"removed {removed} {what} kept at least {days:g} day(s) (or expired)")
    return EXIT_OK


def _moment(flag: str, text: str | None) -> datetime | None:
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


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
