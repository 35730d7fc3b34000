"""MemoryDatabase: the database seam (:class:`conserver_supabase.testing.Database`) in
memory, for fast tests of code that uses a storage. Exported by
:mod:`conserver_supabase.testing`."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._database import Database, Tenant, Versioned
from ._documents import loads
from ._errors import DatabaseRejectedError

__all__ = ["MemoryDatabase"]

_Matcher = Callable[[Mapping[str, Any]], bool]


class MemoryDatabase:
    """The database seam over dicts, with the versions the SQL functions keep.

    Every save adds one to the vCon's version; a delete takes the next version and
    leaves a tombstone, and a vCon saved again continues from it, as
    ``conserver_vcon_remove`` does. A fixed tenant (``exclusive``) does not take over
    another tenant's vCon. Search supports every filter, newest first with a cursor;
    ``text`` is a case-insensitive word match (not PostgreSQL's full-text search).

    ``fail`` (an exception) is raised by every call while set, to play an outage.
    ``calls`` lists the method names called, in order.
    """

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.tenants: dict[str, str | None] = {}
        self.saved_at: dict[str, datetime] = {}
        self.tombstones: dict[str, int] = {}
        self.deleted_at: dict[str, datetime] = {}
        self.calls: list[str] = []
        self.fail: BaseException | None = None
        #: The change log (uuid, version, op), in order; its index is its transaction.
        self.changes: list[tuple[str, int, str]] = []
        self.cursors: dict[str, int] = {}
        self._lock = threading.RLock()

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None:
            raise self.fail

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        # No other writer changes rows here: nothing to merge, the bases change nothing.
        self._enter("save")
        with self._lock:
            return self._write(_as_saved(documents, texts), tenants)

    def _write(
        self, documents: Sequence[Mapping[str, Any]], tenants: Sequence[Tenant] | None
    ) -> dict[str, int]:
        with self._lock:
            for index, document in enumerate(documents):
                vcon_uuid = str(document["uuid"]).lower()
                tenant = tenants[index] if tenants is not None else None
                owner = self.tenants.get(vcon_uuid)
                if (
                    tenant is not None
                    and tenant.exclusive
                    and owner not in (None, tenant.tenant_id)
                ):
                    raise DatabaseRejectedError(
                        f"save of vCon {vcon_uuid} failed: database rejected it: the vCon "
                        "belongs to another tenant",
                        operation="save",
                        vcon_uuid=vcon_uuid,
                        code="P0001",
                    )
            result: dict[str, int] = {}
            for index, document in enumerate(documents):
                vcon_uuid = str(document["uuid"]).lower()
                start = self.versions.get(vcon_uuid, self.tombstones.get(vcon_uuid, 0))
                self.versions[vcon_uuid] = result[vcon_uuid] = start + 1
                self.changes.append((vcon_uuid, start + 1, "save"))
                self.documents[vcon_uuid] = copy.deepcopy(dict(document))
                self.saved_at[vcon_uuid] = datetime.now(UTC)
                if tenants is not None:
                    self.tenants[vcon_uuid] = tenants[index].tenant_id
                else:
                    self.tenants.setdefault(vcon_uuid, None)
        return result

    def replay(
        self,
        document: Mapping[str, Any],
        tenant: Tenant | None,
        base: Mapping[str, Any],
        text: str | None = None,
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        """The fence of ``conserver_vcon_replay`` (its rule, without its messages' detail)."""
        self._enter("replay")
        vcon_uuid = str(document["uuid"]).lower()
        with self._lock:
            why = self._superseded(vcon_uuid, base)
            if why is not None:
                return 0, why, None
            saved = self._write(
                _as_saved([document], None if text is None else [text]),
                None if tenant is None else [tenant],
            )
            return saved[vcon_uuid], None, None

    def _superseded(self, vcon_uuid: str, base: Mapping[str, Any]) -> str | None:
        version, tomb = self.versions.get(vcon_uuid), self.tombstones.get(vcon_uuid)
        known = base.get("version")
        if known is not None and known > 0:
            return None if version == known else f"it was based on version {known}"
        if known is not None:
            newer = version is not None or (tomb or 0) > -known
            return f"it was based on the delete at version {-known}" if newer else None
        if base.get("at") is not None:
            at = datetime.fromtimestamp(float(base["at"]), UTC)
            saved, deleted = self.saved_at.get(vcon_uuid), self.deleted_at.get(vcon_uuid)
            later = (saved is not None and saved >= at) or (deleted is not None and deleted >= at)
            return "the database changed it after the failed save" if later else None
        if version is not None or tomb is not None:
            return "the entry was journaled by a release before 0.2 (no base recorded)"
        return None

    def fetch(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        self._enter("fetch")
        with self._lock:
            return {
                u: (copy.deepcopy(self.documents[u]), self.versions.get(u, 0))
                for u in vcon_uuids
                if u in self.documents
            }

    def exists(self, vcon_uuid: str) -> bool:
        self._enter("exists")
        return vcon_uuid in self.documents

    def delete(self, vcon_uuid: str) -> int:
        self._enter("delete")
        with self._lock:
            if self.documents.pop(vcon_uuid, None) is None:
                return -self.tombstones.get(vcon_uuid, 0)
            version = self.versions.pop(vcon_uuid) + 1
            self.tombstones[vcon_uuid] = version
            self.deleted_at[vcon_uuid] = datetime.now(UTC)
            self.changes.append((vcon_uuid, version, "delete"))
            self.tenants.pop(vcon_uuid, None)
            self.saved_at.pop(vcon_uuid, None)
            return version

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("search")
        filters = dict(query.get("filters") or {})
        limit = int(query.get("limit") or 50)
        tenant = filters.pop("tenant", None)
        matchers = [_matcher(name, value) for name, value in filters.items()]
        if "analysis_type" in filters and "analysis_vendor" in filters:  # the same analysis
            kind, vendor = filters["analysis_type"], filters["analysis_vendor"]
            matchers.append(
                lambda d: any(
                    a.get("type") == kind and a.get("vendor") == vendor
                    for a in d.get("analysis") or []
                )
            )
        with self._lock:
            rows = [
                (_created(doc), vcon_uuid, doc)
                for vcon_uuid, doc in self.documents.items()
                if all(match(doc) for match in matchers if match is not None)
                and (tenant is None or self.tenants.get(vcon_uuid) in (None, tenant))
            ]
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        after = query.get("after")
        if isinstance(after, Mapping):
            position = (_instant(str(after["created_at"])), str(after["uuid"]))
            rows = [row for row in rows if (row[0], row[1]) < position]
        page = rows[:limit]
        last = page[-1] if page else None
        return {
            "uuids": [row[1] for row in page],
            "vcons": [
                {"version": self.versions.get(row[1], 0), "vcon": copy.deepcopy(row[2])}
                if query.get("exact")
                else copy.deepcopy(row[2])
                for row in page
            ]
            if query.get("include_vcons")
            else None,
            "more": len(rows) > limit,
            "last": {"created_at": last[0].isoformat(), "uuid": last[1]} if last else None,
        }

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("saved_between")
        since = _instant(str(query["since"]))
        until = _instant(str(query["until"])) if query.get("until") else None
        after = query.get("after")
        with self._lock:
            rows = sorted((at, u) for u, at in self.saved_at.items())
        rows = [r for r in rows if r[0] >= since and (until is None or r[0] < until)]
        if isinstance(after, Mapping):
            rows = [r for r in rows if r > (_instant(str(after["at"])), str(after["uuid"]))]
        page = rows[: int(query.get("limit") or 1000)]
        last = {"at": page[-1][0].isoformat(), "uuid": page[-1][1]} if page else None
        return {"uuids": [u for _, u in page], "last": last}

    def feed_poll(self, name: str, state: Mapping[str, Any], limit: int) -> dict[str, Any]:
        """``conserver_vcon_feed_poll`` over :attr:`changes` (nothing is ever pruned, and
        every change commits at once: the watermark is the log's length)."""
        self._enter("feed_poll")
        with self._lock:
            if "xid" in state:
                start, after = int(state["from"]), int(state["xid"])
            else:
                advance = int(state.get("advance") or 0)
                start = self.cursors[name] = max(self.cursors.get(name, 0), advance)
                after = start - 1
            rows = [
                [u, version, op, str(xid), xid]
                for xid, (u, version, op) in enumerate(self.changes)
                if xid > after
            ][:limit]
            head = str(len(self.changes)) if "xid" not in state else None
        return {"from": str(start), "next": head, "changes": rows, "more": 0 < limit == len(rows),
                "lost": False}  # fmt: skip

    def close(self) -> None:
        pass


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _created(document: Mapping[str, Any]) -> datetime:
    value = document.get("created_at")
    return _instant(value) if isinstance(value, str) else datetime.min.replace(tzinfo=UTC)


def _texts(document: Mapping[str, Any]) -> list[str]:
    found = [str(document.get("subject") or "")]
    for party in document.get("parties") or []:
        found += [str(party.get(k) or "") for k in ("name", "mailto", "tel")]
    for item in (document.get("dialog") or []) + (document.get("analysis") or []):
        if item.get("encoding") not in ("base64url", "base64") and isinstance(
            item.get("body"), str
        ):
            found.append(item["body"])
    return found


def _digits(text: Any) -> str:
    return "".join(c for c in str(text or "") if c.isdigit())


def _mailto(text: Any) -> str:
    value = str(text or "").strip().lower()
    return value.removeprefix("mailto:")


def _tags(document: Mapping[str, Any]) -> set[str]:
    tags: set[str] = set()
    for attachment in document.get("attachments") or []:
        body = attachment.get("body")
        if attachment.get("type") == "tags" and isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                continue
        if attachment.get("type") == "tags" and isinstance(body, list):
            tags.update(str(tag) for tag in body)
    return tags


def _matcher(name: str, value: Any) -> _Matcher | None:
    """The test of one filter on a document (None: handled apart, like ``tenant``)."""
    parties: Callable[[Mapping[str, Any]], list[Mapping[str, Any]]] = lambda d: list(  # noqa: E731
        d.get("parties") or []
    )
    tests: dict[str, _Matcher] = {
        "text": lambda d: all(
            any(word.lower() in t.lower().split() for t in _texts(d)) for word in str(value).split()
        ),
        "subject": lambda d: str(value).lower() in str(d.get("subject") or "").lower(),
        "tel": lambda d: any(_digits(p.get("tel")) == _digits(value) for p in parties(d)),
        "mailto": lambda d: any(_mailto(p.get("mailto")) == _mailto(value) for p in parties(d)),
        "name": lambda d: any(
            str(value).lower() in str(p.get("name") or "").lower() for p in parties(d)
        ),
        "party_uuid": lambda d: any(
            str(p.get("uuid") or "").lower() == str(value).lower() for p in parties(d)
        ),
        "tags": lambda d: set(value) <= _tags(d),
        "created_after": lambda d: _created(d) >= _instant(str(value)),
        "created_before": lambda d: _created(d) < _instant(str(value)),
        "updated_after": lambda d: (
            isinstance(d.get("updated_at"), str)
            and _instant(d["updated_at"]) >= _instant(str(value))
        ),
        "updated_before": lambda d: (
            isinstance(d.get("updated_at"), str)
            and _instant(d["updated_at"]) < _instant(str(value))
        ),
        "dialog_type": lambda d: any(x.get("type") == value for x in d.get("dialog") or []),
        "analysis_type": lambda d: any(x.get("type") == value for x in d.get("analysis") or []),
        "analysis_vendor": lambda d: any(x.get("vendor") == value for x in d.get("analysis") or []),
    }
    return tests.get(name)


if TYPE_CHECKING:  # the in-memory database is type-checked against the seam

    def _conforms(database: MemoryDatabase) -> Database:
        return database


def _as_saved(
    documents: Sequence[Mapping[str, Any]], texts: Sequence[str] | None
) -> Sequence[Mapping[str, Any]]:
    """The documents as the database keeps them: parsed from their texts when given."""
    return documents if texts is None else [loads(text) for text in texts]
