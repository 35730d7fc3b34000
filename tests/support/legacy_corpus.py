"""The corpus of the legacy-shape tests (issue 17): vCons in the current shape (ours and
the shape the conserver writes: JSON-text bodies with ``encoding: "json"``, ``purpose``
attachments, ``lawful_basis`` attachments with both ``type`` and ``purpose``) and in the
0.0.1 shape (``appended``, ``must_support``, ``mimetype``, ``schema_version``, ``type``
attachments, native bodies with ``encoding: "none"``), with fixed uuids.

``scripts/legacy_expected.py`` runs vcon-server's own converters on each (plus the
conserver's older-shape example vCons) and writes ``tests/data/legacy/*.json``; the tests
read only those files.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .vcons import SAMPLES, rich_vcon, sample

_NS = uuid.UUID("6f1c3a52-9d0e-4b7a-8c51-3e2f0a9b7d14")


def fixed_uuid(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def _rich() -> dict[str, Any]:
    """The rich vCon with fixed uuids and its two large bodies shortened (their size is
    not what the shapes are about)."""
    document = rich_vcon(fixed_uuid("rich"))
    for key, name in (("redacted", "rich-redacted"), ("amended", "rich-amended")):
        document[key]["uuid"] = fixed_uuid(name)
    document["group"][0]["uuid"] = fixed_uuid("rich-group")
    document["dialog"][0]["body"] = document["dialog"][0]["body"][:64]
    document["dialog"][1]["body"] = document["dialog"][1]["body"][:40]
    return document


_CONSERVER: dict[str, Any] = {
    # What the conserver's VconRedis writes: spec 0.4.0 names, dict/list analysis and
    # attachment bodies as JSON text with encoding json.
    "vcon": "0.4.0",
    "created_at": "2026-06-05T00:00:00+00:00",
    "subject": None,
    "amended": {"uuid": "0190a0e0-0000-8000-8000-000000000001"},
    "critical": ["lawful_basis"],
    "parties": [{"tel": "+15551234567", "name": "Alice", "role": "customer"}],
    "dialog": [
        {"type": "recording", "start": "2026-06-05T00:00:00+00:00", "parties": [0],
         "mediatype": "audio/wav", "url": "https://example.com/a.wav", "critical": ["x"]},
        {"type": "text", "start": "2026-06-05T00:01:00+00:00", "parties": [0],
         "body": "{\"dialog\": \"bodies stay\"}", "encoding": "json"},
    ],
    "analysis": [
        {"type": "summary", "dialog": 0, "vendor": "openai", "body": "a summary",
         "encoding": "none", "schema": "v1"},
        {"type": "transcript", "dialog": [0], "vendor": "deepgram", "encoding": "json",
         "body": "{\"results\": {\"channels\": [{\"alternatives\": []}]}, \"n\": 1.5}"},
        {"type": "labels", "vendor": "acme", "encoding": "json", "body": "[1, \"two\", null]"},
        {"type": "score", "vendor": "acme", "encoding": "json", "body": "42"},
        {"type": "quoted", "vendor": "acme", "encoding": "json", "body": "\"text\""},
        {"type": "broken", "vendor": "acme", "encoding": "json", "body": "{not json"},
        {"type": "native", "vendor": "acme", "encoding": "json", "body": {"already": "a value"}},
    ],
    "attachments": [
        {"purpose": "tags", "body": "[\"category:billing\", \"priority:high\"]",
         "encoding": "json"},
        {"type": "lawful_basis", "body": "consent", "encoding": "none"},
        {"type": "lawful_basis", "purpose": "consent-record", "encoding": "json",
         "body": "{\"basis\": \"consent\"}", "mediatype": "application/json"},
        {"purpose": "transcript-pdf", "mediatype": "application/pdf", "encoding": "base64url",
         "body": "JVBERi0xLjQK", "dialog": 0},
    ],
}  # fmt: skip

_LEGACY: dict[str, Any] = {
    # The 0.0.1 shape, by hand: old names everywhere, native bodies with encoding none.
    "uuid": "",
    "vcon": "0.0.1",
    "created_at": "2024-12-18T19:08:45.431621+00:00",
    "redacted": {},
    "group": [],
    "appended": {"uuid": "0190a0e0-0000-8000-8000-000000000002"},
    "must_support": ["x-legacy"],
    "parties": [{"tel": "+14286315464", "name": "Walter", "meta": {"role": "agent"}},
                {"mailto": "tiffany@example.com", "name": "Tiffany"}],
    "dialog": [
        {"type": "recording", "start": "2024-12-18T14:08:44.685843", "duration": 50.784,
         "parties": [0, 1], "mimetype": "audio/mp3", "filename": "call.mp3",
         "url": "https://example.com/call.mp3", "alg": "sha256", "signature": "abc",
         "must_support": ["x-sig"], "schema_version": "1"},
        {"type": "text", "start": "2024-12-18T14:09:00Z", "parties": [1], "originator": 1,
         "mimetype": "text/plain", "body": "hello", "encoding": "none"},
    ],
    "analysis": [
        {"type": "transcript", "dialog": 0, "vendor": "openai", "encoding": "none",
         "body": [{"speaker": 0, "text": "hi"}], "schema_version": "whisper-1",
         "mimetype": "application/json", "vendor_schema": {"model": "whisper-1"}},
        {"type": "summary", "dialog": 0, "vendor": "openai", "encoding": "none",
         "body": {"summary": "a call", "score": 0.25}, "must_support": ["x-summary"]},
    ],
    "attachments": [
        {"type": "tags", "encoding": "none", "body": ["category:billing", "priority:low"]},
        {"type": "generation_info", "encoding": "none", "body": {"agent_name": "Walter"},
         "mimetype": "application/json"},
        {"purpose": "note", "body": "a purpose without a type", "encoding": "none"},
    ],
}  # fmt: skip

_BOTH_NAMES: dict[str, Any] = {
    # The old and the new name side by side: vcon-server's normalizer keeps the new
    # name's value, its egress converter the old name's.
    "uuid": "",
    "vcon": "0.4.0",
    "created_at": "2026-06-05T00:00:00Z",
    "amended": {"uuid": "0190a0e0-0000-8000-8000-000000000003"},
    "appended": {"uuid": "0190a0e0-0000-8000-8000-000000000004"},
    "critical": ["x-new"],
    "must_support": ["x-old"],
    "dialog": [{"type": "recording", "start": "2026-06-05T00:00:00Z", "parties": [0],
                "mediatype": "audio/wav", "mimetype": "audio/x-wav"}],
    "parties": [{"name": "Bob"}],
    "analysis": [{"type": "summary", "vendor": "acme", "schema": "s-new",
                  "schema_version": "s-old", "mediatype": "text/plain", "mimetype": "text/x",
                  "body": "s", "encoding": "none"}],
    "attachments": [{"type": "lawful_basis", "purpose": "retention", "mediatype": "a/b",
                     "mimetype": "a/c", "body": "{\"days\": 30}", "encoding": "json"}],
}  # fmt: skip


def inputs() -> dict[str, dict[str, Any]]:
    """name -> input vCon, in the current and the old shapes (fixed uuids)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(SAMPLES.glob("*.json")):
        out[f"sample-{path.stem}"] = sample(path.stem, fixed_uuid(path.stem))
    out["rich"] = _rich()
    for name, document in (("conserver-0.4.0", _CONSERVER), ("legacy-0.0.1", _LEGACY),
                           ("both-names", _BOTH_NAMES)):  # fmt: skip
        out[name] = {"uuid": fixed_uuid(name), **copy.deepcopy(document)}
        out[name]["uuid"] = fixed_uuid(name)
    out["minimal"] = {"uuid": fixed_uuid("minimal")}
    return out
