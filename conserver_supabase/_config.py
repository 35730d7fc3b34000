"""Options -> one frozen, validated :class:`StorageConfig`.

The conserver hands a storage its ``options:`` mapping from config.yml as is (not
merged with ``default_options``), ``default_options`` itself, or ``None``, without
expanding ``${VAR}``. :meth:`StorageConfig.from_options` accepts all of those, expands
``${VAR}`` / ``${VAR:-default}``, coerces what YAML and the environment produce, fills
what is missing from the environment and then the defaults, and rejects the unknown.

Precedence, highest first: the option, its environment variable, the default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ._errors import ConfigurationError
from ._legacy import check_version
from ._options import (
    Secret,
    as_bool,
    as_choice,
    as_float,
    as_int,
    as_name_list,
    as_seconds,
    as_str,
    check_url,
    expand,
    expand_env,
    read_replica,
    redact_url,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "Secret",
    "StorageConfig",
    "as_name_list",
    "expand_env",
    "load_conserver_options",
    "redact_url",
]

#: What ``default_options`` holds: every option with its default (``None``: from the
#: environment). A config from this mapping, from ``{}`` or from ``None`` is the same.
DEFAULT_OPTIONS: Final[Mapping[str, Any]] = {
    "url": None,
    "key": None,
    "database_url": None,
    "read_url": None,
    "read_database_url": None,
    "schema": "public",
    "timeout": 10.0,
    "redis_url": None,
    "cache_ttl": None,
    "cache_key_prefix": "vcon:",
    "cache_format": "auto",
    "cache_errors": "log",
    "redis_timeout": 2.0,
    "redis_cooldown": 10.0,
    "redis_failover_timeout": 5.0,
    "cache_suspect_limit": 10000,
    "retry_deadline": 10.0,
    "max_body_bytes": 10 * 1024 * 1024,
    "bulk_chunk": 500,
    "bulk_chunk_bytes": 16 * 1024 * 1024,
    "egress_format_version": None,
    "journal_list": "conserver_supabase:journal",
    "journal_retention_days": 7.0,
    "journal_max_entries": 100_000,
    "chain_lists": [],
    "feed": False,
    "feed_name": None,
    "feed_poll_interval": 0.5,
    "feed_batch": 1000,
    "pool_size": 10,
    "tenant_id": None,
    "tenant_from_attachment": False,
    "tenant_attachment_type": "tenant",
    "tenant_json_path": "id",
}

#: ``cache_format``: how a vCon is written to a cache key that does not exist yet.
CACHE_FORMATS: Final = ("auto", "json", "string")
#: ``cache_errors``: what a Redis failure does to an operation the database completed.
CACHE_ERROR_POLICIES: Final = ("log", "raise")

_DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"
_DEFAULT_CACHE_TTL: Final = 3600

# option -> other accepted spellings (kept for users of the original example).
_ALIASES: Final[Mapping[str, str]] = {
    "service_role_key": "key",
    "anon_key": "key",
}

# option -> environment variables consulted, in order, when the option is unset.
_ENV_FALLBACKS: Final[Mapping[str, tuple[str, ...]]] = {
    "url": ("SUPABASE_URL",),
    "key": ("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY", "SUPABASE_ANON_KEY"),
    "database_url": ("SUPABASE_DB_URL",),
    "read_url": ("SUPABASE_READ_URL",),
    "read_database_url": ("SUPABASE_READ_DB_URL",),
    "redis_url": ("REDIS_URL",),
    "cache_ttl": ("VCON_REDIS_EXPIRY",),
}
_DEPRECATED_ENV: Final = {"SUPABASE_ANON_KEY"}

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


@dataclasses.dataclass(frozen=True, slots=True)
class StorageConfig:
    """The effective, validated configuration of one storage.

    Immutable and hashable (they key the cache of clients and pools); ``repr`` and
    ``str`` never show the key or URL passwords."""

    url: str | None = None
    key: Secret | None = None
    database_url: Secret | None = None
    read_url: str | None = None
    read_database_url: Secret | None = None
    schema: str = "public"
    timeout: float = 10.0
    redis_url: Secret = Secret(_DEFAULT_REDIS_URL)  # noqa: RUF009 - Secret is immutable
    cache_ttl: int = _DEFAULT_CACHE_TTL
    cache_key_prefix: str = "vcon:"
    cache_format: str = "auto"
    cache_errors: str = "log"
    redis_timeout: float = 2.0
    redis_cooldown: float = 10.0
    redis_failover_timeout: float = 5.0
    cache_suspect_limit: int = 10000
    retry_deadline: float = 10.0
    max_body_bytes: int = 10 * 1024 * 1024
    bulk_chunk: int = 500
    bulk_chunk_bytes: int = 16 * 1024 * 1024
    egress_format_version: str | None = None
    journal_list: str = "conserver_supabase:journal"
    journal_retention_days: float = 7.0
    journal_max_entries: int = 100_000
    chain_lists: tuple[str, ...] = ()
    feed: bool = False
    feed_name: str | None = None
    feed_poll_interval: float = 0.5
    feed_batch: int = 1000
    pool_size: int = 10
    tenant_id: str | None = None
    tenant_from_attachment: bool = False
    tenant_attachment_type: str = "tenant"
    tenant_json_path: str = "id"

    # --- construction ---------------------------------------------------------

    @classmethod
    def from_options(
        cls,
        opts: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> StorageConfig:
        """Build the configuration from whatever the conserver passes as ``opts``.

        ``opts`` may be a mapping (config.yml ``options:``), the module's
        ``default_options`` or ``None``. It is never modified. ``environ`` defaults
        to ``os.environ``.
        """
        env = os.environ if environ is None else environ
        if opts is None:
            opts = {}
        if not isinstance(opts, Mapping):
            raise ConfigurationError(
                f"options must be a mapping (the 'options:' block in config.yml), "
                f"got {type(opts).__name__}"
            )
        raw = _canonical_keys(opts)
        values: dict[str, Any] = {}
        for name in DEFAULT_OPTIONS:
            value = expand(raw.get(name), name, env)
            if isinstance(value, str) and not value.strip():
                value = None  # "${UNSET:-}" and "" mean "not given"
            if value is None:
                value = _from_environment(name, env)
            if value is None:
                value = DEFAULT_OPTIONS[name]
            values[name] = value
        return cls._validated(values)

    @classmethod
    def _validated(cls, values: Mapping[str, Any]) -> StorageConfig:
        return cls(
            **_database_options(values),
            **_redis_options(values),
            max_body_bytes=as_int("max_body_bytes", values["max_body_bytes"], minimum=0),
            bulk_chunk=as_int("bulk_chunk", values["bulk_chunk"], minimum=1),
            bulk_chunk_bytes=as_int("bulk_chunk_bytes", values["bulk_chunk_bytes"], minimum=1),
            egress_format_version=check_version(values["egress_format_version"]),
            **_tenancy(values),
        )

    # --- what the rest of the package asks ------------------------------------

    @property
    def transport(self) -> str:
        """``"postgres"`` when ``database_url`` is set, else ``"postgrest"``."""
        return "postgres" if self.database_url is not None else "postgrest"

    @property
    def replica(self) -> bool:
        """Whether the transport in use has a read replica (``read_database_url``/``read_url``)."""
        wanted = self.read_database_url if self.transport == "postgres" else self.read_url
        return wanted is not None

    def require_database(self) -> None:
        """Raise :class:`ConfigurationError` unless a database is configured."""
        if self.database_url is not None:
            return
        if self.url is None:
            raise ConfigurationError(
                "no database configured: set 'url' and 'key' (or SUPABASE_URL and "
                "SUPABASE_SERVICE_ROLE_KEY), or 'database_url' (or SUPABASE_DB_URL)",
                option="url",
            )
        if self.key is None:
            raise ConfigurationError(
                "option 'url' is set but 'key' is not: set 'key' (or SUPABASE_SERVICE_ROLE_KEY) "
                "to the project's service-role key",
                option="key",
            )

    @property
    def journal_retention(self) -> int:
        """Seconds the journal keeps a vCon (``journal_retention_days``)."""
        return max(1, round(self.journal_retention_days * 86400))

    def describe(self) -> dict[str, Any]:
        """Return the options as a plain mapping with secrets redacted (for logs, doctor)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "key":
                value = None if value is None else "***"
            elif isinstance(value, Secret):
                value = redact_url(value.reveal())
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"StorageConfig({inner})"

    __str__ = __repr__


