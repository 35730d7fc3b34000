"""Checks a vCon document against what the spec and the database layout accept.

:func:`validate_vcon` runs before anything is written, so a bad vCon fails with an
:class:`~conserver_supabase.errors.InvalidVconError` that names the uuid and the
field (``dialog[1].encoding``) instead of a PostgreSQL message halfway through a
transaction. The SQL functions keep their own guards for callers that bypass
Python; this module is what gives the clear message.

The rules are the ones vcon-mcp's tables enforce or silently break on
(``reference/vcon-mcp-mapping.md`` section 6), plus what PostgreSQL's ``jsonb``
cannot hold at all (``\\u0000``, lone surrogates, NaN).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, NoReturn
from uuid import UUID

from ._errors import InvalidVconError
from ._storable import MAX_DEPTH, UnstorableNumber, plainly_storable, valid_unicode

__all__ = [
    "DIALOG_TYPES",
    "ENCODINGS",
    "MAX_DEPTH",
    "MAX_TAGS_BODY_BYTES",
    "UnstorableNumber",
    "canonical_uuid",
    "is_uuid",
    "validate_vcon",
]

DIALOG_TYPES: Final = frozenset({"recording", "text", "transfer", "incomplete"})
ENCODINGS: Final = frozenset({"base64url", "json", "none"})
#: vcon-mcp indexes the tags body in a btree (``idx_attachments_tags_partial``), whose
#: entries are limited to about 2.7 KB; a larger body makes the insert fail.
MAX_TAGS_BODY_BYTES: Final = 2700

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# RFC 3339 date-time, the subset PostgreSQL's timestamptz input also accepts.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
# PostgreSQL real (dialog.duration): larger magnitudes do not fit.
_MAX_REAL: Final = 3.4e38
# PostgreSQL timestamptz input: UTC offsets up to 15:59 (16:00 is "time zone
# displacement out of range"); Python's datetime takes up to 23:59.
_MAX_UTC_OFFSET: Final = timedelta(hours=15, minutes=59)
_INT4_MAX: Final = 2**31 - 1
_LOOKS_LIKE_ARRAY: Final = re.compile(r"^\s*\[.*\]\s*$", re.DOTALL)

_PARTY_TEXT: Final = (
    "tel",
    "sip",
    "stir",
    "mailto",
    "name",
    "did",
    "validation",
    "gmlpos",
    "timezone",
    "uuid",
)
_DIALOG_TEXT: Final = ("mediatype", "filename", "url", "disposition", "application", "message_id")
_DIALOG_INT_LISTS: Final = ("transfer_target", "original", "consultation", "target_dialog")
_ANALYSIS_TEXT: Final = ("mediatype", "filename", "product", "schema", "url")
_ATTACHMENT_TEXT: Final = ("type", "purpose", "mediatype", "filename", "url")


def canonical_uuid(vcon_uuid: Any) -> str:
    """Return ``vcon_uuid`` in canonical (lowercase) form; raise :class:`InvalidVconError`
    (field ``uuid``) when it is not a UUID. ``uuid.UUID`` objects are accepted (the
    conserver's HTTP API passes them)."""
    if isinstance(vcon_uuid, UUID):
        return str(vcon_uuid)
    if isinstance(vcon_uuid, str) and _UUID.fullmatch(vcon_uuid):
        return vcon_uuid.lower()
    label = _printable(vcon_uuid[:100]) if isinstance(vcon_uuid, str) else None
    raise InvalidVconError(
        label, "uuid", f"must be a UUID string like 8-4-4-4-12 hex digits, got {vcon_uuid!r}"[:200]
    )


def is_uuid(value: Any) -> bool:
    """Whether ``value`` is a uuid :func:`canonical_uuid` accepts."""
    return isinstance(value, UUID) or (isinstance(value, str) and bool(_UUID.fullmatch(value)))


def validate_vcon(
    document: Any, *, expected_uuid: str | None = None, max_body_bytes: int = 0
) -> str:
    """Check ``document`` and return its uuid in canonical (lowercase) form.

    Raises :class:`InvalidVconError` naming the uuid and the first offending field.
    ``expected_uuid``, when given, must match the document's ``uuid`` (the
    conserver's ``save(vcon_uuid, ...)`` names the vCon it means). ``max_body_bytes``
    (0: no limit) caps every dialog, analysis and attachment body.
    """
    label = expected_uuid
    if not isinstance(document, Mapping):
        raise InvalidVconError(label, "(document)", f"must be a JSON object, got {_kind(document)}")
    raw_uuid = document.get("uuid")
    if isinstance(raw_uuid, str) and label is None:
        label = _printable(raw_uuid[:100])
    check = _Checker(label, max_body_bytes)
    if raw_uuid is None:
        check.fail("uuid", "is missing")
    if not isinstance(raw_uuid, str) or not _UUID.fullmatch(raw_uuid):
        check.fail(
            "uuid", f"must be a UUID string like 8-4-4-4-12 hex digits, got {raw_uuid!r}"[:200]
        )
    uuid: str = raw_uuid.lower()
    if expected_uuid is not None and uuid != expected_uuid.lower():
        check.fail("uuid", f"is {raw_uuid} but the vCon was saved as {expected_uuid}")

    check.walk(document)
    check.text(document, "vcon", "vcon", max_length=10)
    check.text(document, "subject", "subject")
    for name in ("created_at", "updated_at"):
        check.timestamp(document, name, name)
    for name in ("extensions", "critical", "must_support"):
        check.text_list(document, name, name)
    for name in ("redacted", "amended", "appended"):
        check.optional(document, name, name, dict, "a JSON object")
    check.optional(document, "group", "group", list, "an array")
    for position, item in enumerate(document.get("group") or ()):
        if not isinstance(item, Mapping):
            check.fail(f"group[{position}]", f"must be a JSON object, got {_kind(item)}")

    check.each(document, "parties", _check_party)
    check.each(document, "dialog", _check_dialog)
    check.each(document, "analysis", _check_analysis)
    check.each(document, "attachments", _check_attachment)
    tags = [
        index
        for index, item in enumerate(document.get("attachments") or ())
        if isinstance(item, Mapping) and item.get("type") == "tags"
    ]
    if len(tags) > 1:
        check.fail(
            f"attachments[{tags[1]}]",
            f"is a second 'tags' attachment (the first is attachments[{tags[0]}]); "
            "vcon-mcp's tag index allows one per vCon: merge them",
        )
    return uuid


def _check_party(check: _Checker, party: Mapping[str, Any], path: str) -> None:
    check.texts(party, _PARTY_TEXT, path)
    check.optional(party, "civicaddress", f"{path}.civicaddress", dict, "a JSON object")


def _check_dialog(check: _Checker, dialog: Mapping[str, Any], path: str) -> None:
    check.choice(dialog, "type", f"{path}.type", DIALOG_TYPES, required=True)
    check.timestamp(dialog, "start", f"{path}.start")
    duration = dialog.get("duration")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 <= duration <= _MAX_REAL
    ):
        check.fail(
            f"{path}.duration",
            f"must be a non-negative number (at most {_MAX_REAL:g}), got {_short(duration)}",
        )
    if duration and _as_real(duration) == 0:
        check.fail(
            f"{path}.duration",
            f"is too small for the database's real column (it would round to 0, which "
            f"PostgreSQL refuses): {_short(duration)}; write 0",
        )
    check.index_lists(dialog, ("parties",), path)
    check.indexes(dialog, ("originator", "transferee", "transferor"), path)
    check.index_lists(dialog, _DIALOG_INT_LISTS, path)
    check.texts(dialog, _DIALOG_TEXT, path)
    check.content(dialog, path)
    check.optional(dialog, "party_history", f"{path}.party_history", list, "an array")
    for position, event in enumerate(dialog.get("party_history") or ()):
        if not isinstance(event, Mapping):
            check.fail(
                f"{path}.party_history[{position}]", f"must be a JSON object, got {_kind(event)}"
            )


