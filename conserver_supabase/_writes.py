"""The one write pipeline: every save (``save_vcon``, the conserver's ``save`` hook,
``save_many``, ``backfill``, ``replay``) and every delete goes this way.

A save is a batch (of one, or many):

1. **prepare**: each vCon becomes a :class:`Prepared` (validated, its tenant decided,
   its JSON text for the cache, what the journal keeps if the save fails, how its
   cache key is written): :meth:`Writes.prepare`, :meth:`Writes.prepare_working_copy`;
2. **database**: one call for the whole batch, transient failures retried within
   ``retry_deadline``;
3. on a failure that stays: **journal** the batch (unless the caller still holds it)
   and raise, saying whether it was journaled;
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn
from uuid import UUID

from ._config import StorageConfig
from ._database import Database, Tenant
from ._documents import as_document, dumps
from ._errors import (
    CacheError,
    ChainPushError,
    DatabaseError,
    DatabaseRejectedError,
    InvalidVconError,
    VconNotFoundError,
)
from ._redis import CONSERVER_KEY_PREFIX, Entry, JournalEntry, RedisTier, StoreOutcome, WriteMode
from ._retry import call_with_retry
from ._telemetry import Telemetry, note_subject
from ._tenants import tenant_for
from ._validation import canonical_uuid, is_uuid, validate_vcon

__all__ = ["Prepared", "ReplayReport", "Writes"]

logger = logging.getLogger("conserver_supabase.storage")


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """One vCon ready to be saved."""

    vcon_uuid: str
    document: Mapping[str, Any]
    tenant: Tenant | None
    #: The JSON text written to the cache (and the journal).
    text: str
    #: What the journal keeps if the save fails: (uuid, working copy key, document).
    journaled: JournalEntry
    #: How the cache key is written after the commit.
    mode: WriteMode = "overwrite"


@dataclasses.dataclass
class ReplayReport:
    """What :meth:`conserver_supabase.SupabaseStorage.replay_journal` did."""

    total: int
    replayed: int = 0
    #: Entries removed without a save (no document left, or invalid), with the reason.
    dropped: list[str] = dataclasses.field(default_factory=list)
    #: Refused by the database (kept on the journal, e.g. until a migration is applied).
    kept: list[str] = dataclasses.field(default_factory=list)
    #: Saved, but the uuid did not reach every chain list (the ChainPushError texts).
    unpushed: list[str] = dataclasses.field(default_factory=list)
    #: Set when the database failed again: the replay stopped, the rest stays journaled.
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
        document = as_document(vcon)
        vcon_uuid = self._validated(document)
        text = dumps(document)
        tenant = tenant_for(self._config, document, vcon_uuid)
        return Prepared(vcon_uuid, document, tenant, text, (vcon_uuid, None, text), mode)

    def prepare_working_copy(self, vcon_uuid: str | UUID) -> Prepared:
        """The vCon the conserver holds in Redis at ``vcon:{uuid}`` (the ``save`` hook)."""
        given = str(vcon_uuid) if isinstance(vcon_uuid, UUID) else vcon_uuid
        note_subject(canonical_uuid(given))  # no key is built from something not a uuid
        try:
            key, document = self._redis.working_copy(given)
        except CacheError as exc:
            if isinstance(exc.__cause__, ValueError | RecursionError):
                raise InvalidVconError(
                    given,
                    "(document)",
                    f"the working copy at {CONSERVER_KEY_PREFIX}{given} is not a JSON object: "
                    f"{exc.__cause__}"[:300],
                ) from exc
            raise
        if document is None:
            raise VconNotFoundError(
                given, where=f"Redis (key {key}, where the conserver keeps the vCon)"
            )
        canonical = self._validated(document, expected_uuid=given)
        tenant = tenant_for(self._config, document, canonical)
        # When the working copy is our cache key it already holds this document (or a
        # newer one a link wrote meanwhile): renew its TTL rather than rewrite it.
        mode: WriteMode = "touch" if key == self._redis.cache_key(canonical) else "overwrite"
        return Prepared(canonical, document, tenant, dumps(document), (canonical, key, None), mode)

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
        return ``{uuid: version}``. ``journal=False``: a database failure is raised
        without journaling (the caller still holds the vCons)."""
        documents = [prepared.document for prepared in batch]
        tenants = self._tenants(batch)
        try:
            versions = self.retrying(operation, lambda: self._database.save(documents, tenants))
        except DatabaseError as exc:
            if not journal:
                raise
            self._journal_and_raise(exc, [prepared.journaled for prepared in batch])
        # A uuid given twice was saved twice, in order: its version belongs to the last
        # document, which alone goes to the cache (and its uuid once to each list).
        last = {prepared.vcon_uuid: prepared for prepared in batch}
        entries = [Entry(u, p.text, p.mode, versions[u]) for u, p in last.items()]
        self._report(self._redis.store(entries, lists), versions)
        return versions

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
            raise ChainPushError(uuids[0], missed, reasons, vcon_uuids=uuids) from cause
        for vcon_uuid, failure in outcome.failures.items():
            self._redis.excuse(
                failure, f"the vCon is saved in the database (version {versions[vcon_uuid]})"
            )

    def _journal_and_raise(self, exc: DatabaseError, entries: Sequence[JournalEntry]) -> NoReturn:
        """A save failed for good: journal it (or say that it could not be), then raise."""
        name = self._config.journal_list
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
        logger.error("%s", text)
        error = type(exc)(text, operation=exc.operation, vcon_uuid=exc.vcon_uuid, code=exc.code)
        error.attempts, error.journaled = exc.attempts, journaled
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
        """Save every journaled vCon again, oldest first; see ``replay_journal``."""
        pending = self._redis.journaled()
        report = ReplayReport(total=len(pending))
        for index, vcon_uuid in enumerate(pending, start=1):
            outcome = self._replay_one(vcon_uuid, report)
            if outcome == "stop":
                break
            if outcome == "done":
                self._redis.unjournal(vcon_uuid)
            if progress is not None:
                progress(index, len(pending))
        return report

    def _replay_one(self, vcon_uuid: str, report: ReplayReport) -> str:
        """Save one journaled vCon (counted as a save); ``done`` (off the journal),
        ``kept`` or ``stop``."""
        try:
            with self._telemetry.operation("save"):
                document = self._redis.journaled_document(vcon_uuid)
                prepared = (
                    self.prepare_working_copy(vcon_uuid)
                    if document is None
                    else self.prepare(document)
                )
                self.save([prepared], self._config.chain_lists, journal=False)
        except (VconNotFoundError, InvalidVconError) as exc:
            report.dropped.append(f"{vcon_uuid}: {exc}")
            return "done"
        except DatabaseRejectedError as exc:  # kept: it may pass after a fix
            report.kept.append(f"{vcon_uuid}: {exc}")
            return "kept"
        except DatabaseError as exc:
            report.error = str(exc)
            return "stop"
        except ChainPushError as exc:  # saved; the push is reported, not retried here
            report.unpushed.append(str(exc))
        report.replayed += 1
        return "done"

    # --- shared ---------------------------------------------------------------------------

    def retrying[R](self, operation: str, call: Callable[[], R]) -> R:
        """Run one database call, retrying transient failures within retry_deadline."""
        return call_with_retry(
            call,
            deadline=self._config.retry_deadline,
            operation=operation,
            on_retry=lambda: self._telemetry.event("retries"),
        )
