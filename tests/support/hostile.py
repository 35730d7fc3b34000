"""Hypothesis strategies for hostile vCons: a valid vCon with a few of its fields (any
field the package or vcon-mcp's tables look at, and some they do not) replaced by any
JSON value, a timestamp-shaped string out of range, an edge of a number type, or taken
out. Used by the property tests of tests/unit and tests/acceptance.

The examples are derandomized with a fixed budget (``SETTINGS``), so CI runs the same
cases every time.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conserver_supabase.testing import make_vcon

__all__ = ["SETTINGS", "hostile_texts", "hostile_vcons"]

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Where a value can be put: (path to the object, key). The base vCon has two parties,
#: three dialogs, analysis and attachments, so the indexes exist.
FIELDS: tuple[tuple[tuple[str | int, ...], str], ...] = (
    *(((), key) for key in ("vcon", "uuid", "created_at", "updated_at", "subject")),
    *(((), key) for key in ("extensions", "critical", "redacted", "amended", "group", "meta")),
    *((("parties", 0), key) for key in ("tel", "name", "mailto", "uuid", "civicaddress", "meta")),
    *(
        (("dialog", 0), key)
        for key in (
            "type",
            "start",
            "duration",
            "parties",
            "originator",
            "mediatype",
            "body",
            "encoding",
            "session_id",
            "content_hash",
            "transfer_target",
            "party_history",
        )
    ),
    *(
        (("analysis", 0), key)
        for key in ("type", "vendor", "dialog", "body", "encoding", "product", "schema")
    ),
    *(
        (("attachments", 0), key)
        for key in ("type", "purpose", "start", "party", "dialog", "body", "encoding")
    ),
)

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.text(max_size=6)
_NUMBERS = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
    | st.sampled_from([0, -0.0, 5e-324, 1e-45, 7e-46, 1.2e-38, 3.4e38, 3.5e38, 2**31, 2**31 - 1])
)
_SCALARS = st.none() | st.booleans() | _NUMBERS | _TEXT
JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=8,
)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 lookalikes, each part possibly out of its range."""
    year = draw(st.integers(0, 10000))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    text = f"{year:04d}-{month:02d}-{day:02d}{draw(st.sampled_from('Tt '))}{hour:02d}:{minute:02d}"
    if draw(st.booleans()):
        text += f":{second:02d}"
        if draw(st.booleans()):
            text += "." + "".join(
                draw(st.lists(st.sampled_from("0123456789"), min_size=1, max_size=10))
            )
    zone = draw(st.sampled_from(["", "Z", "z", "offset", "short"]))
    if zone in ("offset", "short"):
        sign = draw(st.sampled_from("+-"))
        hours, minutes = draw(st.integers(0, 25)), draw(st.integers(0, 61))
        text += f"{sign}{hours:02d}" + ("" if zone == "short" else f":{minutes:02d}")
    else:
        text += zone
    return text


#: A field taken out of its object.
MISSING: Any = object()
_VALUES = JSON | timestamps() | st.just(MISSING)


@st.composite
def hostile_vcons(draw: st.DrawFn) -> dict[str, Any]:
    """A generated vCon with one to three fields replaced (or removed)."""
    document = copy.deepcopy(make_vcon(seed=draw(st.integers(0, 50))))
    document.setdefault("attachments", [])
    if not document["attachments"]:
        document["attachments"].append({"type": "note", "encoding": "none", "body": "x"})
    for _ in range(draw(st.integers(1, 3))):
        path, key = draw(st.sampled_from(FIELDS))
        target: Any = document
        for step in path:
            target = target[step]
        value = draw(_VALUES)
        if value is MISSING:
            target.pop(key, None)
        else:
            target[key] = value
    return document


@st.composite
def hostile_texts(draw: st.DrawFn) -> str:
    """JSON text of a hostile vCon, sometimes with a name given twice or cut short."""
    document = draw(hostile_vcons())
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    twist = draw(st.sampled_from(["none", "duplicate", "cut"]))
    if twist == "duplicate":
        key = draw(st.sampled_from(["uuid", "subject", "vcon", "dialog"]))
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(draw(_SCALARS))}}}"
    elif twist == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text
