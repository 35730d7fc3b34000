"""What callers hand in as a vCon, turned into the document the storage keeps, and the
JSON text it is written as (to the cache and the journal)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidVconError

__all__ = ["as_document", "dumps"]


def as_document(vcon: Any) -> dict[str, Any]:
    """Turn what callers pass (dict, JSON text, an object with ``to_dict()``) into a dict,
    never a copy of a copy: a dict is used as is and never modified."""
    if isinstance(vcon, dict):
        return vcon
    if isinstance(vcon, Mapping):
        return dict(vcon)
    if isinstance(vcon, str | bytes | bytearray):
        try:
            document = json.loads(vcon)
        except (ValueError, RecursionError) as exc:
            raise InvalidVconError(None, "(document)", f"is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidVconError(
                None, "(document)", f"must be a JSON object, got {type(document).__name__}"
            )
        return document
    to_dict = getattr(vcon, "to_dict", None)
    if callable(to_dict):
        document = to_dict()
        if isinstance(document, dict):
            return document
    raise InvalidVconError(
        None,
        "(document)",
        "must be a dict, JSON text or an object with to_dict(), "
        f"got {type(vcon).__module__}.{type(vcon).__qualname__}",
    )


def dumps(document: Mapping[str, Any]) -> str:
    """The JSON text of a document, as the cache and the journal keep it."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
