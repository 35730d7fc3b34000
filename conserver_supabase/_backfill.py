"""Bulk import: stream vCons from files, JSON Lines, standard input or Redis keys into
the database, in batches, resumably.

A source yields items in a stable order, each with the text of one vCon (or why it
could not be read) and, where it is a safe place to resume, a *position*. After each
batch is committed the checkpoint file records the last position reached, so a rerun
starts after it. Saving is idempotent, so a batch interrupted before its checkpoint is
written is simply saved again.

Nothing is held beyond one batch: memory stays flat however large the input (a
directory's file names are listed and sorted first, which takes memory per name, not
per document).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ._documents import loads
from ._errors import (
    ChainPushError,
    ConfigurationError,
    DatabaseRejectedError,
    InvalidVconError,
)
from ._validation import validate_vcon

if TYPE_CHECKING:
    from ._redis import RedisTier
    from ._storage import SupabaseStorage

__all__ = [
    "BackfillSummary",
    "DirectorySource",
    "JsonLinesSource",
    "RedisSource",
    "Source",
    "run_backfill",
    "source_for",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    label: str  #: where it came from (file, line, key), for the report
    text: str | None  #: the vCon as JSON text, or None when it could not be read
    error: str | None = None  #: why it could not be read
    position: Any = None  #: where to resume after this item, or None (not a safe place)


class Source(Protocol):
    """Where vCons come from."""

    #: Identifies the source in a checkpoint (a checkpoint of another source is refused).
    descriptor: str

    def total(self) -> int | None:
        """How many items there are, when cheap to know (for the progress bar)."""
        ...

    def items(self, resume: Any) -> Iterator[Item]:
        """Yield the items after ``resume`` (a position from an earlier run, or None)."""
        ...


class DirectorySource:
    """Every ``*.json`` file (``*.vcon.json`` included) under a directory, one vCon per
    file, in sorted path order; resumes after the last file done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.descriptor = f"directory {path.resolve()}"
        self._files: list[str] | None = None

    def _names(self) -> list[str]:
        if self._files is None:
            self._files = sorted(
                str(p.relative_to(self.path)) for p in self.path.rglob("*.json") if p.is_file()
            )
        return self._files

    def total(self) -> int | None:
        return len(self._names())

    def items(self, resume: Any) -> Iterator[Item]:
        for name in self._names():
            if resume is not None and name <= resume:
                continue
            try:
                text = (self.path / name).read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                yield Item(name, None, f"cannot be read: {exc}", name)
                continue
            yield Item(name, text, None, name)


class JsonLinesSource:
    """One vCon per line of a file (resumes at a byte offset) or of standard input
    (resumes by skipping the lines done). Blank lines are skipped."""

    def __init__(self, path: Path | None, stream: IO[bytes] | None = None) -> None:
        self.path = path
        self._stream = stream
        self.descriptor = f"jsonl {path.resolve()}" if path is not None else "jsonl <stdin>"

    def total(self) -> int | None:
        if self.path is None:
            return None
        with self.path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def items(self, resume: Any) -> Iterator[Item]:
        if self.path is None:
            yield from self._lines(self._stream or sys.stdin.buffer, 0, int(resume or 0))
            return
        with self.path.open("rb") as handle:
            offset = int(resume or 0)
            handle.seek(offset)
            yield from self._lines(handle, offset, 0)

    def _lines(self, handle: IO[bytes], offset: int, skip: int) -> Iterator[Item]:
        number = 0
        name = self.path.name if self.path is not None else "stdin"
        for raw in iter(handle.readline, b""):
            offset += len(raw)
            number += 1
            if number <= skip:
                continue
            position = offset if self.path is not None else number
            if not raw.strip():
                continue
            label = f"{name}:{number}" if self.path is None else f"{name}@{offset - len(raw)}"
            try:
                yield Item(label, raw.decode("utf-8"), None, position)
            except UnicodeDecodeError as exc:
                yield Item(label, None, f"is not UTF-8: {exc}", position)


class RedisSource:
    """Every key matching a pattern (``SCAN``), a vCon per key (RedisJSON or a JSON
    string); resumes at the SCAN cursor after the last page done (on Redis Cluster,
    each primary in turn: see :class:`conserver_supabase._redis.KeyScan`)."""

    def __init__(self, redis: RedisTier, pattern: str, batch: int = 200) -> None:
        self._scan = redis.scan_keys(pattern, batch)
        self.pattern = pattern
        self.descriptor = f"redis keys {pattern}"

    def total(self) -> int | None:
        return None

    def items(self, resume: Any) -> Iterator[Item]:
        for key in self._scan.items(resume):
            yield Item(key.key, key.text, key.error, key.position)


def source_for(
    path: str | Path | None, redis_pattern: str | None, redis: RedisTier, batch: int
) -> Source:
    """The source a backfill reads: the Redis keys matching ``redis_pattern``, or
    ``path`` (a directory of ``*.json``, a JSON Lines file, or ``-``: standard input)."""
    if redis_pattern is not None:
        if path is not None:
            raise ConfigurationError("give a path or a Redis key pattern, not both")
        return RedisSource(redis, redis_pattern, batch)
    if path is None:
        raise ConfigurationError("give a directory, a .jsonl file, - or a Redis key pattern")
    if str(path) == "-":
        return JsonLinesSource(None)
    folder = Path(path)
    if folder.is_dir():
        return DirectorySource(folder)
    if folder.is_file():
        return JsonLinesSource(folder)
    raise ConfigurationError(f"{folder} is neither a directory nor a file")


