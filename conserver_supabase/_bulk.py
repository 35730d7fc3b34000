"""``save_many`` in bounded statements (issue 18): a batch that is merely big never fails
as a whole.

A batch larger than ``bulk_chunk`` vCons or ``bulk_chunk_bytes`` of JSON text is saved
as consecutive chunks within those bounds, each one database transaction (and then its
cache writes and chain-list pushes, as any save), in the order given. A chunk the
database cuts at its statement timeout (``timeout``, SQLSTATE 57014) is split in two and
each half saved in turn, down to single vCons: only a vCon too slow on its own is
reported as the database's failure.

A failure that stays ends the call with :class:`~conserver_supabase.BulkSaveError`:
``saved`` are the vCons saved before it (committed, cached and pushed), ``unsaved`` the
uuids from the failed chunk on, in the order given (to save again), and the database's
error is its ``__cause__``. Nothing of such a call is journaled: the caller still holds
the vCons, and copying a whole bulk input into Redis (hundreds of MB) is what the
journal must not do. A batch that fits one chunk is saved as before (one transaction; a
transient failure journals it unless ``journal=False``), unless it is too slow: then it
is split as any chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._errors import (
    BulkSaveError,
    ChainPushError,
    ConserverSupabaseError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidVconError,
)

if TYPE_CHECKING:
    from ._writes import Prepared, Writes

__all__ = ["chunks", "save_in_chunks", "too_slow"]

#: SQLSTATE of a statement cut by statement_timeout.
_QUERY_CANCELED = "57014"


def chunks(batch: Sequence[Prepared], count: int, max_bytes: int) -> Iterator[list[Prepared]]:
    """Consecutive runs of ``batch`` of at most ``count`` vCons and ``max_bytes`` of text
    (a vCon larger than ``max_bytes`` alone is a chunk of its own)."""
    chunk: list[Prepared] = []
    size = 0
    for prepared in batch:
        length = len(prepared.text)
        if chunk and (len(chunk) >= count or size + length > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(prepared)
        size += length
    if chunk:
        yield chunk


def save_in_chunks(
    writes: Writes,
    batch: Sequence[Prepared],
    lists: Sequence[str],
    *,
    journal: bool,
    count: int,
    max_bytes: int,
) -> dict[str, int]:
    """Save ``batch`` as the module docstring says; return ``{uuid: version}``."""
    parts = list(chunks(batch, count, max_bytes))
    if len(parts) <= 1:
        return _save_one_chunk(writes, batch, lists, journal=journal)
    return _save_parts(writes, parts, lists, total=len(batch))


def _save_one_chunk(
    writes: Writes, batch: Sequence[Prepared], lists: Sequence[str], *, journal: bool
) -> dict[str, int]:
    """A batch within the bounds: one transaction, journaled on a failure that stays, as
    before (Writes.save); split like any chunk when it is too slow (which Writes.save
    raises unjournaled)."""
    try:
        return writes.save(batch, lists, operation="save_many", journal=journal)
    except DatabaseUnavailableError as exc:
        if len(batch) > 1 and too_slow(exc):
            middle = len(batch) // 2
            return _save_parts(writes, [batch[:middle], batch[middle:]], lists, total=len(batch))
        raise


def _save_parts(
    writes: Writes, parts: Sequence[Sequence[Prepared]], lists: Sequence[str], *, total: int
) -> dict[str, int]:
    """Save the chunks in order, splitting a slow one; see the module docstring."""
    versions: dict[str, int] = {}
    unpushed: list[ChainPushError] = []
    for index, part in enumerate(parts):
        try:
            saved = _save_splitting(writes, part, lists, unpushed)
        except _Stopped as stop:
            versions.update(stop.versions)
            rest = [p.vcon_uuid for later in parts[index + 1 :] for p in later]
            raise BulkSaveError(
                stop.cause,
                saved=versions,
                unsaved=[p.vcon_uuid for p in stop.unsaved] + rest,
                total=total,
            ) from stop.cause
        versions.update(saved)
    if unpushed:
        first = unpushed[0]
        uuids = [u for exc in unpushed for u in exc.vcon_uuids or (exc.vcon_uuid,)]
        lists_hit = sorted({name for exc in unpushed for name in exc.lists})
        raise ChainPushError(
            uuids[0], lists_hit, first.reason, vcon_uuids=uuids, saved=versions
        ) from first
    # (Merged vCons were cached as merged by each chunk's save: the caller gets versions.)
    return versions


class _Stopped(Exception):
    """A chunk failed: what was saved of it, what was not, and why."""

    def __init__(
        self, versions: dict[str, int], unsaved: Sequence[Prepared], cause: ConserverSupabaseError
    ) -> None:
        super().__init__(str(cause))
        self.versions = versions
        self.unsaved = unsaved
        self.cause = cause


def _save_splitting(
    writes: Writes, part: Sequence[Prepared], lists: Sequence[str], unpushed: list[ChainPushError]
) -> dict[str, int]:
    """Save ``part`` in one transaction, or in halves if it is too slow; raise
    :class:`_Stopped` on a failure that stays."""
    try:
        return writes.save(part, lists, operation="save_many", journal=False)
    except ChainPushError as exc:  # saved; reported once the whole call is done
        unpushed.append(exc)
        return exc.saved
    except (DatabaseError, InvalidVconError) as exc:  # the database refused one's data
        if len(part) < 2 or not too_slow(exc):
            raise _Stopped({}, part, exc) from exc
    middle = len(part) // 2
    versions = _save_splitting_or_stop(writes, part[:middle], lists, unpushed, {}, part[middle:])
    return versions | _save_splitting_or_stop(writes, part[middle:], lists, unpushed, versions, [])


def _save_splitting_or_stop(
    writes: Writes,
    half: Sequence[Prepared],
    lists: Sequence[str],
    unpushed: list[ChainPushError],
    before: dict[str, int],
    after: Sequence[Prepared],
) -> dict[str, int]:
    try:
        return _save_splitting(writes, half, lists, unpushed)
    except _Stopped as stop:
        raise _Stopped(before | stop.versions, [*stop.unsaved, *after], stop.cause) from None


def too_slow(exc: ConserverSupabaseError) -> bool:
    """The server cut the statement at its statement_timeout (SQLSTATE 57014, through
    either transport): the database is up, the chunk too slow. Not a call that got no
    answer at all (the client's cut): that is a database down, and halving would only
    repeat the wait."""
    return isinstance(exc, DatabaseUnavailableError) and exc.code == _QUERY_CANCELED
