"""What callers hand in as a vCon, turned into the document the storage keeps, and the
JSON text it is written as (to the database, the cache and the journal).

The text is the one the caller gave when it gave JSON text (its key order, the spelling
of its numbers and its escapes are kept: the database returns it as it is), else
:func:`dumps` of the document, which Python's own parser turns back into an equal dict
(same key order, same int and float values, ``-0.0`` included).

JSON text with a name twice in one object is refused: RFC 8259 leaves which one counts
to the parser (Python and PostgreSQL's jsonb keep the last, others the first), so the
storage cannot know which vCon the sender meant, least of all with two ``uuid`` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ._errors import InvalidVconError
from ._library import document_of
from ._storable import UnstorableNumber
from ._validation import is_uuid, validate_vcon

__all__ = ["DuplicateKeyError", "as_document", "document_and_text", "dumps", "loads"]


class DuplicateKeyError(ValueError):
    """JSON text with a name given twice in one object."""

    def __init__(self, name: str, values: list[Any]) -> None:
        # Values can be personal data: only uuids are shown (which vCons were meant).
        shown = f" ({', '.join(_short(v) for v in values[:3])})" if name == "uuid" else ""
        super().__init__(f"{name!r} appears {len(values)} times in one object{shown}")
        self.name = name


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSON text as :func:`json.loads` does, refusing a name twice in one object
    (:class:`DuplicateKeyError`), and marking a number the database cannot keep as given
    (:class:`~._storable.UnstorableNumber`) for validation to refuse by its path: the
    database keeps the text, and parses it."""
    return json.loads(text, object_pairs_hook=_unique_names, parse_float=_number)


#: PostgreSQL's numeric keeps at most this many digits after the decimal point.
_MAX_SCALE: Final = 16383


def _number(literal: str) -> float:
    number = float(literal)
    mantissa, _, exponent = literal.lower().partition("e")
    fraction = mantissa.partition(".")[2]
    if len(fraction) - int(exponent or 0) > _MAX_SCALE:
        return UnstorableNumber(
            literal,
            f"more than {_MAX_SCALE:,} digits after the decimal point, more than the "
            "database's numeric type holds; write it with fewer",
        )
    if number == 0.0 and any(c in "123456789" for c in mantissa):
        return UnstorableNumber(
            literal,
            "too small for a double: it would read back as 0 (and the database refuses it "
            "in a numeric column); write 0",
        )
    return number


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise DuplicateKeyError(twice, [value for name, value in pairs if name == twice])
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def document_and_text(vcon: Any) -> tuple[dict[str, Any], str]:
    """:func:`as_document`, with the JSON text the vCon is saved as: the text given
    (JSON text in UTF-8 when bytes), else :func:`dumps` of the document."""
    document = as_document(vcon)
    if isinstance(vcon, str):
        return document, vcon
    if isinstance(vcon, bytes | bytearray):
        try:  # the text json.loads read: a UTF-8 byte order mark is not part of it
            return document, bytes(vcon).decode("utf-8-sig")
        except UnicodeDecodeError:  # UTF-16 or UTF-32 JSON, which json.loads takes too
            pass
    try:
        return document, dumps(document)
    except (TypeError, ValueError, RecursionError):
        # A value JSON cannot hold (an object, a cycle, nesting without end): validation
        # refuses it naming its field, where dumps would only say that it failed.
        validate_vcon(document)
        raise


def as_document(vcon: Any) -> dict[str, Any]:
    """Turn what callers pass (dict, JSON text, an object with ``to_dict()``) into a dict,
    never a copy of a copy: a dict is used as is and never modified."""
    if isinstance(vcon, dict):
        return vcon
    if isinstance(vcon, Mapping):
        return dict(vcon)
    if isinstance(vcon, str | bytes | bytearray):
        try:
            document = loads(vcon)
        except DuplicateKeyError as exc:
            raise InvalidVconError(
                _uuid_of(vcon) if exc.name != "uuid" else None,
                exc.name,
                f"{exc}: refused, since which one counts depends on the JSON parser",
            ) from None
        except (ValueError, RecursionError) as exc:
            raise InvalidVconError(None, "(document)", f"is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidVconError(
                None, "(document)", f"must be a JSON object, got {type(document).__name__}"
            )
        return document
    return document_of(vcon)  # vcon.Vcon, the conserver's Vcon: see _library


def _uuid_of(text: str | bytes | bytearray) -> str | None:
    """The uuid a JSON text names at its top level, for an error message (or None)."""
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        return None
    value = found.get("uuid") if isinstance(found, dict) else None
    return value if isinstance(value, str) and is_uuid(value) else None


def dumps(document: Mapping[str, Any]) -> str:
    """The JSON text of a document, as the cache and the journal keep it."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
