"""Where a command's database and Redis come from: the connection options every command
that talks to them takes (:data:`._table.GROUPS` ``"config"``), and the one precedence
rule, :func:`connection`.

Highest first: a flag on the command line (``--database-url``, ``--url``, ``--key``,
``--redis-url``), the ``--config`` file's storage entry, the environment
(``SUPABASE_DB_URL``, ``SUPABASE_URL``, ``SUPABASE_SERVICE_ROLE_KEY``, ``REDIS_URL``, ...),
the default. The last three are :meth:`StorageConfig.from_options`'s own rule, option by
option, exactly as the conserver applies it to the same config.yml; this module puts the
flags on top. A flag that names the database (``--database-url`` or ``--url``) replaces
the whole database location below it, read replica included: the config file's and the
environment's ``database_url``, ``url``, ``read_database_url`` and ``read_url`` are not
consulted, so ``--url`` is never outvoted by a ``SUPABASE_DB_URL`` in the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .._config import _ALIASES, _ENV_FALLBACKS, StorageConfig, load_conserver_options
from .._errors import ConfigurationError
from .._options import expand

__all__ = ["FLAGS", "Connection", "connection"]

#: The connection flags, by the option each sets.
FLAGS: Final[Mapping[str, str]] = {
    "database_url": "--database-url",
    "url": "--url",
    "key": "--key",
    "redis_url": "--redis-url",
}
# The options that say where the database is; a flag naming one replaces them all.
_LOCATION: Final = ("database_url", "url", "read_database_url", "read_url")


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """A command's options (its flags over its ``--config`` entry), the environment they
    are completed from, and the flags that were given (option -> value)."""

    options: Mapping[str, Any]
    environ: Mapping[str, str]
    flags: Mapping[str, str]

    def config(self, **overrides: Any) -> StorageConfig:
        """The effective configuration; ``overrides`` (a command's own flags, given ones
        only) beat everything."""
        return StorageConfig.from_options({**self.options, **overrides}, environ=self.environ)

    def names(self, option: str) -> bool:
        """Whether ``option`` is set by a flag, the config file or the environment (not
        left to its default)."""
        value = expand(self.options.get(option), option, self.environ)
        if isinstance(value, str):
            value = value.strip() or None
        if value is not None:
            return True
        variables = _ENV_FALLBACKS.get(option, ())
        return any(self.environ.get(variable, "").strip() for variable in variables)

    def refuse(self, command: str, option: str, why: str) -> None:
        """Raise a :class:`ConfigurationError` naming the flag when ``option`` was given
        as a flag to a ``command`` that cannot use it (never ignore it silently)."""
        if option in self.flags:
            raise ConfigurationError(f"{command} {why}: drop {FLAGS[option]}", option=option)


def connection(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Connection:
    """The :class:`Connection` of a parsed command line (``environ``: ``os.environ``)."""
    env: dict[str, str] = dict(os.environ if environ is None else environ)
    if args.storage and not args.config:
        raise ConfigurationError("--storage needs --config PATH", option="storage")
    loaded = load_conserver_options(Path(args.config), args.storage) if args.config else None
    options: dict[str, Any] = dict(loaded or {})
    flags: dict[str, str] = {}
    for option, flag in FLAGS.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        if not value.strip():
            raise ConfigurationError(
                f"{flag} is empty: give a value, or leave the flag out", option=option
            )
        flags[option] = value
    if flags.keys() & {"database_url", "url"}:
        for option in _LOCATION:
            _drop(options, option)
            for variable in _ENV_FALLBACKS[option]:
                env.pop(variable, None)
    for option, value in flags.items():
        _drop(options, option)
        options[option] = value
    return Connection(options, env, flags)


def _drop(options: dict[str, Any], option: str) -> None:
    """Remove ``option`` and its aliases (``service_role_key`` for ``key``) from
    ``options``, so a flag replaces the entry whatever spelling the file uses."""
    options.pop(option, None)
    for alias, name in _ALIASES.items():
        if name == option:
            options.pop(alias, None)
