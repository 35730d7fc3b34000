"""Where the database drivers' exceptions become conserver-supabase exceptions.

Database drivers (psycopg, supabase-py's postgrest and its httpx transport) raise
their own types. :func:`database_errors` wraps a database call and re-raises them
as :class:`~conserver_supabase.DatabaseError` subclasses (``from exc``), deciding on
the way whether the failure is transient (worth retrying) or a rejection (never
retried). Both transports call it; nothing else translates database errors. (redis-py's
errors have their own boundary, :mod:`conserver_supabase._redis._errors`.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from .._errors import (
    ConserverSupabaseError,
    DatabaseError,
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    SearchError,
    VconConflictError,
)

__all__ = [
    "CONFLICT",
    "DeadlineExceeded",
    "classify_database_error",
    "database_errors",
    "refused_connection",
]


class DeadlineExceeded(Exception):
    """A transport's call cut at its client-side deadline (no answer in time, no
    connection in time); the message says which bound was hit. Translated here into a
    transient :class:`~conserver_supabase.DatabaseUnavailableError`."""


# SQLSTATEs (or their two-letter classes) that describe a passing condition.
_TRANSIENT_STATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57014",  # query_canceled (statement_timeout)
        "57P01",
        "57P02",
        "57P03",  # admin/crash shutdown, cannot connect now
    }
)
_TRANSIENT_CLASSES: Final = frozenset({"08", "53", "58"})  # connection, resources, system
# Transient states that come from other work on a database that is up (contention, a
# statement past its timeout): reported as "database busy", not as an outage.
_BUSY_STATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
# PostgREST's own codes for "cannot reach the database" (HTTP 503/504).
_TRANSIENT_POSTGREST: Final = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})

# Saves, and the refusals their data can cause besides class 22 (data exceptions).
_SAVES: Final = frozenset({"save", "save_many"})
_DATA_CONSTRAINTS: Final = frozenset({"23502", "23514"})  # not_null, check
# vcon-mcp's tables and columns as fields of a vCon (reference/vcon-mcp-mapping.md).
_ROW_FIELDS: Final = {
    "vcons": "",
    "parties": "parties[]",
    "dialog": "dialog[]",
    "analysis": "analysis[]",
    "attachments": "attachments[]",
}
_COLUMN_FIELDS: Final = {
    "start_time": "start",
    "duration_seconds": "duration",
    "mimetype": "mediatype",
    "dialog_indices": "dialog",
}

# Connection refusals that will not pass by themselves. libpq gives no SQLSTATE for an
# error during the startup of a connection, only the server's (or pooler's) message:
# (what the message says, what to do).
_REFUSED_CONNECTIONS: Final = (
    (
        "unsupported startup parameter",
        "a connection pooler (PgBouncer) refuses a startup parameter: conserver-supabase "
        "sends none, so remove 'options' (and any other server setting) from the URL, or "
        "list the parameter in the pooler's ignore_startup_parameters",
    ),
    (
        "authentication failed",
        "the server refused the user or password: check both in the URL (Supabase: the "
        "database password of the project, not an API key)",
    ),
    (
        "no pg_hba.conf entry",
        "the server's pg_hba.conf lets no connection in from this host for this user and "
        "database: add an entry, or use the address the provider gives",
    ),
    ("does not exist", "the user or database of the URL does not exist on that server"),
    ("no such user", "the pooler does not know the user of the URL: add it to its auth_file"),
    ("no such database", "the pooler knows no such database: check the database in the URL"),
    (
        "tenant or user not found",
        "Supabase's pooler does not know the user: it is postgres.<project-ref> there",
    ),
    ("not permitted to log in", "the role of the URL may not log in (ALTER ROLE ... LOGIN)"),
    ("permission denied for database", "the user may not connect to that database"),
    ("ssl was required", "the server does not offer TLS: change sslmode in the URL"),
)

_HINTS: Final = {
    "42883": "the SQL functions are missing: run `conserver-supabase migrate`",
    "42P01": "the tables are missing: run `conserver-supabase migrate`",
    "PGRST202": "PostgREST does not know the function: run `conserver-supabase migrate`, "
    "then reload PostgREST's schema cache (NOTIFY pgrst, 'reload schema')",
    "PGRST205": "PostgREST does not know the table: run `conserver-supabase migrate`",
    "42501": "permission denied: use the service-role key or a role the migrations "
    "granted to (not the anon key)",
    "3F000": "the schema is missing: check the 'schema' option, run `conserver-supabase migrate`",
    "40001": "another transaction changed the same rows while this one ran: retried",
    "40P01": "a deadlock with another transaction: retried",
    "55P03": "a lock held by another transaction was not released within 'timeout' (lock_timeout)",
    "57014": "the statement did not finish within 'timeout' (statement_timeout)",
    "25006": "the server connection is read-only (a standby, or the pooler points at "
    "one): point database_url at the primary",
    "PGRST301": "the key was rejected: use the project's service-role key",
    "PGRST302": "no key was sent: set 'key' to the project's service-role key",
    "PGRST106": "the schema is not exposed by PostgREST: check the 'schema' option and "
    "the API settings of the project",
}


def classify_database_error(exc: BaseException) -> tuple[type[DatabaseError], str | None, str]:
    """Return (error class, code, message) for a foreign database exception.

    Unknown exception types are not database failures: the caller re-raises them.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return _classify_psycopg(exc, psycopg)
    postgrest = sys.modules.get("postgrest.exceptions")
    if postgrest is not None and isinstance(exc, postgrest.APIError):
        return _classify_postgrest(exc)
    if isinstance(exc, DeadlineExceeded):
        return DatabaseUnavailableError, None, str(exc)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError | httpx.TimeoutException):
        return DatabaseUnavailableError, None, f"{type(exc).__name__}: {exc}"
    raise TypeError(f"not a database exception: {type(exc).__name__}")


