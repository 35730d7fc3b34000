"""holds_exactly without a server: the same answer as RedisJSON's rule applied to every
number (the rule itself is checked against a real RedisJSON in tests/acceptance/
test_exact_documents.py), with the common floats judged without parsing their text."""

from __future__ import annotations

import enum
import math
import random
import struct
from collections import OrderedDict, UserDict
from typing import Any

import pytest

from conserver_supabase._redis import _numbers
from conserver_supabase._redis._numbers import holds_exactly
from conserver_supabase._storable import UnstorableNumber


def rule(value: float) -> bool:
    """RedisJSON's parse of the shortest text of ``value``, step by step: the digits
    (an integer), the power of ten, one multiplication or division (the reference the
    fast paths must agree with)."""
    text = repr(value)
    if not math.isfinite(value):
        return False
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = int(whole + fraction)
    power = int(exponent or 0) - len(fraction)
    if digits < 2**53 and -22 <= power <= 22:
        return True
    return _numbers._parsed(digits, power, negative=text.startswith("-")) == value


def doubles(count: int) -> list[float]:
    """Random doubles of every magnitude, short decimals, and the boundaries of the
    exact case: 15, 16 and 17 digits, 2**53, powers of ten around 1e22, subnormals."""
    rng = random.Random(18)  # noqa: S311 - reproducible test values, no secret
    found = [struct.unpack("d", rng.randbytes(8))[0] for _ in range(count)]
    found += [round(rng.uniform(0, 10_000), rng.randint(0, 6)) for _ in range(count)]
    found += [rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) for _ in range(count)]
    edges = [2.0**53 + k for k in (-2, -1, 0, 1, 2)] + [2.0**49 * 10 + k for k in (-1, 0, 1)]
    edges += [float(f"1e{n}") for n in range(-25, 26)] + [5e-324, 2.2250738585072014e-308]
    edges += [123456789.12345679, 0.1 + 0.2, 1234567890123456.7, 123456789012345.6, 0.0, -0.0]
    return [v for v in found + edges + [-v for v in edges] if math.isfinite(v)]


class TestSameAnswerAsTheRule:
    def test_floats(self) -> None:
        """Every float, alone and among other values, gets the rule's answer."""
        values = doubles(3000)
        assert any(not rule(v) for v in values)
        assert any(rule(v) for v in values)
        for value in values:
            assert holds_exactly({"a": "text", "v": [1, True, None, {"x": value}]}) == rule(value)

    @pytest.mark.parametrize(
        ("value", "kept"),
        [
            (2**63 - 1, True),
            (2**64 - 1, True),
            (2**64, False),
            (-(2**63), True),
            (-(2**63) - 1, False),
            (True, True),
            (float("nan"), False),
            (float("inf"), False),
        ],
    )
    def test_integers_and_the_rest(self, value: Any, kept: bool) -> None:
        """Integers outside RedisJSON's 64-bit range, infinities and NaN are not kept."""
        assert holds_exactly({"v": value}) is kept
        assert holds_exactly({"v": [[{"w": value}]]}) is kept

    def test_subclasses_as_their_base_and_tuples_passed_over(self) -> None:
        """A dict, list, float or int subclass counts as its base type (an enum's value,
        an unstorable number's double); a tuple and a Mapping that is no dict are not
        looked into, as before."""

        class Big(enum.IntEnum):
            V = 2**65

        inner = 123456789.12345679  # RedisJSON gives back ...1234568
        assert not holds_exactly(OrderedDict(v=inner))
        assert not holds_exactly({"v": OrderedDict(w=[inner])})
        assert not holds_exactly({"v": type("L", (list,), {})([inner])})
        assert not holds_exactly({"v": Big.V})
        assert not holds_exactly({"v": UnstorableNumber("123456789.12345679", "test")})
        assert holds_exactly({"v": UnstorableNumber("1e-400", "test")})  # 0.0
        assert holds_exactly({"v": (inner,)})
        assert holds_exactly({"v": UserDict(w=inner)})
        assert holds_exactly(UserDict(w=inner))
        assert not holds_exactly([inner])  # type: ignore[arg-type]


def test_common_floats_are_judged_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float whose shortest text has at most 15 digits and no exponent (durations,
    confidences, amounts) is kept without its text being parsed (the regular expression
    and the integer arithmetic were most of holds_exactly's time on a bulk save)."""

    class Refuse:
        def fullmatch(self, text: str) -> None:
            raise AssertionError(f"parsed {text}")

    monkeypatch.setattr(_numbers, "_NUMBER", Refuse())
    document = {"duration": 330.5, "confidence": 0.93, "n": [-1234.56, 0.0, -0.0, 1e14 - 1]}
    assert holds_exactly(document)
    assert holds_exactly({"v": 12345678901234.5})  # 15 digits
    with pytest.raises(AssertionError, match="parsed"):
        holds_exactly({"v": 123456789012345.67})  # 17 digits: the rule's full path
