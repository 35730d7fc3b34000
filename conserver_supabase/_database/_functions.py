"""The SQL functions the transports call, in one table shared by both.

A :class:`Transport` turns each :class:`~._seam.Database` method into one call of one
function of :data:`FUNCTIONS`; a transport only says how a call travels
(:meth:`Transport.call`: psycopg over the PostgreSQL protocol, or supabase-py over
PostgREST, which passes the arguments by their names).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._seam import Saved, Tenant, Versioned

__all__ = [
    "FUNCTIONS",
    "ExactText",
    "ExactTexts",
    "Function",
    "Transport",
    "exact_json",
    "json_string",
    "versioned",
]


class ExactText(str):
    """A vCon's exact JSON text, passed as a JSON string value (never as the JSON it
    holds): the database keeps the text as it is. :func:`json_string` writes that value."""

    __slots__ = ()


class ExactTexts(list[ExactText]):
    """The exact texts of a batch, passed as a JSON array of JSON strings."""

    __slots__ = ()


#: Texts shorter than this go through json.dumps' C encoder: no faster here.
_LARGE_TEXT: Final = 32 * 1024
#: More quotes and backslashes than this (a large body that is escaped JSON): json.dumps.
_MAX_ESCAPES: Final = 2048
#: The whitespace JSON text may hold between its tokens, as a JSON string escapes it.
_WHITESPACE: Final = ((b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"))


def exact_json(value: ExactText | ExactTexts) -> bytes | str:
    """The JSON value an :class:`ExactText` or :class:`ExactTexts` is passed as: what
    ``json.dumps`` writes of it, a large text written by :func:`json_string`."""
    if isinstance(value, ExactText):
        return json_string(value)
    if all(len(text) < _LARGE_TEXT for text in value):
        return json.dumps(value)  # one C call for a batch of standard vCons
    return b"".join((b"[", b",".join([json_string(text) for text in value]), b"]"))


def json_string(text: str) -> bytes:
    """``text`` as a JSON string value, in UTF-8: what ``json.dumps(text)`` stands for,
    in a fraction of its time on a large vCon (whose text is escaped on every save).

    ``text`` is JSON text (it was parsed, or written by ``json.dumps``): it holds no
    control character but the whitespace between tokens, so escaping the quote, the
    backslash and that whitespace is all a JSON string of it needs. (Were another control
    character there, the database would refuse the value: nothing is stored changed.)
    """
    if len(text) < _LARGE_TEXT:
        return json.dumps(text).encode("ascii")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: json.dumps writes it as \udXXX
        return json.dumps(text).encode("ascii")
    # One copy: the runs between quotes and backslashes (a recording is one run) are
    # joined as views of the encoded text, each such character escaped between them.
    view, find = memoryview(data), data.find
    pieces: list[bytes | memoryview] = [b'"']
    start, quote, backslash = 0, find(b'"'), find(b"\\")
    while quote >= 0 or backslash >= 0:
        if len(pieces) > 2 * _MAX_ESCAPES:
            return json.dumps(text).encode("ascii")
        if backslash < 0 or 0 <= quote < backslash:
            pieces += (view[start:quote], b'\\"')
            start, quote = quote + 1, find(b'"', quote + 1)
        else:
            pieces += (view[start:backslash], b"\\\\")
            start, backslash = backslash + 1, find(b"\\", backslash + 1)
    pieces += (view[start:], b'"')
    escaped = b"".join(pieces)
    for char, replacement in _WHITESPACE:  # after the backslashes: these add their own
        if char in escaped:
            escaped = escaped.replace(char, replacement)
    return escaped


@dataclasses.dataclass(frozen=True, slots=True)
class Function:
    """One SQL function: its name, its arguments' names (in order) and the operation
    it is for in messages."""

    name: str
    params: tuple[str, ...]
    operation: str


FUNCTIONS: Final[Mapping[str, Function]] = {
    "save": Function("conserver_vcon_save", ("p_document", "p_tenant", "p_base"), "save"),
    "save_many": Function(
        "conserver_vcon_save_many", ("p_documents", "p_tenants", "p_bases"), "save_many"
    ),
    "replay": Function("conserver_vcon_replay", ("p_document", "p_tenant", "p_base"), "save"),
    "fetch": Function("conserver_vcon_read", ("p_uuid",), "load"),
    "fetch_many": Function("conserver_vcon_read_many", ("p_uuids",), "load_many"),
    "exists": Function("conserver_vcon_exists", ("p_uuid",), "exists"),
    "delete": Function("conserver_vcon_remove", ("p_uuid",), "delete"),
    "search": Function("conserver_vcon_search", ("p_query",), "search"),
    # The same function's json form (an overload), for whole vCons.
    "search_vcons": Function("conserver_vcon_search", ("p_query", "p_vcons"), "search"),
    "saved_between": Function("conserver_vcon_saved_between", ("p_query",), "requeue"),
    "feed_poll": Function("conserver_vcon_feed_poll", ("p_name", "p_state", "p_limit"), "feed"),
}


class Transport:
    """The :class:`~._seam.Database` methods over :data:`FUNCTIONS`; subclasses
    implement :meth:`call` and :meth:`close`."""

    def call(self, function: Function, arguments: Sequence[Any], vcon_uuid: str | None) -> Any:
        """Call ``function`` with ``arguments`` (JSON values, in ``function.params``
        order); return its result. ``vcon_uuid`` is for error messages."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        given = [None if bases is None else bases[i] for i in range(len(documents))]
        copies = [{} if base is None else {"version": base} for base in given]
        # A vCon travels as its exact text (a JSON string) where there is one: the
        # database keeps that text (conserver_vcon_save, p_document).
        sent: list[Any] = (
            list(documents) if texts is None else ExactTexts(ExactText(t) for t in texts)
        )
        if len(documents) == 1:
            vcon_uuid = str(documents[0]["uuid"]).lower()
            tenant = None if tenants is None else tenants[0].as_json()
            result = self.call(FUNCTIONS["save"], [sent[0], tenant, copies[0]], vcon_uuid)
            merged = {vcon_uuid: result["vcon"]} if "vcon" in result else None
            return Saved({vcon_uuid: int(result["version"])}, merged)
        stamps = None if tenants is None else [tenant.as_json() for tenant in tenants]
        arguments = [sent, stamps, copies]
        found = dict(self.call(FUNCTIONS["save_many"], arguments, None) or {})
        merged = found.pop("merged", None)
        return Saved({uuid: int(version) for uuid, version in found.items()}, merged)

    def replay(
        self,
        document: Mapping[str, Any],
        tenant: Tenant | None,
        base: Mapping[str, Any],
        text: str | None = None,
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        vcon_uuid = str(document["uuid"]).lower()
        stamp = None if tenant is None else tenant.as_json()
        sent = document if text is None else ExactText(text)
        result = self.call(FUNCTIONS["replay"], [sent, stamp, dict(base)], vcon_uuid) or {}
        if "superseded" in result:
            return 0, str(result["superseded"]), None
        return int(result["version"]), None, result.get("vcon")

    def fetch(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        if len(vcon_uuids) == 1:
            entry = self.call(FUNCTIONS["fetch"], [vcon_uuids[0]], vcon_uuids[0])
            return {} if entry is None else {vcon_uuids[0]: versioned(entry)}
        entries = self.call(FUNCTIONS["fetch_many"], [list(vcon_uuids)], None) or {}
        return {uuid: versioned(entry) for uuid, entry in entries.items()}

    def exists(self, vcon_uuid: str) -> bool:
        return bool(self.call(FUNCTIONS["exists"], [vcon_uuid], vcon_uuid))

    def delete(self, vcon_uuid: str) -> int:
        return int(self.call(FUNCTIONS["delete"], [vcon_uuid], vcon_uuid) or 0)

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        if query.get("include_vcons"):
            # The json form: the page's exact texts arrive inside the answer as JSON, so
            # each vCon is parsed once, with the page (conserver_vcon_search.sql).
            found: dict[str, Any] = self.call(FUNCTIONS["search_vcons"], [dict(query), True], None)
            return found
        result: dict[str, Any] = self.call(FUNCTIONS["search"], [dict(query)], None)
        return result

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call(FUNCTIONS["saved_between"], [dict(query)], None)
        return result

    def feed_poll(self, name: str, state: Mapping[str, Any], limit: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call(FUNCTIONS["feed_poll"], [name, dict(state), limit], None)
        return result


def versioned(entry: Any) -> Versioned:
    """What ``conserver_vcon_read`` returns -> tuple: ``{"version": n, "text": "..."}``
    (the vCon's exact text, parsed here) or ``{"version": n, "vcon": {...}}``."""
    text = entry.get("text")
    # json.loads: the text was checked when it was saved (no names twice).
    return (json.loads(text) if text is not None else entry["vcon"]), int(entry["version"])