def _classify_psycopg(exc: Any, psycopg: Any) -> tuple[type[DatabaseError], str | None, str]:
    code = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(exc) or type(exc).__name__).strip()
    if code is None:
        # No server answer at all: a connection that failed or broke, a pool timeout;
        # or a connection the server (or a pooler) refused for good at its startup.
        if refused_connection(exc) is not None:
            return DatabaseRejectedError, None, message
        transient = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return (DatabaseUnavailableError if transient else DatabaseRejectedError), None, message
    return _by_state(code), code, message


def refused_connection(exc: BaseException) -> str | None:
    """For a connection refused in a way that will not pass by itself (a pooler's
    unsupported parameter, a wrong password, no such role or database, pg_hba): what
    to do about it. None for anything else."""
    if getattr(exc, "sqlstate", None) is not None or "connection" not in str(exc):
        return None
    text = str(exc).lower()
    return next((fix for said, fix in _REFUSED_CONNECTIONS if said in text), None)


def _classify_postgrest(exc: Any) -> tuple[type[DatabaseError], str | None, str]:
    code = str(exc.code) if getattr(exc, "code", None) is not None else None
    message = str(getattr(exc, "message", None) or exc)
    if code is None:
        return DatabaseRejectedError, None, message
    if code in _TRANSIENT_POSTGREST:
        return DatabaseUnavailableError, code, message
    if code.isdigit() and len(code) == 3:  # an HTTP status without a PostgREST body
        cls = DatabaseUnavailableError if code.startswith("5") else DatabaseRejectedError
        return cls, code, message
    return _by_state(code), code, message


def _by_state(code: str) -> type[DatabaseError]:
    if code in _TRANSIENT_STATES or code[:2] in _TRANSIENT_CLASSES:
        return DatabaseUnavailableError
    return DatabaseRejectedError


def _kind(cls: type[DatabaseError], code: str | None) -> str:
    """How the message names a failure: the database refused, was busy, or was not there."""
    if cls is not DatabaseUnavailableError:
        return "database rejected it"
    return "database busy" if code in _BUSY_STATES else "database unavailable"


def _invalid_vcon_field(exc: BaseException, code: str | None, message: str) -> str | None:
    """The field named by our SQL guards (SQLSTATE 22023, field in DETAIL), if any."""
    if code != "22023" or not message.startswith("invalid vCon"):
        return None
    detail = getattr(getattr(exc, "diag", None), "message_detail", None)
    if detail is None:
        detail = getattr(exc, "details", None)
    return str(detail) if detail else "(document)"


