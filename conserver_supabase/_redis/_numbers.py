"""Which documents RedisJSON holds exactly: the numbers it would change.

RedisJSON (2.x, measured on 2.8 with Redis 8.2) keeps key order, strings, ``-0.0``, and
``1.0`` apart from ``1``, and prints every double it holds in its shortest round-trip
form. What it changes is in the parse:

* an integer outside ``[-2**63, 2**64 - 1]`` becomes a double (``2**70`` comes back
  ``1.1805916207174113e21``);
* a decimal number is parsed as its digits (an unsigned 64-bit integer) multiplied or
  divided by a power of ten held as a double, which is not always the nearest double:
  ``123456789.12345679`` comes back ``123456789.1234568``. The result is exact when the
  digits are below 2**53 and the power at most 22 (both exact, one rounding); beyond
  that it may be one unit off in the last place.

:func:`holds_exactly` runs that parse on the text :func:`json.dumps` writes for each
float (Python floats are the same IEEE doubles, multiplied and divided the same way),
so it says exactly which documents would come back different. It agreed with a real
RedisJSON on 20,000 random doubles, 3,089 of them changed (tests/acceptance/
test_exact_documents.py keeps a smaller sample of that check). Such a document is kept
out of RedisJSON keys as our answer: see the cache's ``exact`` flag (lua/write.lua).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["holds_exactly"]

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_EXACT_DIGITS: Final = 2**53
#: RedisJSON's table of powers of ten (Rust literals, the nearest doubles, as Python's).
_POW10: Final = tuple(float(f"1e{n}") for n in range(309))
_NUMBER: Final = re.compile(r"(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?")


def holds_exactly(document: Mapping[str, Any]) -> bool:
    """Whether RedisJSON gives ``document`` back with every number as it is."""
    # Containers on the stack, their values looked at by exact type first: most are
    # strings, passed over without a call (isinstance, below, for subclasses only).
    stack: list[Any] = [(document,)]
    while stack:
        container = stack.pop()
        for value in container.values() if type(container) is dict else container:
            kind = type(value)
            if kind is str or kind is bool or value is None:
                continue
            if kind is dict or kind is list:
                stack.append(value)
            elif kind is int:
                if not _INT_MIN <= value <= _INT_MAX:
                    return False
            elif kind is float:
                if not _float_kept(value):
                    return False
            elif not _subclass_kept(value, stack):
                return False
    return True


def _subclass_kept(value: Any, stack: list[Any]) -> bool:
    """:func:`holds_exactly` for a value not of an exact JSON type (a dict, list, float or
    int subclass is taken as its base; anything else, a tuple too, is passed over)."""
    if isinstance(value, dict | list):
        stack.append(value.values() if isinstance(value, dict) else value)
    elif isinstance(value, float):
        return _float_kept(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return _INT_MIN <= value <= _INT_MAX
    return True


def _float_kept(value: float) -> bool:
    text = repr(value)
    if len(text) <= 16 and "e" not in text and "n" not in text:
        # -?digits.digits (not inf, nan or an exponent): at most 15 digits (below
        # 2**53) and at most 14 after the point, the exact case below, without a parse.
        return True
    match = _NUMBER.fullmatch(text)
    if match is None:  # inf or nan: validation refuses them before any write
        return False
    sign, whole, fraction, exponent = match.groups()
    digits = int(whole + (fraction or ""))
    power = int(exponent or 0) - len(fraction or "")
    if digits < _EXACT_DIGITS and -22 <= power <= 22:
        return True  # both exact: one correctly rounded operation
    return _parsed(digits, power, negative=sign == "-") == value


def _parsed(digits: int, power: int, *, negative: bool) -> float:
    """The double RedisJSON's parser makes of ``digits * 10**power``."""
    parsed = float(digits)
    while True:
        if abs(power) < len(_POW10):
            parsed = parsed * _POW10[power] if power >= 0 else parsed / _POW10[-power]
            break
        if parsed == 0.0:
            break
        parsed /= 1e308  # the parser divides by 1e308 until the rest is in its table
        power += 308
    return -parsed if negative else parsed
