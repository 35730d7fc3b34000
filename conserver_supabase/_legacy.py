"""The older vCon shapes: reads handed out in the 0.0.1 shape (``egress_format_version``).

The conserver normalizes every vCon to the current spec (``vcon: "0.4.0"``) and, for
consumers built against the old schema, its egress points can hand out the 0.0.1 shape
instead (vcon-server's ``lib/vcon_egress_compat.py``, ``to_legacy``). :func:`to_legacy`
here produces the same output for the same input, key order included (checked against
theirs on a corpus, ``tests/data/legacy/``): vcon-server's converter is the reference,
this is our own implementation of it.

What it does, on a copy (the vCon read, from the cache or the database, is not touched,
and nothing stored or cached changes):

* top level: ``amended`` -> ``appended``, ``critical`` -> ``must_support``;
* dialog and analysis entries: ``schema`` -> ``schema_version``, ``mediatype`` ->
  ``mimetype``, ``critical`` -> ``must_support``; attachments the same, then ``purpose``
  -> ``type`` where the attachment has no ``type`` (with both, as ``lawful_basis``
  attachments have, both stay);
* a rename moves the key to the end of its object; where the old name is there too, the
  old name's value stays and the new name is dropped (``purpose`` aside, above);
* analysis and attachment bodies that are JSON text with ``encoding: "json"`` become the
  JSON value with ``encoding: "none"`` (a body that does not parse stays as it is);
* ``group: []``, ``redacted: {}`` and ``appended: null`` are added at the end where
  missing, then ``vcon`` is set to the target version (in its place, else at the end).

The save side needs nothing from here: documents are stored as given, and the row
mapping reads the old names (``sql/functions/conserver_vcon_write.sql``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from ._errors import ConfigurationError

__all__ = ["EGRESS_FORMAT_VERSIONS", "check_version", "egress_version", "to_legacy"]

#: The older shapes a read can be handed out in.
EGRESS_FORMAT_VERSIONS: Final = ("0.0.1",)

_OPTION: Final = "egress_format_version"
# current name -> 0.0.1 name, in the order vcon-server's converter applies them (a
# rename appends the key, so the order is the output's key order).
_TOP: Final = (("amended", "appended"), ("critical", "must_support"))
_ENTRY: Final = (
    ("schema", "schema_version"),
    ("mediatype", "mimetype"),
    ("critical", "must_support"),
)
# 0.0.1 always carries these top-level keys; the current library leaves empty ones out.
_ALWAYS: Final[tuple[tuple[str, Any], ...]] = (("group", []), ("redacted", {}), ("appended", None))


def check_version(value: Any, option: str = _OPTION) -> str | None:
    """``value`` as an egress format version (``None``: the current shape); raise
    :class:`ConfigurationError` naming ``option`` for anything else."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in EGRESS_FORMAT_VERSIONS:
        return value.strip()
    raise ConfigurationError(
        f"option {option!r} must be one of {', '.join(EGRESS_FORMAT_VERSIONS)} "
        f"(or unset, for the current shape), got {value!r}",
        option=option,
    )


def egress_version(given: Any, configured: str | None) -> str | None:
    """The version a read hands out: the call's ``egress_format_version`` when given,
    else the storage's option (``None``: the vCon as read)."""
    return configured if given is None else check_version(given)


def to_legacy(vcon: Any, version: str) -> Any:
    """A copy of ``vcon`` in the ``version`` shape (see the module docstring); anything
    but a dict is returned as it is."""
    check_version(version)
    if not isinstance(vcon, dict):
        return vcon
    out = _renamed(vcon, _TOP)
    for name, convert in _ARRAYS:
        entries = out.get(name)
        if isinstance(entries, list):
            out[name] = [convert(e) if isinstance(e, dict) else e for e in entries]
    for name, empty in _ALWAYS:
        if name not in out:
            out[name] = copy.copy(empty)
    out["vcon"] = version
    return out


def _dialog(entry: Mapping[str, Any]) -> dict[str, Any]:
    return _renamed(entry, _ENTRY)  # its body is never JSON text the conserver made


def _analysis(entry: Mapping[str, Any]) -> dict[str, Any]:
    return _inflated(_renamed(entry, _ENTRY))


def _attachment(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = _renamed(entry, _ENTRY)
    if "type" not in out and "purpose" in out:  # with both (lawful_basis), both stay
        out["type"] = out.pop("purpose")
    return _inflated(out)


_ARRAYS: Final = (("dialog", _dialog), ("analysis", _analysis), ("attachments", _attachment))


def _renamed(obj: Mapping[str, Any], renames: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A deep copy of ``obj`` with each current name present moved to its old name at the
    end, in ``renames`` order (dropped where the old name is present)."""
    moving = [(new, old) for new, old in renames if new in obj]
    skip = {new for new, _ in moving}
    out = {key: copy.deepcopy(value) for key, value in obj.items() if key not in skip}
    for new, old in moving:
        if old not in obj:
            out[old] = copy.deepcopy(obj[new])
    return out


def _inflated(entry: dict[str, Any]) -> dict[str, Any]:
    """A JSON-text body with ``encoding: "json"`` as its value with ``encoding: "none"``
    (in place: both keys keep their position)."""
    body = entry.get("body")
    if entry.get("encoding") == "json" and isinstance(body, str):
        try:
            entry["body"] = json.loads(body)
        except ValueError:  # not JSON: left as it is
            return entry
        entry["encoding"] = "none"
    return entry