def _database_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options of the database side, checked."""
    url = values["url"]
    if url is not None:
        url = check_url(
            "url",
            as_str("url", url).rstrip("/"),
            ("https", "http"),
            "use the project URL from Supabase's API settings, e.g. https://xyz.supabase.co",
        )
    key = values["key"]
    database_url = values["database_url"]
    if database_url is not None:
        database_url = check_url(
            "database_url",
            as_str("database_url", database_url),
            ("postgresql", "postgres"),
            "use the connection string from Supabase's database settings",
        )
    read_url, read_database_url = read_replica(values, url, database_url)
    schema = as_str("schema", values["schema"])
    if not _IDENTIFIER.match(schema):
        raise ConfigurationError(
            f"option 'schema' must be a plain PostgreSQL identifier, got {schema!r}",
            option="schema",
        )
    return {
        "url": url,
        "key": Secret(as_str("key", key)) if key is not None else None,
        "database_url": Secret(database_url) if database_url is not None else None,
        "read_url": read_url,
        "read_database_url": Secret(read_database_url) if read_database_url else None,
        "schema": schema,
        "timeout": as_float("timeout", values["timeout"], minimum=0.0),
        "retry_deadline": as_seconds("retry_deadline", values["retry_deadline"]),
        "pool_size": as_int("pool_size", values["pool_size"], minimum=1),
    }


def _redis_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options of the Redis side, checked."""
    from ._redis import _urls  # here: the Redis package imports this module

    raw = values["redis_url"]
    redis_url = as_str("redis_url", _DEFAULT_REDIS_URL if raw is None else raw)
    cluster = _urls.is_cluster_url(redis_url)
    if _urls.is_sentinel_url(redis_url):
        _urls.parse_sentinel(redis_url)  # raises ConfigurationError naming what is wrong
    elif cluster:
        _urls.parse_cluster(redis_url)  # the same
    else:
        check_url(
            "redis_url",
            redis_url,
            ("redis", "rediss", "unix", *_urls.SENTINEL_SCHEMES, *_urls.CLUSTER_SCHEMES),
            "see docs/configuration.md",
        )
    prefix = as_str("cache_key_prefix", values["cache_key_prefix"])
    if not prefix:
        raise ConfigurationError(
            "option 'cache_key_prefix' must not be empty", option="cache_key_prefix"
        )
    if cluster and ("{" in prefix or "}" in prefix):
        # A cache key's hash slot must be its version key's (see _redis/_cache.py): a
        # brace in the prefix would make it a hash tag and move the cache key elsewhere.
        raise ConfigurationError(
            "option 'cache_key_prefix' must not contain '{' or '}' with Redis Cluster "
            f"(got {prefix!r})",
            option="cache_key_prefix",
        )
    cache_format = as_choice("cache_format", values["cache_format"], CACHE_FORMATS)
    if cache_format == "string" and prefix == "vcon:":
        raise ConfigurationError(
            "option 'cache_format' is 'string' but the cache keys are the conserver's "
            "vcon:{uuid}, which it reads with JSON.GET: a string there breaks it. "
            "Use cache_format: auto, or another cache_key_prefix",
            option="cache_format",
        )
    ttl = values["cache_ttl"]
    return {
        "redis_url": Secret(redis_url),
        "cache_ttl": as_int("cache_ttl", _DEFAULT_CACHE_TTL if ttl is None else ttl, minimum=1),
        "cache_key_prefix": prefix,
        "cache_format": cache_format,
        "cache_errors": as_choice("cache_errors", values["cache_errors"], CACHE_ERROR_POLICIES),
        "redis_timeout": as_float("redis_timeout", values["redis_timeout"], minimum=0.0),
        "redis_cooldown": as_seconds("redis_cooldown", values["redis_cooldown"]),
        "redis_failover_timeout": as_seconds(
            "redis_failover_timeout", values["redis_failover_timeout"]
        ),
        "cache_suspect_limit": as_int(
            "cache_suspect_limit", values["cache_suspect_limit"], minimum=0
        ),
        "journal_list": as_str("journal_list", values["journal_list"]),
        "journal_retention_days": as_float(
            "journal_retention_days", values["journal_retention_days"], minimum=0.0
        ),
        "journal_max_entries": as_int(
            "journal_max_entries", values["journal_max_entries"], minimum=0
        ),
        "chain_lists": as_name_list("chain_lists", values["chain_lists"]),
        **_feed_options(values),
    }


