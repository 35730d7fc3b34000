"""vCon documents for tests: the shipped samples and a deliberately rich one."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def new_uuid() -> str:
    return str(uuid.uuid4())


def sample(name: str = "01-siprec-billing-dispute", vcon_uuid: str | None = None) -> dict[str, Any]:
    """A sample vCon from tests/data/samples with a fresh (or the given) uuid."""
    document: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    document["uuid"] = vcon_uuid or str(uuid.uuid4())
    return document


def all_samples() -> list[dict[str, Any]]:
    return [sample(path.stem) for path in sorted(SAMPLES.glob("*.json"))]


_RECORDING = base64.urlsafe_b64encode(bytes(range(256)) * 64).decode().rstrip("=")
#: The rich vCon; :func:`rich_vcon` fills in its uuids.
_RICH: dict[str, Any] = {
    "vcon": "0.4.0",
    "uuid": "",  # each call: the given uuid or a new one
    "created_at": "2026-03-06T09:15:00.123456+00:00",
    "updated_at": "2026-03-06T09:20:00+00:00",
    "subject": "Réclamation 🧾 — فاتورة مزدوجة (double bill)",
    "extensions": ["CC", "x-acme"],
    "critical": ["x-acme"],
    "redacted": {"uuid": "", "type": "pii"},  # each call: a new uuid
    "amended": {"uuid": ""},  # each call: a new uuid
    "group": [{"uuid": ""}],  # each call: a new uuid
    "meta": {"source": "siprec", "nested": {"deep": [1, 2.5, None, True]}},
    "x_unknown_top_level": "kept as is",
    "parties": [
        {
            "tel": "+15551234567",
            "name": "Sarah Johnson",
            "meta": {"role": "customer"},
            "jcard": ["vcard", [["version", {}, "text", "4.0"]]],
            "timezone": "America/New_York",
        },
        {
            "mailto": "agent@example.com",
            "name": "وكيل الدعم",
            "uuid": "usr-teams-001",
            "civicaddress": {"country": "US", "a1": "NJ"},
            "role": "agent",
        },
    ],
    "dialog": [
        {
            "type": "recording",
            "start": "2026-03-06T09:15:00Z",
            "duration": 342.5,
            "parties": [0, 1],
            "originator": 0,
            "mediatype": "audio/x-wav",
            "filename": "call.wav",
            "body": _RECORDING,
            "encoding": "base64url",
            "content_hash": ["sha512-abc", "sha256-def"],
            "session_id": {"local": "a", "remote": "b"},
            "party_history": [{"party": 1, "time": "2026-03-06T09:16:00Z", "event": "join"}],
        },
        {
            "type": "text",
            "start": "2026-03-06T09:20:00Z",
            "parties": 1,
            "originator": 1,
            "mediatype": "text/plain",
            "body": "שלום! Hello 👋 " + "long text " * 5000,
            "encoding": "none",
            "application": "chat",
            "message_id": "<m1@example.com>",
        },
        {
            "type": "transfer",
            "start": "2026-03-06T09:25:00Z",
            "transferee": 0,
            "transferor": 1,
            "transfer_target": [1],
            "original": [0],
            "consultation": [1],
            "target_dialog": [1],
        },
        {
            "type": "incomplete",
            "start": "2026-03-06T09:30:00Z",
            "parties": [0],
            "disposition": "no-answer",
        },
    ],
    "analysis": [
        {
            "type": "transcript",
            "dialog": 0,
            "vendor": "deepgram",
            "product": "nova-3",
            "schema": "deepgram_prerecorded",
            "encoding": "json",
            "body": {"results": {"channels": [{"alternatives": [{"transcript": "hi"}]}]}},
        },
        {
            "type": "summary",
            "dialog": [0, 1],
            "vendor": "openai",
            "encoding": "none",
            "body": "Customer disputes a double charge. 😀",
        },
        {
            "type": "sentiment",
            "vendor": "acme",
            "body": '{"score": 0.8}',
            "encoding": "json",
        },
    ],
    "attachments": [
        {"type": "tags", "encoding": "json", "body": ["category:billing", "priority:high"]},
        {
            "purpose": "transcript-pdf",
            "start": "2026-03-06T09:40:00Z",
            "party": 0,
            "dialog": 0,
            "mediatype": "application/pdf",
            "filename": "t.pdf",
            "encoding": "base64url",
            "body": "JVBERi0xLjQK",
        },
        {"type": "tenant", "encoding": "json", "body": {"id": "acme"}},
    ],
}


def rich_vcon(vcon_uuid: str | None = None) -> dict[str, Any]:
    """A vCon that uses every top-level field and the awkward corners of the spec."""
    document = copy.deepcopy(_RICH)
    document["uuid"] = vcon_uuid or new_uuid()
    document["redacted"]["uuid"] = new_uuid()
    document["amended"]["uuid"] = new_uuid()
    document["group"][0]["uuid"] = new_uuid()
    return document
