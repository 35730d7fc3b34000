"""Search: filters -> one ``conserver_vcon_search`` call -> a page of uuids or vCons.

This module checks and normalizes what callers pass (so mistakes fail here, naming
the filter, before any I/O), builds the JSON query the SQL function takes, and turns
its answer into a :class:`SearchPage` with an opaque cursor. Filter values travel as
JSON inside that one parameter; no SQL or PostgREST query text is built from them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ._database._functions import versioned
from ._errors import SearchError

__all__ = [
    "DEFAULT_LIMIT",
    "FILTERS",
    "MAX_LIMIT",
    "SearchPage",
    "build_query",
    "merge_filters",
    "read_page",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000

#: Every filter, with what it accepts (for messages and docs).
FILTERS: Final[Mapping[str, str]] = {
    "text": "full-text query (subject, party name/mailto/tel, text dialog and analysis bodies)",
    "subject": "case-insensitive substring of the subject",
    "tel": "a party's tel, compared by digits only",
    "mailto": "a party's email, case-insensitive, with or without mailto:",
    "name": "case-insensitive substring of a party's name",
    "party_uuid": "a party's uuid",
    "tags": 'all of these tags: {"key": "value"} or ["key:value", ...]',
    "created_after": "created at or after (ISO 8601 or datetime; no zone means UTC)",
    "created_before": "created before (ISO 8601 or datetime; no zone means UTC)",
    "updated_after": "updated at or after (ISO 8601 or datetime; no zone means UTC)",
    "updated_before": "updated before (ISO 8601 or datetime; no zone means UTC)",
    "dialog_type": "some dialog has this type (text, recording, transfer, incomplete)",
    "analysis_type": "some analysis has this type",
    "analysis_vendor": "some analysis has this vendor (with analysis_type: the same one)",
}
_TIMES: Final = ("created_after", "created_before", "updated_after", "updated_before")
_CURSOR_VERSION: Final = 1


@dataclasses.dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, newest first.

    ``items`` are uuids, or whole vCons when ``include_vcons`` was asked.
    ``next_cursor`` fetches the next page (pass it with the same filters), or is
    ``None`` on the last page. Iterating a page iterates its items.
    """

    items: list[Any]
    next_cursor: str | None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def build_query(
    filters: Mapping[str, Any] | None,
    *,
    limit: Any = DEFAULT_LIMIT,
    cursor: str | None = None,
    include_vcons: bool = False,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """Check the filters and return the JSON query for ``conserver_vcon_search``.

    ``tenant_id`` (a storage's fixed tenant) scopes the search to that tenant's vCons
    and those without tenant, the rows vcon-mcp's RLS policy shows that tenant's
    users. It travels as the internal filter ``tenant`` (a database without migration
    0008 rejects it rather than ignore it) and is part of the cursor's fingerprint.

    Raises :class:`SearchError` naming the filter (or ``limit``/``cursor``).
    """
    if filters is None:
        filters = {}
    if not isinstance(filters, Mapping):
        raise SearchError(
            f"filters must be a mapping of filter names to values, got {type(filters).__name__}",
            filter="filters",
        )
    normalized: dict[str, Any] = {}
    for name, value in filters.items():
        if name not in FILTERS:
            raise SearchError(
                f"unknown search filter {name!r}; the filters are: {', '.join(FILTERS)}",
                filter=str(name),
            )
        if value is None:
            continue  # "not given", as with options
        normalized[name] = _normalize(name, value)
    if tenant_id is not None:
        normalized["tenant"] = tenant_id
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(
            f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}", filter="limit"
        )
    query: dict[str, Any] = {
        "filters": normalized,
        "limit": limit,
        "include_vcons": bool(include_vcons),
        # whole vCons as saved (conserver_vcon_read's rule), as get returns them; the
        # transport asks the json form for them (each vCon parsed once, with the page)
        "exact": bool(include_vcons),
    }
    if cursor is not None:
        query["after"] = _decode_cursor(cursor, _fingerprint(normalized))
    return query


