"""The one write pipeline: every save (``save_vcon``, the conserver's ``save`` hook,
``save_many``, ``backfill``, ``replay``) and every delete goes this way.

A save is a batch (of one, or many):

1. **prepare**: each vCon becomes a :class:`Prepared` (validated, its tenant decided,
   its JSON text for the cache, what the journal keeps if the save fails, how its
   cache key is written): :meth:`Writes.prepare`, :meth:`Writes.prepare_working_copy`;
2. **database**: one call per batch (``save_many`` bounds batches: ``_bulk.py``),
   transient failures retried within ``retry_deadline``;
3. on a failure that stays: **journal** the batch (unless the caller holds it) and raise,
   saying whether it was; a conflict (:class:`VconConflictError`) goes to the dead letters;
4. **cache and chain lists**: after the commit, in as few Redis round trips as the
   deployment allows (:meth:`RedisTier.store` decides how);
5. **report**: a uuid that missed a chain list is a :class:`ChainPushError` (the save
   stands); a cache failure is logged, or raised with ``cache_errors: raise``.

Deletes: the database first, then the cache (leaving a tombstone at the delete's
version). The version rule that orders all of it is in ``_redis/lua/fence.lua``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn
from uuid import UUID

from ._bulk import too_slow
from ._config import StorageConfig
from ._database import Database, Saved, Tenant, merged_of
from ._database._errors import CONFLICT
from ._documents import document_and_text, dumps
from ._errors import (
    CacheError,
    ChainPushError,
    DatabaseError,
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    VconConflictError,
    VconNotFoundError,
)
from ._redis import (
    CONSERVER_KEY_PREFIX,
    Entry,
    Journaled,
    JournalEntry,
    RedisTier,
    StoreOutcome,
    WriteMode,
    holds_exactly,
)
from ._retry import call_with_retry
from ._telemetry import Telemetry, note_subject
from ._tenants import tenant_for
from ._validation import canonical_uuid, is_uuid, validate_vcon

__all__ = ["Prepared", "ReplayReport", "Writes", "journal_listing"]

logger = logging.getLogger("conserver_supabase.storage")


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """One vCon ready to be saved."""

    vcon_uuid: str
    document: Mapping[str, Any]
    tenant: Tenant | None
    #: The JSON text saved (the database keeps it as it is), cached and journaled.
    text: str
    #: What the journal keeps if the save fails (the document, or the working copy's key).
    journaled: JournalEntry
    #: How the cache key is written after the commit.
    mode: WriteMode = "overwrite"
    #: touch: what the version key held when the working copy was read.
    read_version: int = 0
    #: The cache's text when ``text`` is not dumps() of the document (given text): that
    #: dumps, the spelling RedisJSON's rule is for (``_redis/_numbers.py``). None: text.
    cache_text: str | None = None

    @property
    def cached(self) -> str:
        """The JSON text written to the cache."""
        return self.text if self.cache_text is None else self.cache_text


@dataclasses.dataclass
class ReplayReport:
    """What :meth:`conserver_supabase.SupabaseStorage.replay_journal` did."""

    total: int
    replayed: int = 0
    #: Entries removed without a save (nothing left of them: expired, or taken), with
    #: the reason.
    dropped: list[str] = dataclasses.field(default_factory=list)
    #: Entries removed without a save because the database acknowledged a newer save or
    #: delete of the vCon after the failed save (the fence), with the versions.
    superseded: list[str] = dataclasses.field(default_factory=list)
    #: Entries the database (or validation) refused for their data: moved to the dead
    #: letters (``conserver-supabase journal list --dead``), with the reason.
    dead_lettered: list[str] = dataclasses.field(default_factory=list)
    #: Saved, but the uuid did not reach every chain list (the ChainPushError texts).
    unpushed: list[str] = dataclasses.field(default_factory=list)
    #: Set when the database failed again, or refused for a reason a fix of the
    #: configuration removes: the replay stopped, the rest stays journaled.
    error: str | None = None


class Writes:
    """Saves and deletes of one storage (see the module docstring)."""

    def __init__(
        self,
        config: StorageConfig,
        database: Database,
        redis: RedisTier,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._database = database
        self._redis = redis
        self._telemetry = telemetry

    # --- 1. prepare -------------------------------------------------------------------

    def prepare(self, vcon: Any, mode: WriteMode = "overwrite") -> Prepared:
        """A vCon handed in by a caller (dict, JSON text, object with ``to_dict()``)."""
        document, text = document_and_text(vcon)
        vcon_uuid = self._validated(document)
        tenant = tenant_for(self._config, document, vcon_uuid)
        journaled = JournalEntry(vcon_uuid, None, text, _guard(tenant))
        cache_text = dumps(document) if isinstance(vcon, str | bytes | bytearray) else None
        return Prepared(vcon_uuid, document, tenant, text, journaled, mode, cache_text=cache_text)

    def prepare_working_copy(self, vcon_uuid: str | UUID) -> Prepared:
        """The vCon the conserver holds in Redis at ``vcon:{uuid}`` (the ``save`` hook)."""
        given = str(vcon_uuid) if isinstance(vcon_uuid, UUID) else vcon_uuid
        note_subject(canonical_uuid(given))  # no key is built from something not a uuid
        try:
            copy = self._redis.working_copy(given)
        except CacheError as exc:
            if isinstance(exc.__cause__, ValueError | RecursionError):
                raise InvalidVconError(
                    given,
                    "(document)",
                    f"the working copy at {CONSERVER_KEY_PREFIX}{given} is not a JSON object: "
                    f"{exc.__cause__}"[:300],
                ) from exc
            raise
        key, document = copy.key, copy.value
        if document is None:
            raise VconNotFoundError(
                given, where=f"Redis (key {key}, where the conserver keeps the vCon)"
            )
        canonical = self._validated(document, expected_uuid=given)
        tenant = tenant_for(self._config, document, canonical)
        journaled = JournalEntry(canonical, key, None, _guard(tenant))
        if key != self._redis.cache_key(canonical):  # another cache_key_prefix
            return Prepared(
                canonical, document, tenant, copy.text, journaled, cache_text=dumps(document)
            )
        # The working copy is our cache key: after the commit, renew it only while it
        # still holds the exact text read (see "touch" in lua/write.lua).
        return Prepared(canonical, document, tenant, copy.text, journaled, "touch", copy.version)

    def _validated(self, document: Any, expected_uuid: str | None = None) -> str:
        try:
            vcon_uuid = validate_vcon(
                document, expected_uuid=expected_uuid, max_body_bytes=self._config.max_body_bytes
            )
        except InvalidVconError as exc:
            if is_uuid(exc.vcon_uuid):  # the vCon the error names, for the log line
                note_subject(canonical_uuid(exc.vcon_uuid))
            raise
        note_subject(vcon_uuid)
        return vcon_uuid

    # --- 2.-5. save ---------------------------------------------------------------------

    def save(
        self,
        batch: Sequence[Prepared],
        lists: Sequence[str],
        *,
        operation: str = "save",
        journal: bool = True,
    ) -> dict[str, int]:
        """Save the batch in one database transaction, then cache it and push it;
        return ``{uuid: version}``. A database failure that stays is journaled (only a
        transient one: a refusal is raised as it is, see :meth:`_journal_and_raise`);
        ``journal=False``: raised without journaling (the caller still holds the vCons)."""
        documents = [prepared.document for prepared in batch]
        texts = [prepared.text for prepared in batch]
        tenants = self._tenants(batch)
        # The version a working copy was read at: a copy read after another writer's
        # change holds it, and is saved without a merge (conserver_vcon_save, p_base).
        read = [p.read_version if p.read_version > 0 else None for p in batch]
        bases = read if any(base is not None for base in read) else None
        started = time.time()
        try:
            versions = self.retrying(
                operation, lambda: self._database.save(documents, tenants, bases, texts)
            )
        except VconConflictError as exc:
            self._keep_conflicting(exc, batch, started)
        except DatabaseError as exc:
            if not journal or (len(batch) > 1 and too_slow(exc)):  # save_many splits it
                raise
            entries = [dataclasses.replace(p.journaled, at=started) for p in batch]
            self._journal_and_raise(exc, entries)
        self._after_commit(batch, versions, lists)
        return versions

    def _after_commit(
        self, batch: Sequence[Prepared], versions: Mapping[str, int], lists: Sequence[str]
    ) -> None:
        """Cache the saved batch and push it onto ``lists``; raise what the caller must
        hear about."""
        # A uuid given twice was saved twice, in order: its version belongs to the last
        # document, which alone goes to the cache (and its uuid once to each list).
        last = {prepared.vcon_uuid: prepared for prepared in batch}
        merged = merged_of(versions)

        def entry(u: str, p: Prepared) -> Entry:
            if u not in merged:
                # The hook's copy too: set again, RedisJSON may move its numbers again.
                exact = holds_exactly(p.document)
                return Entry(u, p.cached, p.mode, versions[u], p.read_version, exact=exact)
            # Merged with another writer's changes: the cache gets what the database
            # saved (the copy handed in lacks those changes), in the save's own mode; the
            # hook's working copy only while it holds the text read (a link's newer edit
            # stays: lua/write.lua, touch).
            read_text = p.text if p.mode == "touch" else None
            exact = holds_exactly(merged[u])
            return Entry(u, dumps(merged[u]), p.mode, versions[u], p.read_version, read_text, exact)

        entries = [entry(u, p) for u, p in last.items()]
        self._report(self._redis.store(entries, lists), versions)

    @staticmethod
    def _tenants(batch: Sequence[Prepared]) -> list[Tenant] | None:
        tenants = [prepared.tenant for prepared in batch]
        if all(tenant is None for tenant in tenants):
            return None  # leave every row's tenant_id as it is
        return [tenant or Tenant(None) for tenant in tenants]

    def _report(self, outcome: StoreOutcome, versions: Mapping[str, int]) -> None:
        """Raise what the caller must hear about: a uuid that missed a chain list first,
        then (``cache_errors: raise``) a cache failure."""
        if outcome.unpushed:
            uuids = list(outcome.unpushed)
            missed = list(dict.fromkeys(n for lists in outcome.unpushed.values() for n in lists))
            reasons = "; ".join(
                dict.fromkeys(
                    reason
                    for lists in outcome.unpushed.values()
                    for reason in sorted(set(lists.values()))
                )
            )
            cause = next(iter(outcome.failures.values()), None)
            missed_by = ChainPushError(uuids[0], missed, reasons, vcon_uuids=uuids, saved=versions)
            raise missed_by from cause
        for vcon_uuid, failure in outcome.failures.items():
            self._redis.excuse(
                failure, f"the vCon is saved in the database (version {versions[vcon_uuid]})"
            )

    def _journal_and_raise(self, exc: DatabaseError, entries: Sequence[JournalEntry]) -> NoReturn:
        """A save failed for good: journal it (or say that it could not be), then raise.

        Only a transient failure (the database unreachable, timed out, overloaded) is
        journaled: a refusal (a wrong key or password, missing migrations, a pooler that
        refuses the connection, another tenant's vCon) would be refused again by every
        replay until someone fixes it, so it is raised as it is, with the fix, and the
        caller keeps the vCon (the conserver: its working copy and its dead-letter
        queue)."""
        name = self._config.journal_list
        if not isinstance(exc, DatabaseUnavailableError):
            exc.journaled = False
            raise exc
        try:
            if not name:
                raise CacheError("the journal is off (journal_list is empty)", operation="journal")
            self._redis.journal(entries)
        except CacheError as journal_exc:
            text = (
                f"{str(exc).rstrip('.')}; the vCon could NOT be journaled either "
                f"({journal_exc}): it is lost unless it is saved again"
            )
            journaled = False
        else:
            text = (
                f"{str(exc).rstrip('.')}; the vCon is kept on the failed-save journal "
                f"(Redis list {name}): run `conserver-supabase replay` when the database is back"
            )
            journaled = True
            self._telemetry.event("journaled", len(entries))
        # Its outcome is unknown (a call cut at its deadline, an answer lost): distrusted
        # after the journal recorded the version the cache knew.
        self._redis.distrust(entry.vcon_uuid for entry in entries)
        logger.error("%s", text)
        error = type(exc)(text, operation=exc.operation, vcon_uuid=exc.vcon_uuid, code=exc.code)
        error.attempts, error.journaled = exc.attempts, journaled
        raise error from exc

    def _keep_conflicting(
        self, exc: VconConflictError, batch: Sequence[Prepared], started: float
    ) -> NoReturn:
        """A save the database refused because another writer changed the same field:
        keep the copy that conflicted in the dead letters (the conserver does not keep a
        failed save), count it, log it, raise. Nothing of the batch was written."""
        self._telemetry.event("conflicts")
        prepared = next((p for p in batch if p.vcon_uuid == exc.vcon_uuid), None)
        kept = ""
        if prepared is not None and self._config.journal_list:
            entry = Journaled(prepared.vcon_uuid, None, {"at": started})
            try:
                self._redis.bury(entry, prepared.text, str(exc), exc.code)
            except CacheError as cache_exc:
                kept = f"; the copy could NOT be kept in the dead letters ({cache_exc})"
            else:
                exc.kept = True
                kept = (
                    f"; the copy is kept in the dead letters (Redis list "
                    f"{self._config.journal_list}:dead, `conserver-supabase journal list "
                    "--dead`): read the vCon again, apply its change and save that"
                )
        elif prepared is not None:
            kept = "; the copy could NOT be kept (the journal is off: journal_list is empty)"
        others = "" if len(batch) == 1 else f" ({len(batch) - 1} other vCon(s) not saved either)"
        text = f"{exc}{others}{kept}"
        logger.error("%s", text)
        error = VconConflictError(
            text, operation=exc.operation, vcon_uuid=exc.vcon_uuid, field=exc.field, code=exc.code
        )
        error.attempts, error.kept = exc.attempts, exc.kept
        raise error from exc

    # --- deletes --------------------------------------------------------------------------

    def delete(self, vcon_uuid: str | UUID) -> bool:
        """Delete from the database, then from the cache; return whether it existed."""
        canonical = canonical_uuid(vcon_uuid)
        note_subject(canonical)
        # > 0: deleted now, at that version; < 0: already gone, deleted at -version (a
        # retried delete whose first answer was lost); 0: never saved through us.
        version = self.retrying("delete", lambda: self._database.delete(canonical))
        if self._redis.forget(canonical, abs(version)):  # Redis answered: also
            self._redis.drop_journaled(canonical)  # the journal, so no replay revives it
        return version > 0

    # --- the journal ------------------------------------------------------------------------

    def replay(self, progress: Callable[[int, int], None] | None = None) -> ReplayReport:
        """Save every journaled vCon again, oldest first, each only if the database
        acknowledged nothing newer for it since its failed save; see ``replay_journal``."""
        pending = self._redis.journaled()
        report = ReplayReport(total=len(pending))
        for index, vcon_uuid in enumerate(pending, start=1):
            if self._replay_one(self._redis.journaled_entry(vcon_uuid), report) == "stop":
                break
            if progress is not None:
                progress(index, len(pending))
        return report

    def _replay_one(self, entry: Journaled, report: ReplayReport) -> str:
        """Replay one entry (counted as a save); ``done`` (it left the journal: saved,
        superseded, dead-lettered or dropped) or ``stop``."""
        vcon_uuid, prepared, why = entry.vcon_uuid, None, None
        try:
            with self._telemetry.operation("save"):
                prepared = ready = self._replayed(entry)
                tenant, base = self._recorded_tenant(entry, ready), _base(entry)
                version, why, merged = self.retrying(
                    "save", lambda: self._database.replay(ready.document, tenant, base, ready.text)
                )
                if why is None:
                    self._redis.unjournal(vcon_uuid)
                    kept = None if merged is None else {vcon_uuid: merged}
                    saved = Saved({vcon_uuid: version}, kept)
                    self._after_commit([ready], saved, self._config.chain_lists)
        except VconNotFoundError as exc:
            self._leave(report.dropped, entry, f"nothing left to save ({exc})")
            return "done"
        except (InvalidVconError, DatabaseRejectedError) as exc:
            # Refused for this vCon (another tenant's, P0001; a conflict with another
            # writer's change, CSC01): buried. Anything else: the configuration.
            if isinstance(exc, DatabaseRejectedError) and exc.code not in ("P0001", CONFLICT):
                report.error = str(exc)  # the configuration, not this vCon: fix, rerun
                return "stop"
            if isinstance(exc, VconConflictError):
                self._telemetry.event("conflicts")
            text = entry.document if prepared is None else prepared.text
            self._redis.bury(entry, text, str(exc), exc.code)
            report.dead_lettered.append(f"{vcon_uuid}: {exc}")
            logger.error("replay of vCon %s: moved to the dead letters: %s", vcon_uuid, exc)
            return "done"
        except DatabaseError as exc:
            report.error = str(exc)
            return "stop"
        except ChainPushError as exc:  # saved; the push is reported, not retried here
            report.unpushed.append(str(exc))
        if why is not None:
            self._leave(report.superseded, entry, f"superseded: {why}")
            return "done"
        report.replayed += 1
        return "done"

    def _replayed(self, entry: Journaled) -> Prepared:
        """The vCon of a journal entry, prepared (the document journaled, else the
        working copy the journal kept)."""
        if entry.document is not None:
            return self.prepare(entry.document)
        return self.prepare_working_copy(entry.vcon_uuid)

    def _recorded_tenant(self, entry: Journaled, prepared: Prepared) -> Tenant | None:
        """The tenant guard the failed save had, whatever this storage's options say (an
        entry journaled before 0.2 recorded none: this storage's, and its fence saves
        only a vCon the database has no trace of)."""
        if entry.meta is None:
            return prepared.tenant
        guard = entry.meta.get("tenant")
        if guard is None:
            return None
        return Tenant(guard.get("tenant_id"), bool(guard.get("exclusive")))

    def _leave(self, where: list[str], entry: Journaled, why: str) -> None:
        """Take an entry off the journal without a save, and say so."""
        self._redis.unjournal(entry.vcon_uuid)
        where.append(f"{entry.vcon_uuid}: {why}")
        logger.warning("replay of vCon %s: removed from the journal, %s", entry.vcon_uuid, why)

    # --- shared ---------------------------------------------------------------------------

    def retrying[R](self, operation: str, call: Callable[[], R]) -> R:
        """Run one database call, retrying transient failures within retry_deadline."""
        return call_with_retry(
            call,
            deadline=self._config.retry_deadline,
            operation=operation,
            on_retry=lambda: self._telemetry.event("retries"),
        )


def _guard(tenant: Tenant | None) -> dict[str, Any] | None:
    """The tenant guard as the journal records it."""
    return None if tenant is None else tenant.as_json()


def _base(entry: Journaled) -> dict[str, Any]:
    """What ``conserver_vcon_replay`` fences the entry on: the version the cache knew
    (negative: a delete; only entries journaled by earlier builds record one, see
    RedisTier.journal), else when the failed save started, else (an entry journaled
    before 0.2) nothing."""
    if entry.meta is None:
        return {}
    if entry.meta.get("base") is not None:
        return {"version": int(entry.meta["base"])}
    return {"at": float(entry.meta.get("at") or 0)}


def journal_listing(redis: RedisTier, dead: bool) -> list[dict[str, Any]]:
    """The journal's entries (or dead letters) as ``journal list`` shows them."""
    if dead:
        return [
            {
                "uuid": letter.vcon_uuid,
                "dead_since": _moment(letter.at),
                "journaled_at": _moment(letter.journaled_at),
                "reason": letter.reason,
                "code": letter.code,
                "bytes": letter.size,
            }
            for letter in redis.dead_letters()
        ]
    listing = []
    for entry, size in redis.journal_sizes():
        meta = entry.meta or {}
        listing.append(
            {
                "uuid": entry.vcon_uuid,
                "journaled_at": _moment(meta.get("at")),
                "base": meta.get("base"),
                "tenant": meta.get("tenant"),
                "kept_as": entry.working_copy or ("document" if size else "nothing (expired)"),
                "bytes": size,
            }
        )
    return listing


def _moment(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="seconds")
