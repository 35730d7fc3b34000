"""Where redis-py's exceptions become :class:`~conserver_supabase.CacheError`.

Only :mod:`._guard` calls :func:`translate`: every Redis call goes through the guard,
so this is the one place redis-py's errors are read. The message names the operation,
the vCon and where Redis is (never a password or a key's value) and, where the fix is
known, says it.
"""

from __future__ import annotations

import functools
from typing import Final

from .._errors import CacheError

__all__ = ["redis_errors", "translate"]

_HINTS: Final = {
    "WRONGTYPE": "another program uses this key for something else: change "
    "'cache_key_prefix' or the chain list name",
    "cache_format is json": "set cache_format to auto or string, or load the RedisJSON module",
}
_PERMISSION_HINT: Final = (
    "the Redis user lacks a permission this storage needs: EVALSHA/EVAL, TYPE, GET, SET, "
    "EXPIRE, TTL, STRLEN, DEL, UNLINK, RPUSH, LRANGE, LREM, MULTI/EXEC and JSON.GET/JSON.SET "
    "on its keys"
)
_AUTH_HINT: Final = (
    "Redis refused the credentials: put user and password in redis_url "
    "(redis://USER:PASSWORD@host:6379/0)"
)


@functools.cache
def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call can raise that :func:`translate` turns into a CacheError (the
    tuple is built on first use: redis-py is imported lazily)."""
    from redis import exceptions

    return (exceptions.RedisError, exceptions.RedisClusterException, OSError)


@functools.cache
def _unreachable() -> tuple[type[BaseException], ...]:
    # Redis Cluster: CLUSTERDOWN, TRYAGAIN, redis-py's "no node answers / the slot has
    # no node" (RedisClusterException) and "TTL exhausted" (ClusterError: redirections
    # ran out while a slot moved) say the cluster cannot serve now.
    from redis import exceptions

    return (
        exceptions.ConnectionError,
        exceptions.TimeoutError,
        exceptions.ClusterDownError,
        exceptions.TryAgainError,
        exceptions.RedisClusterException,
        exceptions.ClusterError,
        OSError,
    )


def translate(
    exc: BaseException, operation: str, vcon_uuid: str | None, location: str
) -> CacheError:
    """The :class:`CacheError` for ``exc`` (one of :func:`redis_errors`), its cause set.

    ``unavailable`` is true when Redis could not be reached or did not answer in time
    (the outcome is unknown), false when it answered with an error.
    """
    from redis import exceptions

    subject = f" of vCon {vcon_uuid}" if vcon_uuid else ""
    message = str(exc)
    auth = isinstance(exc, exceptions.AuthenticationError | exceptions.AuthorizationError)
    unavailable = not auth and isinstance(exc, _unreachable())
    if unavailable:
        text = f"{operation}{subject} failed: {location} is unavailable: {message}"
    else:
        text = f"{operation}{subject} failed: {location} answered: {message}"
    if auth:
        hint: str | None = _AUTH_HINT
    elif isinstance(exc, exceptions.NoPermissionError):
        hint = _PERMISSION_HINT
    else:
        hint = next((h for p, h in _HINTS.items() if message.startswith(p)), None)
    if hint:
        text += f" ({hint})"
    error = CacheError(text, operation=operation, vcon_uuid=vcon_uuid, unavailable=unavailable)
    error.__cause__ = exc
    return error