def _check_analysis(check: _Checker, analysis: Mapping[str, Any], path: str) -> None:
    for name in ("type", "vendor"):
        value = analysis.get(name)
        if not isinstance(value, str) or not value.strip():
            check.fail(
                f"{path}.{name}", f"is required and must be a non-empty string, got {_short(value)}"
            )
    check.index_lists(analysis, ("dialog",), path)
    check.texts(analysis, _ANALYSIS_TEXT, path)
    check.content(analysis, path)


def _check_attachment(check: _Checker, attachment: Mapping[str, Any], path: str) -> None:
    check.texts(attachment, _ATTACHMENT_TEXT, path)
    check.timestamp(attachment, "start", f"{path}.start")
    check.indexes(attachment, ("party", "dialog"), path)
    check.content(attachment, path)
    if attachment.get("type") == "tags":
        _check_tags_body(check, attachment.get("body"), f"{path}.body")


def _check_tags_body(check: _Checker, body: Any, path: str) -> None:
    import json

    if isinstance(body, str):
        if _LOOKS_LIKE_ARRAY.match(body):
            try:
                body = json.loads(body)
            except ValueError:
                check.fail(
                    path,
                    "looks like a JSON array but is not valid JSON; "
                    "vcon-mcp's tag index would fail to refresh",
                )
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    elif body is None:
        return
    else:
        text = json.dumps(body, ensure_ascii=False)
    if isinstance(body, list) and not all(isinstance(tag, str) for tag in body):
        check.fail(path, 'must be an array of "key:value" strings')
    if len(text.encode("utf-8")) > MAX_TAGS_BODY_BYTES:
        check.fail(
            path, f"is longer than {MAX_TAGS_BODY_BYTES} bytes, the limit of vcon-mcp's tag index"
        )


