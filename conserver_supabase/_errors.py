"""The exceptions conserver-supabase raises.

Everything derives from one root, so a chain link can catch the whole family::

    ConserverSupabaseError
     ├── ConfigurationError          bad or missing option (also a ValueError)
     │    └── SearchError            unknown search filter, wrong type, bad limit/cursor
     ├── InvalidVconError            the vCon breaks a rule; names the uuid and the field
     │                               (also a ValueError); nothing was written
     ├── VconNotFoundError           no vCon with that uuid (also a LookupError)
     ├── DatabaseError               the database side failed
     │    ├── DatabaseUnavailableError   transient (network, timeout, 5xx, failover),
     │    │                              raised after the retries ran out
     │    ├── BulkSaveError              a save_many in chunks stopped: which were saved,
     │    │                              which not (in order, to save again); not journaled
     │    └── DatabaseRejectedError      the database refused the request (constraint,
     │         │                         permission, missing migration); never retried
     │         └── VconConflictError     the save would erase another writer's change of
     │                                   the same field; nothing written, copy kept
     ├── CacheError                  Redis failed (raised when cache_errors is "raise",
     │                               or when the conserver's working copy is unreadable)
     └── ChainPushError              the vCon was saved but its uuid could not be pushed
                                     onto one or more chain lists

Foreign exceptions (httpx, postgrest, psycopg, redis) are translated into these in
one place, :mod:`conserver_supabase._boundary`, always with ``raise ... from exc``
so the original stays on ``__cause__``. Messages name the operation and the vCon
uuid; they never contain a key, a password or a vCon body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "BulkSaveError",
    "CacheError",
    "ChainPushError",
    "ConfigurationError",
    "ConserverSupabaseError",
    "DatabaseError",
    "DatabaseRejectedError",
    "DatabaseUnavailableError",
    "InvalidVconError",
    "SearchError",
    "VconConflictError",
    "VconNotFoundError",
]


class ConserverSupabaseError(Exception):
    """Root of every exception this package raises on purpose."""


class ConfigurationError(ConserverSupabaseError, ValueError):
    """An option is missing, unknown, of the wrong type or out of range.

    ``option`` names the offending option when there is one.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class SearchError(ConfigurationError):
    """A search was asked with an unknown filter, a value of the wrong type, a limit out
    of range or a cursor that does not belong to these filters.

    ``filter`` names the offending filter (or ``limit``, ``cursor``).
    """

    def __init__(self, message: str, *, filter: str) -> None:
        super().__init__(message, option=filter)
        self.filter = filter


def _describe(vcon_uuid: str | None) -> str:
    return f"vCon {vcon_uuid}" if vcon_uuid else "vCon (no uuid)"


class InvalidVconError(ConserverSupabaseError, ValueError):
    """The vCon document breaks a rule of the spec or of the database layout.

    Raised before anything is written. ``vcon_uuid`` is the uuid the caller gave
    (``None`` when the document has none), ``field`` a path such as
    ``dialog[2].encoding`` and ``reason`` says what is wrong with it. ``code`` is the
    SQLSTATE when the database refused the data (the transaction wrote nothing; the
    field is then as exact as the database says, e.g. ``dialog[].type`` or
    ``(document)``), ``None`` when the checks before the database did.
    """

    def __init__(
        self, vcon_uuid: str | None, field: str, reason: str, *, code: str | None = None
    ) -> None:
        super().__init__(f"invalid {_describe(vcon_uuid)}: {field}: {reason}")
        self.vcon_uuid = vcon_uuid
        self.field = field
        self.reason = reason
        self.code = code


class VconNotFoundError(ConserverSupabaseError, LookupError):
    """No vCon with this uuid exists where it was looked for."""

    def __init__(self, vcon_uuid: str, where: str = "the database") -> None:
        super().__init__(f"{_describe(vcon_uuid)} not found in {where}")
        self.vcon_uuid = vcon_uuid
        self.where = where


