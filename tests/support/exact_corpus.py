"""vCons as JSON text whose spelling a JSON layer could change: key orders, numbers,
escapes and unicode (issue 17). Each text has a ``{uuid}`` placeholder.

Numbers sit where any JSON value is allowed (an extension's object, an analysis body
given as an object, party and dialog ``meta``), so every one is valid for validation;
the ones RedisJSON cannot hold exactly are marked ``inexact``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

__all__ = ["CORPUS", "Case", "text_of"]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    template: str
    #: RedisJSON gives at least one of its numbers back different.
    inexact: bool = False


def _vcon(extra: str, *, head: str = "") -> str:
    """A small valid vCon around ``extra`` (members of the top-level object)."""
    return (
        '{"vcon":"0.4.0",' + head + '"uuid":"{uuid}","created_at":"2026-01-02T03:04:05+00:00",'
        '"parties":[{"tel":"+15551230000","name":"A"}],' + extra + "}"
    )


CORPUS: tuple[Case, ...] = (
    Case(
        "key order",
        '{"uuid":"{uuid}","zeta":1,"vcon":"0.4.0","alpha":{"z":1,"a":2,"m":{"y":0,"b":1}},'
        '"created_at":"2026-01-02T03:04:05+00:00","parties":[{"name":"A","tel":"+15551230000"}],'
        '"dialog":[{"type":"text","start":"2026-01-02T03:04:05+00:00","parties":[0],'
        '"body":"hi","mediatype":"text/plain","encoding":"none"}]}',
    ),
    Case("1e16", _vcon('"x_n":{"big":1e16,"bigger":1E16,"plus":1e+16}')),
    Case("1e308", _vcon('"x_n":{"max":1e308,"near":1.7976931348623157e308}')),
    Case("negative zero", _vcon('"x_n":{"nz":-0.0,"z":0,"zf":0.0,"nzi":-0}')),
    Case("5e-324", _vcon('"x_n":{"tiny":5e-324,"min_normal":2.2250738585072014e-308}')),
    Case(
        "17-digit doubles",
        _vcon('"x_n":{"a":123456789.12345679,"b":0.30000000000000004,"c":1234567890123456.7}'),
        inexact=True,
    ),
    Case(
        "integers beyond int64",
        _vcon('"x_n":{"two_70":1180591620717411303424,"below":-9223372036854775809}'),
        inexact=True,
    ),
    Case(
        "integer edges RedisJSON keeps",
        _vcon(
            '"x_n":{"i64max":9223372036854775807,"i64min":-9223372036854775808,'
            '"u64max":18446744073709551615}'
        ),
    ),
    Case("1.0 and 1", _vcon('"x_n":{"f":1.0,"i":1,"e":1E5,"trail":10.50,"list":[1,1.0,-1,-1.0]}')),
    Case(
        "escapes",
        _vcon(
            '"subject":"caf\\u00e9 \\/ \\"q\\" \\\\ \\b\\f\\n\\r\\t \\u2028 \\ud83d\\ude00",'
            '"x_s":{"ctl":"\\u001f","slash":"a/b","esc_slash":"a\\/b"}'
        ),
    ),
    Case(
        "unicode as is",
        _vcon('"subject":"Réclamation 🧾 — فاتورة مزدوجة"," spaced key ":"v","":"empty key"'),
    ),
    Case(
        "whitespace",
        '{\n  "vcon" : "0.4.0",\n  "uuid" : "{uuid}",\n  "created_at": "2026-01-02T03:04:05+00:00",'
        '\n  "parties" : [ { "tel" : "+15551230000" } ],\n  "x" : [ 1 , 2.50 , { "k" : null } ]\n}',
    ),
    Case(
        "numbers in an analysis body",
        _vcon(
            '"dialog":[{"type":"text","start":"2026-01-02T03:04:05+00:00","parties":[0],'
            '"body":"hi","mediatype":"text/plain","encoding":"none","duration":1.5}],'
            '"analysis":[{"type":"summary","dialog":[0],"vendor":"v","encoding":"none",'
            '"body":{"score":0.1,"n":1e16,"z":-0.0,"order":{"b":1,"a":2}}}]'
        ),
    ),
    Case(
        "meta with 17 digits",
        _vcon('"x_n":{"pi":3.141592653589793,"e":2.718281828459045,"odd":0.1234567890123456789}'),
        inexact=False,
    ),
)


def text_of(case: Case, vcon_uuid: str | None = None) -> str:
    """The case's text with a uuid (a new one unless given)."""
    return case.template.replace("{uuid}", vcon_uuid or str(uuid.uuid4()))


def exact_form(text: str) -> str:
    """What Python's parser makes of ``text``, written back: the same key order, the
    same int and float values. Equal for two texts iff they hold the same document."""
    return json.dumps(json.loads(text), ensure_ascii=False)