class _Checker:
    """Field checks that raise InvalidVconError for one vCon."""

    def __init__(self, vcon_uuid: str | None, max_body_bytes: int = 0) -> None:
        self.vcon_uuid = vcon_uuid
        self.max_body_bytes = max_body_bytes

    def fail(self, field: str, reason: str) -> NoReturn:
        raise InvalidVconError(self.vcon_uuid, field, reason)

    def each(
        self,
        document: Mapping[str, Any],
        name: str,
        check_item: Callable[[_Checker, Mapping[str, Any], str], None],
    ) -> None:
        items = document.get(name)
        if items is None:
            return
        if not isinstance(items, list):
            self.fail(name, f"must be an array, got {_kind(items)}")
        for index, item in enumerate(items):
            path = f"{name}[{index}]"
            if not isinstance(item, Mapping):
                self.fail(path, f"must be a JSON object, got {_kind(item)}")
            check_item(self, item, path)

    def optional(
        self, obj: Mapping[str, Any], name: str, path: str, kind: type, label: str
    ) -> None:
        value = obj.get(name)
        if value is not None and not isinstance(value, kind):
            self.fail(path, f"must be {label}, got {_kind(value)}")

    def text(self, obj: Mapping[str, Any], name: str, path: str, *, max_length: int = 0) -> None:
        value = obj.get(name)
        if value is None:
            return
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_kind(value)}")
        if max_length and len(value) > max_length:
            self.fail(path, f"must be at most {max_length} characters, got {len(value)}")

    # The plural checks build a field's path only to name it in a failure: most fields
    # are absent or right, and a document has dozens of them.

    def texts(self, obj: Mapping[str, Any], names: tuple[str, ...], path: str) -> None:
        """:meth:`text` of each of ``names`` (``{path}.{name}``)."""
        for name in names:
            value = obj.get(name)
            if value is not None and type(value) is not str:
                self.text(obj, name, f"{path}.{name}")

    def indexes(self, obj: Mapping[str, Any], names: tuple[str, ...], path: str) -> None:
        """:meth:`index` of each of ``names`` (``{path}.{name}``)."""
        for name in names:
            value = obj.get(name)
            if value is not None and not _is_index(value):
                self.index(obj, name, f"{path}.{name}")

    def index_lists(self, obj: Mapping[str, Any], names: tuple[str, ...], path: str) -> None:
        """:meth:`index_list` of each of ``names`` (``{path}.{name}``)."""
        for name in names:
            value = obj.get(name)
            if value is not None and not _is_index(value):
                self.index_list(obj, name, f"{path}.{name}")

    def choice(
        self,
        obj: Mapping[str, Any],
        name: str,
        path: str,
        allowed: frozenset[str],
        *,
        required: bool = False,
    ) -> None:
        """One of ``allowed`` (a string: any other value, even unhashable, is refused)."""
        value = obj.get(name)
        if value is None and not required:
            return
        if not isinstance(value, str) or value not in allowed:
            self.fail(path, f"must be one of {', '.join(sorted(allowed))}, got {_short(value)}")

    def text_list(self, obj: Mapping[str, Any], name: str, path: str) -> None:
        value = obj.get(name)
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(path, f"must be an array of strings, got {_short(value)}")

    def timestamp(self, obj: Mapping[str, Any], name: str, path: str) -> None:
        value = obj.get(name)
        if value is None:
            return
        if not isinstance(value, str):
            self.fail(path, f"must be an RFC 3339 date-time string, got {_kind(value)}")
        if not _RFC3339.fullmatch(value):
            self.fail(path, f"is not an RFC 3339 date-time: {_short(value)}")
        try:
            offset = datetime.fromisoformat(value).utcoffset()
        except ValueError:
            self.fail(path, f"is not an RFC 3339 date-time: {_short(value)}")
        if offset is not None and abs(offset) > _MAX_UTC_OFFSET:
            self.fail(
                path,
                f"has a UTC offset beyond PostgreSQL's range of -15:59 to +15:59: {_short(value)}",
            )

    def index(self, obj: Mapping[str, Any], name: str, path: str) -> None:
        value = obj.get(name)
        if value is not None and not _is_index(value):
            self.fail(path, f"must be a non-negative integer index, got {_short(value)}")

    def index_list(self, obj: Mapping[str, Any], name: str, path: str) -> None:
        value = obj.get(name)
        if value is None or _is_index(value):
            return
        if not isinstance(value, list):
            self.fail(path, f"must be an index or an array of indexes, got {_kind(value)}")
        for position, item in enumerate(value):
            if isinstance(item, list):
                self.fail(
                    f"{path}[{position}]",
                    "is a nested array; the database stores this field as integer[] (flatten it)",
                )
            if item is not None and not _is_index(item):
                self.fail(
                    f"{path}[{position}]",
                    f"must be a non-negative integer index, got {_short(item)}",
                )

    def content(self, obj: Mapping[str, Any], path: str) -> None:
        self.choice(obj, "encoding", f"{path}.encoding", ENCODINGS)
        encoding = obj.get("encoding")
        body = obj.get("body")
        if encoding == "base64url" and not isinstance(body, str | None):
            self.fail(f"{path}.body", "must be a string when encoding is base64url")
        if self.max_body_bytes and isinstance(body, str) and len(body) > self.max_body_bytes // 4:
            size = len(body.encode("utf-8", "surrogatepass"))
            if size > self.max_body_bytes:
                self.fail(
                    f"{path}.body",
                    f"is {size} bytes, more than max_body_bytes ({self.max_body_bytes}); "
                    "refer to large media by url instead of inlining it",
                )
        hashes = obj.get("content_hash")
        if hashes is not None and not (
            isinstance(hashes, str)
            or (isinstance(hashes, list) and all(isinstance(h, str) for h in hashes))
        ):
            self.fail(
                f"{path}.content_hash",
                f"must be a string or an array of strings, got {_short(hashes)}",
            )

    def walk(self, document: Mapping[str, Any]) -> None:
        """Reject what jsonb cannot store anywhere in the document, without recursion."""
        if plainly_storable(document):
            return  # the common case, without building a path per value
        stack: list[tuple[Any, str, int]] = [(document, "", 0)]
        while stack:
            value, path, depth = stack.pop()
            if isinstance(value, str):
                self._check_string(value, path or "(document)")
            elif isinstance(value, Mapping):
                if depth >= MAX_DEPTH:
                    self.fail(path, f"is nested deeper than {MAX_DEPTH} levels")
                for key, item in value.items():
                    if not isinstance(key, str):
                        self.fail(path or "(document)", f"has a non-string key {key!r}")
                    self._check_string(key, f"{path}.{key}" if path else key)
                    stack.append((item, f"{path}.{key}" if path else key, depth + 1))
            elif isinstance(value, list | tuple):
                if depth >= MAX_DEPTH:
                    self.fail(path, f"is nested deeper than {MAX_DEPTH} levels")
                stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
            elif isinstance(value, UnstorableNumber):
                self.fail(path, f"is {value.literal}: {value.reason}")
            elif isinstance(value, float) and not math.isfinite(value):
                self.fail(path, "is NaN or infinite, which JSON cannot represent")
            elif value is not None and not isinstance(value, bool | int | float):
                self.fail(path, f"is a {_kind(value)}, which JSON cannot represent")

    def _check_string(self, value: str, path: str) -> None:
        if "\x00" in value:
            self.fail(path, "contains a NUL character (\\u0000), which PostgreSQL cannot store")
        if not valid_unicode(value):
            self.fail(path, "contains a lone UTF-16 surrogate, which is not valid Unicode")


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a message must not forge log lines."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _as_real(value: float) -> float:
    """``value`` as PostgreSQL's ``real`` (single precision) holds it."""
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT4_MAX


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        tuple: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