class DatabaseError(ConserverSupabaseError):
    """The database (Supabase/PostgREST or PostgreSQL) failed an operation.

    ``operation`` is what was attempted (``save``, ``load``, ...), ``vcon_uuid`` the
    vCon concerned when there is exactly one, ``code`` the SQLSTATE or PostgREST
    error code when the server gave one, ``attempts`` how many times it was tried.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        vcon_uuid: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.vcon_uuid = vcon_uuid
        self.code = code
        self.attempts = 1
        #: After a failed save: whether the vCon went onto the failed-save journal.
        self.journaled = False


class DatabaseUnavailableError(DatabaseError):
    """The database could not be reached or answered with a transient failure."""


class BulkSaveError(DatabaseError):
    """A ``save_many`` saved in chunks (``bulk_chunk``) stopped at a chunk the database
    failed for good or refused (the error is ``__cause__``, also ``cause``: a
    :class:`DatabaseError`, or an :class:`InvalidVconError` for what the database refused
    in a vCon's data).

    ``saved`` is ``{uuid: version}`` of the vCons committed before it (cached and pushed
    as any save); ``unsaved`` the uuids from the failed chunk on, in the order given:
    save those again. None of them was journaled: the caller still holds them.
    """

    def __init__(
        self,
        cause: ConserverSupabaseError,
        *,
        saved: Mapping[str, int],
        unsaved: Sequence[str],
        total: int,
    ) -> None:
        first = unsaved[0] if unsaved else "-"
        super().__init__(
            f"save_many saved {len(saved)} of {total} vCons; {len(unsaved)} from vCon "
            f"{first} on were not saved (nothing of them journaled: save them again, in "
            f"order, from BulkSaveError.unsaved): {cause}",
            operation="save_many",
            code=getattr(cause, "code", None),
        )
        self.cause = cause
        self.saved = dict(saved)
        self.unsaved = list(unsaved)


class DatabaseRejectedError(DatabaseError):
    """The database refused the request; repeating it unchanged will fail again."""


class VconConflictError(DatabaseRejectedError):
    """The save was refused: another writer (vcon-mcp) changed ``field`` of the vCon
    since the copy being saved was read, and the copy changed it differently.

    Nothing was written: the database keeps the other writer's change. ``field`` is
    the first field found on both sides, e.g. ``subject`` or ``analysis[1]``; ``code``
    is ``CSC01``. ``kept`` says whether the copy went to the journal's dead letters
    (``conserver-supabase journal list --dead``). Never retried: saving the same copy
    again conflicts again. Read the vCon again, apply the change to it and save that
    (docs/database.md, "Conflicts").
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        vcon_uuid: str | None,
        field: str,
        code: str | None = "CSC01",
    ) -> None:
        super().__init__(message, operation=operation, vcon_uuid=vcon_uuid, code=code)
        self.field = field
        #: Whether the copy that conflicted went to the dead letters.
        self.kept = False


class CacheError(ConserverSupabaseError):
    """Redis failed where the storage cannot do without it.

    Raised when ``cache_errors: raise`` is set, and always when the conserver's
    working copy cannot be read. ``unavailable`` is true when Redis could not be
    reached or did not answer in time (the command's outcome is unknown), false
    when it answered with an error (wrong key type, missing module, permission).
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        vcon_uuid: str | None = None,
        unavailable: bool = False,
        skipped: bool = False,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.vcon_uuid = vcon_uuid
        self.unavailable = unavailable
        #: Redis was not called at all: it failed repeatedly (circuit open).
        self.skipped = skipped


class ChainPushError(ConserverSupabaseError):
    """The vCon is saved, but its uuid did not reach every chain list.

    ``lists`` are the lists that did not get the uuid. The save itself is
    committed; re-pushing is the caller's job. After ``save_many``, ``vcon_uuids``
    names every vCon whose uuid was not pushed (``vcon_uuid`` is the first of them), and
    ``saved`` is ``{uuid: version}`` of every vCon the call saved.
    """

    def __init__(
        self,
        vcon_uuid: str,
        lists: Sequence[str],
        reason: str,
        *,
        vcon_uuids: Sequence[str] = (),
        saved: Mapping[str, int] | None = None,
    ) -> None:
        names = ", ".join(lists)
        uuids = tuple(vcon_uuids) or (vcon_uuid,)
        subject = _describe(vcon_uuid) if len(uuids) == 1 else f"{len(uuids)} vCons"
        verb = "was" if len(uuids) == 1 else "were"
        listed = "" if len(uuids) == 1 else f" ({', '.join(uuids)})"
        super().__init__(
            f"{subject}{listed} {verb} saved but could not be pushed onto "
            f"chain list(s) {names}: {reason}"
        )
        self.vcon_uuid = vcon_uuid
        self.vcon_uuids = uuids
        self.lists = tuple(lists)
        self.reason = reason
        self.saved = dict(saved or {})