def _feed_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The change feed's options (conserver_supabase._feed)."""
    name = values["feed_name"]
    if name is not None:
        name = as_str("feed_name", name)
    interval = as_float("feed_poll_interval", values["feed_poll_interval"], minimum=0.0)
    return {
        "feed": as_bool("feed", values["feed"]),
        "feed_name": name,
        "feed_poll_interval": interval,
        "feed_batch": as_int("feed_batch", values["feed_batch"], minimum=1),
    }


def _tenancy(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the tenant options (see :mod:`conserver_supabase.tenants`)."""
    tenant_id = values["tenant_id"]
    if tenant_id is not None:
        tenant_id = as_str("tenant_id", tenant_id)
        if "\x00" in tenant_id:
            raise ConfigurationError(
                "option 'tenant_id' contains a NUL character", option="tenant_id"
            )
    derive = as_bool("tenant_from_attachment", values["tenant_from_attachment"])
    kind = as_str("tenant_attachment_type", values["tenant_attachment_type"])
    path = as_str("tenant_json_path", values["tenant_json_path"])
    if not kind:
        raise ConfigurationError(
            "option 'tenant_attachment_type' must not be empty", option="tenant_attachment_type"
        )
    if not path or any(not part for part in path.split(".")):
        raise ConfigurationError(
            f"option 'tenant_json_path' must be keys separated by dots (like vcon-mcp's "
            f"TENANT_JSON_PATH, e.g. 'id' or 'tenant.id'), got {path!r}",
            option="tenant_json_path",
        )
    if not derive:
        for option, given, default in (
            ("tenant_attachment_type", kind, DEFAULT_OPTIONS["tenant_attachment_type"]),
            ("tenant_json_path", path, DEFAULT_OPTIONS["tenant_json_path"]),
        ):
            if given != default:
                raise ConfigurationError(
                    f"option {option!r} is set but 'tenant_from_attachment' is not true, "
                    "so no tenant is read from attachments: set tenant_from_attachment: true",
                    option=option,
                )
    return {
        "tenant_id": tenant_id,
        "tenant_from_attachment": derive,
        "tenant_attachment_type": kind,
        "tenant_json_path": path,
    }


def _canonical_keys(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Map aliases onto option names and reject unknown keys."""
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for raw_name, value in opts.items():
        if not isinstance(raw_name, str):
            raise ConfigurationError(f"option names must be strings, got {raw_name!r}")
        name = _ALIASES.get(raw_name, raw_name)
        if name not in DEFAULT_OPTIONS:
            valid = ", ".join(sorted([*DEFAULT_OPTIONS, *_ALIASES]))
            raise ConfigurationError(
                f"unknown option {raw_name!r}; valid options are: {valid}", option=raw_name
            )
        if name in out and value is not None and out[name] is not None and out[name] != value:
            raise ConfigurationError(
                f"options {given_as[name]!r} and {raw_name!r} are the same setting with "
                f"different values; keep one",
                option=raw_name,
            )
        if value is not None or name not in out:
            out[name] = value
            given_as[name] = raw_name
    return out


def _from_environment(name: str, environ: Mapping[str, str]) -> str | None:
    for variable in _ENV_FALLBACKS.get(name, ()):
        value = environ.get(variable, "").strip()
        if value:
            if variable in _DEPRECATED_ENV:
                warnings.warn(
                    f"{variable} is deprecated for conserver-supabase: vcon-mcp's tables "
                    "have row-level security and an anon key can neither read nor write "
                    "them; set SUPABASE_SERVICE_ROLE_KEY",
                    DeprecationWarning,
                    stacklevel=4,
                )
            return value
    return None


def load_conserver_options(path: Path, storage: str | None) -> Mapping[str, Any] | None:
    """Return the ``options:`` of our storage in a conserver's config.yml.

    ``storage`` names the entry under ``storages:``; by default the one whose
    ``module`` is ``conserver_supabase``.
    """
    try:
        import yaml
    except ImportError:  # pragma: no cover - the conserver always has PyYAML
        raise ConfigurationError("reading config.yml needs PyYAML: pip install pyyaml") from None
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may hold a key: say where only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigurationError(f"cannot parse {path}{where}: {problem}") from None
    storages = (loaded or {}).get("storages") if isinstance(loaded, dict) else None
    if not isinstance(storages, dict):
        raise ConfigurationError(f"{path} has no 'storages:' section")
    if storage is None:
        ours = [n for n, e in storages.items() if (e or {}).get("module") == "conserver_supabase"]
        if not ours:
            raise ConfigurationError(
                f"{path}: no storage uses module conserver_supabase "
                f"(storages: {', '.join(map(str, storages)) or 'none'})"
            )
        storage = ours[0]
    entry = storages.get(storage)
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path}: no storage named {storage!r} under 'storages:'")
    options = entry.get("options")
    return options if isinstance(options, Mapping) else None