def merge_filters(filters: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict[str, Any]:
    """Combine a filters mapping and keyword filters; the same filter twice is an error."""
    if filters is None:
        filters = {}
    if not isinstance(filters, Mapping):
        raise SearchError(
            f"filters must be a mapping of filter names to values, got {type(filters).__name__} "
            "(to search words, pass text=...)",
            filter="filters",
        )
    twice = sorted(set(filters) & set(more))
    if twice:
        raise SearchError(
            f"search filter {twice[0]!r} is given twice (in the mapping and as a keyword)",
            filter=twice[0],
        )
    return {**filters, **more}


def read_page(query: Mapping[str, Any], result: Mapping[str, Any]) -> SearchPage:
    """Turn the SQL function's answer into a :class:`SearchPage`."""
    items = result.get("vcons") if query.get("include_vcons") else result.get("uuids")
    if query.get("exact") and items:
        items = [versioned(entry)[0] for entry in items]
    next_cursor = None
    last = result.get("last")
    if result.get("more") and isinstance(last, Mapping):
        next_cursor = _encode_cursor(last, _fingerprint(query["filters"]))
    return SearchPage(items=list(items or []), next_cursor=next_cursor)


def _normalize(name: str, value: Any) -> Any:
    if name == "tags":
        return _tags(value)
    if name in _TIMES:
        return _timestamp(name, value)
    if not isinstance(value, str):
        raise SearchError(
            f"search filter {name!r} must be a string, got {type(value).__name__}", filter=name
        )
    text = value.strip()
    if not text:
        raise SearchError(f"search filter {name!r} is empty", filter=name)
    if "\x00" in text:
        raise SearchError(f"search filter {name!r} contains a NUL character", filter=name)
    if name == "text" and not any(
        not word.startswith("-") and word.strip('"').lower() != "or" for word in text.split()
    ):
        raise SearchError(
            "search filter 'text' needs at least one word to look for (not only -excluded words)",
            filter=name,
        )
    if name == "tel" and not any(ch.isdigit() for ch in text):
        raise SearchError(f"search filter 'tel' has no digits: {value!r}", filter=name)
    return text


def _tags(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        pairs = [f"{key}:{item}" for key, item in value.items()]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SearchError("search filter 'tags' must map strings to strings", filter="tags")
    elif isinstance(value, list | tuple):
        pairs = list(value)
    else:
        raise SearchError(
            "search filter 'tags' must be a mapping {key: value} or a list of 'key:value' "
            f"strings, got {type(value).__name__}",
            filter="tags",
        )
    if not pairs:
        raise SearchError("search filter 'tags' is empty: give at least one pair", filter="tags")
    for pair in pairs:
        if not isinstance(pair, str) or ":" not in pair or "\x00" in pair:
            raise SearchError(
                f"search filter 'tags' needs 'key:value' strings, got {pair!r}", filter="tags"
            )
    return list(dict.fromkeys(pairs))


def _timestamp(name: str, value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SearchError(
                f"search filter {name!r} must be an ISO 8601 date or time, got {value!r}",
                filter=name,
            ) from None
    else:
        raise SearchError(
            f"search filter {name!r} must be a datetime or an ISO 8601 string, "
            f"got {type(value).__name__}",
            filter=name,
        )
    if moment.tzinfo is None:  # a date or a time without zone: UTC, as documented
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _fingerprint(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _encode_cursor(last: Mapping[str, Any], fingerprint: str) -> str:
    payload = {
        "v": _CURSOR_VERSION,
        "c": last["created_at"],
        "u": last["uuid"],
        "f": fingerprint,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: Any, fingerprint: str) -> dict[str, str]:
    if not isinstance(cursor, str) or not cursor:
        raise SearchError("cursor must be the next_cursor string of a page", filter="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        position = {"created_at": str(payload["c"]), "uuid": str(payload["u"])}
        version, made_for = payload["v"], payload["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise SearchError(
            "cursor is not a next_cursor this package made", filter="cursor"
        ) from None
    if version != _CURSOR_VERSION or made_for != fingerprint:
        raise SearchError(
            "cursor belongs to a search with other filters: pass the same filters as the "
            "page it came from",
            filter="cursor",
        )
    return position
