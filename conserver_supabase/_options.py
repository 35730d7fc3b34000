"""Reading option values: ``${VAR}`` expansion, the strings YAML and environment
variables hand over coerced to what an option takes, and secrets kept out of every
``repr``. :mod:`._config` decides which option takes what; the helpers here raise
:class:`~conserver_supabase.ConfigurationError` naming the option."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._errors import ConfigurationError

__all__ = [
    "Secret",
    "as_bool",
    "as_choice",
    "as_float",
    "as_int",
    "as_name_list",
    "as_seconds",
    "as_str",
    "check_url",
    "expand",
    "expand_env",
    "read_replica",
    "redact_url",
]

_ENV_PATTERN: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# How YAML or an environment variable may spell a boolean option.
_BOOLEAN_WORDS: Final = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
}


class Secret:
    """A string that never shows itself in ``repr``/``str``/f-strings.

    Call :meth:`reveal` where the real value is needed (building a client).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


_SECRET_QUERY: Final = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with its password (in the user part or the query) replaced by ``***``."""
    if url.partition("://")[0].lower().endswith(("+sentinel", "+cluster")):
        return _redact_multi_host(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.query and _SECRET_QUERY.search(parts.query):
        query = "&".join(
            f"{name}=***" if _SECRET_QUERY.search(name) else f"{name}={value}" if sep else name
            for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
        if not parts.password:
            return urlunsplit(parts)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _redact_multi_host(url: str) -> str:
    """A Sentinel or Cluster URL (several hosts, which ``urlsplit`` cannot read) with
    everything between ``://`` and the last ``@`` but the user name hidden, and secret
    query values too. Masking too much is fine here; showing a password is not."""
    scheme, _, rest = url.partition("://")
    userinfo, at, rest = rest.rpartition("@")
    if at:
        rest = f"{userinfo.partition(':')[0]}:***@{rest}"
    base, question, query = rest.partition("?")
    if question:
        query = "&".join(
            f"{name}=***" if _SECRET_QUERY.search(name) else f"{name}{sep}{value}"
            for name, sep, value in (item.partition("=") for item in query.split("&"))
        )
        base = f"{base}?{query}"
    return f"{scheme}://{base}"


def expand_env(value: str, option: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in ``value``.

    ``${VAR:-default}`` uses the default when VAR is unset or empty, as in a shell.
    An unset VAR without a default raises :class:`ConfigurationError` naming the
    option and the variable.
    """

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, no default: keep the shell's meaning
            return found
        raise ConfigurationError(
            f"option {option!r} refers to environment variable ${{{name}}}, which is not set; "
            f"set it or write ${{{name}:-default}}",
            option=option,
        )

    return _ENV_PATTERN.sub(substitute, value)