def _refused_data_field(exc: BaseException, operation: str, code: str | None) -> str | None:
    """For a save the database refused because of what the vCon holds (a data exception,
    class 22, or a NOT NULL or CHECK constraint): the field, as far as the database
    names it (its table and column), else ``(document)``. None for anything else."""
    if operation not in _SAVES or code is None:
        return None
    if not (code.startswith("22") or code in _DATA_CONSTRAINTS):
        return None
    diag = getattr(exc, "diag", None)
    table = getattr(diag, "table_name", None)
    column = getattr(diag, "column_name", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    named = constraint.removeprefix(f"{table}_")
    if table and not column and named != constraint and named.endswith("_check"):
        # PostgreSQL names a one-column CHECK <table>_<column>_check (<table>_check when
        # it spans several columns: no field then).
        column = named.removesuffix("_check") or None
    if table not in _ROW_FIELDS or not column:
        return "(document)"
    name = _COLUMN_FIELDS.get(column, column)
    return f"{_ROW_FIELDS[table]}.{name}" if _ROW_FIELDS[table] else name


#: The SQLSTATE of conserver_vcon_rebase's conflict (docs/database.md, "Conflicts").
CONFLICT: Final = "CSC01"


def _conflict(exc: BaseException, operation: str, vcon_uuid: str | None) -> VconConflictError:
    """The conflict the SQL raised: the vCon and the field from its DETAIL."""
    detail = getattr(getattr(exc, "diag", None), "message_detail", None)
    if detail is None:
        detail = getattr(exc, "details", None)
    try:
        named = json.loads(str(detail))
    except ValueError:
        named = {}
    if not isinstance(named, dict):
        named = {}
    field = str(named.get("field") or "(document)")
    conflicting = str(named.get("vcon") or vcon_uuid or "") or None
    text = (
        f"{operation} of vCon {conflicting} refused: another writer changed {field} since "
        "this copy was read, and the copy changed it differently; nothing was written "
        "(the database keeps the other writer's change)"
    )
    return VconConflictError(
        text, operation=operation, vcon_uuid=conflicting, field=field, code=CONFLICT
    )


@contextmanager
def database_errors(operation: str, vcon_uuid: str | None = None) -> Iterator[None]:
    """Translate database exceptions raised inside the block.

    ``operation`` (``save``, ``load``, ``migrate`` ...) and ``vcon_uuid`` go into the
    message and onto the raised error. Our own exceptions pass through untouched.
    """
    try:
        yield
    except ConserverSupabaseError:
        raise
    except Exception as exc:
        try:
            cls, code, message = classify_database_error(exc)
        except TypeError:
            raise exc from None
        if code == "22023" and message.startswith("invalid search"):
            detail = getattr(getattr(exc, "diag", None), "message_detail", None)
            detail = detail or getattr(exc, "details", None) or "filters"
            raise SearchError(message, filter=str(detail)) from exc
        if code == CONFLICT:
            raise _conflict(exc, operation, vcon_uuid) from exc
        field = _invalid_vcon_field(exc, code, message)
        if field is not None:
            reason = message.rsplit(": ", 1)[-1]
            raise InvalidVconError(vcon_uuid, field, reason, code=code) from exc
        field = _refused_data_field(exc, operation, code)
        if field is not None:  # the data, not the database: never retried nor journaled
            where = "" if vcon_uuid else "one vCon of the batch: "
            reason = f"{where}the database refused it ({code}: {message})"
            raise InvalidVconError(vcon_uuid, field, reason[:500], code=code) from exc
        subject = f" of vCon {vcon_uuid}" if vcon_uuid else ""
        kind = _kind(cls, code)
        text = f"{operation}{subject} failed: {kind}: {message}"
        hint = _HINTS.get(code or "") or refused_connection(exc)
        if hint:
            text += f" ({hint})"
        raise cls(text, operation=operation, vcon_uuid=vcon_uuid, code=code) from exc
