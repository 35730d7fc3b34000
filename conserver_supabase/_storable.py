"""What PostgreSQL cannot store anywhere in a vCon document, whatever its field: a NUL
character or a lone surrogate in a string or a name, NaN or infinity, a number it cannot
keep as given (:class:`UnstorableNumber`), nesting deeper than :data:`MAX_DEPTH`.

:func:`plainly_storable` is the quick pass over a plain document (dicts, lists, strings,
numbers): it runs on every save and keeps no paths. When it says no, validation's full
pass (``_validation``) finds the field and names it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MAX_DEPTH", "UnstorableNumber", "plainly_storable", "valid_unicode"]

#: Deepest nesting of objects and arrays accepted anywhere in a document.
MAX_DEPTH: Final = 64


class UnstorableNumber(float):
    """A number in JSON text that Python reads but the database cannot keep as given:
    not zero but too small for a double (``1e-400``, read as 0.0), or with more digits
    after the decimal point than PostgreSQL's numeric holds (``0e-400000``). What
    Python's parser makes of it, marked by ``_documents.loads`` so that validation
    refuses it by its path."""

    __slots__ = ("literal", "reason")
    literal: str
    reason: str

    def __new__(cls, literal: str, reason: str) -> UnstorableNumber:
        number = super().__new__(cls, literal)
        number.literal = literal if len(literal) <= 40 else literal[:37] + "..."
        number.reason = reason
        return number


def plainly_storable(document: Mapping[str, Any]) -> bool:
    """True when ``document`` is plain JSON (dicts with string keys, lists, strings
    without NUL or lone surrogates, finite numbers, booleans, null) within MAX_DEPTH.

    A fast pass that keeps no paths: False sends the document to validation's full pass
    (``_Checker.walk`` in ``_validation``), which names the offending field (and accepts
    the mappings and tuples this one does not look into). Strings are checked inline,
    without a call per string (a document holds hundreds).
    """
    valid = valid_unicode
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return False
        if type(value) is dict:
            for key in value:
                if type(key) is not str or "\x00" in key or not (key.isascii() or valid(key)):
                    return False
            items: Any = value.values()
        else:
            items = value
        for item in items:
            kind = type(item)
            if kind is str:
                if "\x00" in item or not (item.isascii() or valid(item)):
                    return False
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif not (kind is int or kind is bool or item is None):
                return False
    return True


def valid_unicode(text: str) -> bool:
    """Whether ``text`` has no lone surrogate (U+D800 to U+DFFF: what UTF-8 cannot encode).
    Not a regular expression: with ``in`` and isascii() before it, a string costs
    microseconds where a character class scan took milliseconds on a 1 MiB recording."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