def expand(value: Any, option: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand_env(value, option, environ)
    if isinstance(value, list | tuple):
        return [expand(item, option, environ) for item in value]
    return value


# --- coercion: YAML and environment variables hand us strings ----------------


def as_str(option: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"option {option!r} must be a string, got {type(value).__name__}", option=option
        )
    return value.strip()


def _as_number(option: str, value: Any, kind: type[int] | type[float]) -> Any:
    """Coerce ``value`` (maybe a string from YAML or the environment) to ``kind``."""
    label = "an integer" if kind is int else "a number"
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise ConfigurationError(
                f"option {option!r} must be {label}, got {value!r}", option=option
            ) from None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    accepted = int if kind is int else int | float
    if isinstance(value, bool) or not isinstance(value, accepted) or not math.isfinite(value):
        raise ConfigurationError(f"option {option!r} must be {label}, got {value!r}", option=option)
    return value


def as_int(option: str, value: Any, *, minimum: int) -> int:
    number: int = _as_number(option, value, int)
    if number < minimum:
        raise ConfigurationError(
            f"option {option!r} must be at least {minimum}, got {number}", option=option
        )
    return number


def as_float(option: str, value: Any, *, minimum: float) -> float:
    number = float(_as_number(option, value, float))
    if number <= minimum:
        raise ConfigurationError(
            f"option {option!r} must be greater than {minimum}, got {number}", option=option
        )
    return number


def as_seconds(option: str, value: Any) -> float:
    """A duration that may be 0 (0 turns the feature off)."""
    number = float(_as_number(option, value, float))
    if number < 0:
        raise ConfigurationError(
            f"option {option!r} must be 0 or more seconds, got {number}", option=option
        )
    return number


def as_choice(option: str, value: Any, choices: tuple[str, ...]) -> str:
    choice = as_str(option, value).lower()
    if choice not in choices:
        raise ConfigurationError(
            f"option {option!r} must be one of {', '.join(choices)}, got {value!r}",
            option=option,
        )
    return choice


def as_name_list(option: str, value: Any) -> tuple[str, ...]:
    """Names from a list or a ``"a,b"`` string: stripped, non-empty, duplicates dropped."""
    if value is None:
        return ()
    if isinstance(value, str):  # "a,b" from an environment variable
        items: list[Any] = [part for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigurationError(
            f"option {option!r} must be a list of names, got {type(value).__name__}",
            option=option,
        )
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(
                f"option {option!r} must contain non-empty strings, got {item!r}", option=option
            )
        name = item.strip()
        if name not in names:
            names.append(name)
    return tuple(names)


def check_url(option: str, url: str, schemes: tuple[str, ...], hint: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"option {option!r} is not a valid URL", option=option) from None
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError:
        raise ConfigurationError(
            f"option {option!r} has an invalid port (got {redact_url(url)!r})", option=option
        ) from None
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"option {option!r} must start with {' or '.join(s + '://' for s in schemes)} "
            f"(got {redact_url(url)!r}); {hint}",
            option=option,
        )
    return url


def as_bool(option: str, value: Any) -> bool:
    """A boolean, or one of the words YAML and environment variables use for one."""
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
        value = _BOOLEAN_WORDS[value.strip().lower()]
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"option {option!r} must be true or false, got {value!r}", option=option
        )
    return value


def read_replica(
    values: Mapping[str, Any], url: str | None, database_url: str | None
) -> tuple[str | None, str | None]:
    """Validate ``read_url`` and ``read_database_url`` against the write options.

    A replica is read through the same transport as the primary, so each read option
    needs its write option, and the replica of the transport in use must be given.
    """
    read_url = values["read_url"]
    if read_url is not None:
        read_url = check_url(
            "read_url",
            as_str("read_url", read_url).rstrip("/"),
            ("https", "http"),
            "use the read replica's API URL from Supabase's settings "
            "(e.g. https://xyz-rr-eu-west-1-abcde.supabase.co)",
        )
    read_database_url = values["read_database_url"]
    if read_database_url is not None:
        read_database_url = check_url(
            "read_database_url",
            as_str("read_database_url", read_database_url),
            ("postgresql", "postgres"),
            "use the read replica's connection string from Supabase's database settings",
        )
    if read_database_url is not None and database_url is None:
        raise ConfigurationError(
            "option 'read_database_url' (a read replica) is set but 'database_url' is not: "
            "writes go to the primary, so set 'database_url' (or SUPABASE_DB_URL) to the "
            "primary's connection string; for the PostgREST transport use 'read_url' "
            "with 'url'",
            option="read_database_url",
        )
    if read_url is not None and database_url is not None and read_database_url is None:
        raise ConfigurationError(
            "option 'read_url' (a read replica's API URL) is set but 'database_url' is "
            "too, so the PostgreSQL transport is used and would never read the replica: "
            "set 'read_database_url' to the replica's connection string instead",
            option="read_url",
        )
    if read_url is not None and url is None and database_url is None:
        raise ConfigurationError(
            "option 'read_url' (a read replica) is set but 'url' is not: writes go to the "
            "primary, so set 'url' (or SUPABASE_URL) to the project URL",
            option="read_url",
        )
    return read_url, read_database_url