@dataclasses.dataclass
class BackfillSummary:
    saved: int = 0
    failed: int = 0
    #: items done by earlier runs (from the checkpoint), not read again
    skipped: int = 0
    #: saved, but the uuid missed a chain list (with --push)
    unpushed: int = 0
    already_complete: bool = False
    seconds: float = 0.0


class _Checkpoint:
    """The checkpoint file: written atomically after each committed batch."""

    def __init__(self, path: Path, descriptor: str) -> None:
        self.path = path
        self.descriptor = descriptor
        self.state: dict[str, Any] = {"source": descriptor, "position": None}

    def load(self) -> None:
        try:
            state = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"checkpoint {self.path} cannot be read ({exc}): pass --restart to start over"
            ) from None
        if state.get("source") != self.descriptor:
            raise ConfigurationError(
                f"checkpoint {self.path} belongs to a backfill of {state.get('source')}: pass "
                "--checkpoint FILE for this one, or --restart to start this one over there"
            )
        self.state = state

    def save(self, **values: Any) -> None:
        self.state.update(values)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.state) + "\n", "utf-8")
        os.replace(partial, self.path)


def run_backfill(
    storage: SupabaseStorage,
    source: Source,
    *,
    checkpoint: Path,
    report: Path,
    batch: int = 100,
    restart: bool = False,
    push: bool = False,
    progress: Callable[[int, int | None], object] | None = None,
) -> BackfillSummary:
    """Save every vCon of ``source``; return what happened.

    Valid vCons are saved ``batch`` at a time (``save_many``: one transaction each),
    not added to the cache (only vCons already cached are refreshed) and pushed onto
    the chain lists only with ``push``. Unreadable or invalid items, and vCons the
    database refuses, are written to ``report`` (JSON Lines) and counted as failed.
    A database that stays unavailable raises ``DatabaseError`` after the checkpoint
    records the last committed batch: run again to resume. ``progress(n, total)`` is
    called with the number of items just handled and how many there are (None: not
    known).
    """
    if batch < 1:
        raise ConfigurationError("--batch must be at least 1")
    started = time.monotonic()
    mark = _Checkpoint(checkpoint, source.descriptor)
    if not restart:
        mark.load()
    summary = BackfillSummary(skipped=mark.state.get("saved", 0) + mark.state.get("failed", 0))
    if mark.state.get("done"):
        summary.already_complete = True
        return summary
    resume = mark.state.get("position")
    total = source.total() if progress is not None else None
    before_saved, before_failed = mark.state.get("saved", 0), mark.state.get("failed", 0)
    report.parent.mkdir(parents=True, exist_ok=True)
    with report.open("a" if resume is not None else "w", encoding="utf-8") as failures:

        def fail(label: str, vcon_uuid: str | None, reason: str) -> None:
            summary.failed += 1
            line = {"source": label, "uuid": vcon_uuid, "error": reason}
            failures.write(json.dumps(line, ensure_ascii=False) + "\n")

        pending: list[tuple[str, dict[str, Any], str]] = []
        handled = 0

        def commit(position: Any) -> None:
            nonlocal handled
            if pending:
                _save_batch(storage, pending, push, summary, fail)
                pending.clear()
            failures.flush()
            mark.save(
                position=position,
                saved=before_saved + summary.saved,
                failed=before_failed + summary.failed,
            )
            if progress is not None and handled:
                progress(handled, total)
            handled = 0

        position = resume
        for item in source.items(resume):
            handled += 1
            document = _parse(item, storage.config.max_body_bytes, fail)
            if document is not None and item.text is not None:
                # the text read, saved as it is (the database keeps it; issue 17)
                pending.append((item.label, document, item.text))
            if item.position is not None:
                position = item.position
                if len(pending) >= batch:
                    commit(position)
        commit(position)
    mark.save(done=True)
    summary.seconds = time.monotonic() - started
    return summary


def _parse(
    item: Item, max_body_bytes: int, fail: Callable[[str, str | None, str], None]
) -> dict[str, Any] | None:
    if item.text is None:
        fail(item.label, None, item.error or "cannot be read")
        return None
    try:
        document = loads(item.text)
    except (ValueError, RecursionError) as exc:  # a name twice in one object too
        fail(item.label, None, f"is not valid JSON: {exc}"[:500])
        return None
    if not isinstance(document, dict):
        fail(item.label, None, f"is not a JSON object but {type(document).__name__}")
        return None
    try:
        validate_vcon(document, max_body_bytes=max_body_bytes)
    except InvalidVconError as exc:
        fail(item.label, exc.vcon_uuid, str(exc))
        return None
    return document


def _save_batch(
    storage: SupabaseStorage,
    pending: list[tuple[str, dict[str, Any], str]],
    push: bool,
    summary: BackfillSummary,
    fail: Callable[[str, str | None, str], None],
) -> None:
    lists: list[str] | None = None if push else []
    texts = [text for _, _, text in pending]
    try:
        storage.save_many(texts, chain_lists=lists, fill_cache=False, journal=False)
        summary.saved += len(texts)
        return
    except ChainPushError as exc:
        summary.saved += len(texts)
        summary.unpushed += len(exc.vcon_uuids)
        return
    except (DatabaseRejectedError, InvalidVconError):
        pass  # one of them is refused: save them one by one to tell which
    for label, document, text in pending:
        try:
            storage.save_many([text], chain_lists=lists, fill_cache=False, journal=False)
            summary.saved += 1
        except ChainPushError:
            summary.saved += 1
            summary.unpushed += 1
        except (DatabaseRejectedError, InvalidVconError) as exc:
            fail(label, document.get("uuid"), str(exc))
