"""A varied corpus of valid vCons for the search tests.

:func:`make_corpus` builds the documents; the oracle (tests/support/search_oracle.py)
says which of them a search with the given filters must return, and in which order,
computed from the documents alone (never from the database). The search tests compare
the two.

Full-text search is checked with marker words planted in known places: the words
of :data:`MARKERS` and :data:`PAIR` are their own english stem and appear nowhere
else in the generated text, so the oracle can compare plain lowercase words instead
of emulating PostgreSQL's stemmer.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "BASE64_ENCODINGS",
    "FILTERS",
    "MARKERS",
    "MARKER_MAILTO",
    "MARKER_TEL",
    "PAIR",
    "PARTY_UUIDS",
    "TIE_TAG",
    "make_corpus",
]

#: Single marker words, each planted alone in searched fields of some documents and
#: in fields that are NOT searched (base64url bodies, attachments, ...) of others.
MARKERS = ("kumquat", "zeppelin", "quokka", "marzipan", "tundra")
#: Two words planted together in one field of some documents ("saffron gondola") and
#: split over two fields (subject and a dialog body) of others.
PAIR = ("saffron", "gondola")
#: A mailto planted in some parties (in varied case, with and without "mailto:").
MARKER_MAILTO = "Kumquat.Fan@Example.com"
#: A tel written as one bare number (one text-search token) in a few parties.
MARKER_TEL = "4455501234"
#: The tag of about 100 documents that share 12 created_at instants (tie-break).
TIE_TAG = "team:night"
#: Party uuids reused across documents (written in upper or lower case).
PARTY_UUIDS = (
    "3f2c9a4e-8b1d-4c6f-9e2a-1d7b5c3e9f01",
    "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    "0f9e8d7c-6b5a-4938-a7b6-c5d4e3f2a1b0",
    "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "usr-teams-001",
    "usr-teams-002",
)
#: Every filter name the oracle (and the search) knows.
FILTERS = (
    "text",
    "subject",
    "tel",
    "mailto",
    "name",
    "party_uuid",
    "tags",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "dialog_type",
    "analysis_type",
    "analysis_vendor",
)

TRICKY_SUBJECTS = (
    "100% refund_due",
    'it\'s "quoted"',
    "a\\b",
    "eq.5",
    "or=(a,b)",
    "x -- y",
    "/* c */",
    "'; DROP TABLE vcons; --",
    "50%_off",
    "under_score",
    "réclamation — facture 🧾",
)
TRICKY_NAMES = (
    "Pat O'Brien",
    "Ann_Marie Lee",
    "100% Bob",
    "Back\\Slash",
    "'; DROP TABLE vcons; --",
    "Dr. eq.5",
    "Zoë Weiß",
)
TRICKY_TAGS = (
    "note:'; DROP TABLE vcons; --",
    "note:100%_off",
    "note:a\\b",
    'note:say "hi"',
    "note:or=(a,b)",
)
TAG_VOCABULARY = {
    "customer": ("gold", "silver", "bronze"),
    "region": ("emea", "apac", "amer"),
    "priority": ("high", "medium", "low"),
    "channel": ("voice", "chat", "email"),
}
ANALYSIS_TYPES = ("transcript", "summary", "sentiment", "topics")
VENDORS = ("deepgram", "openai", "acme", "whisper")
MAILTO_LOCALS = ("alice", "bob.smith", "carol_ann", "o'brien", "dave+billing", "eve%ops")
MAILTO_DOMAINS = ("example.com", "example.org")
TEL_NUMBERS = tuple(f"555010{k:04d}" for k in range(25))

_FIRST = ("Sarah", "David", "Maria", "Tom", "Rachel", "Lisa", "Mike", "Aisha", "Kenji", "Olga")
_LAST = ("Johnson", "Chen", "Gonzalez", "Bradley", "Kim", "Park", "Jennings", "Khan", "Sato")
_TOPICS = ("billing dispute", "router support", "cancellation", "delivery delay", "login help")
# Filler words: none of them is a marker, a pair word, or a word the tests query.
_FILLER = (
    "hello",
    "thanks",
    "billing",
    "invoice",
    "refund",
    "account",
    "password",
    "delivery",
    "order",
    "please",
    "check",
    "agent",
    "customer",
    "called",
    "charge",
    "monthly",
    "plan",
    "upgrade",
    "router",
    "signal",
    "weekend",
    "support",
    "ticket",
    "escalate",
    "resolved",
    "waiting",
    "credit",
    "card",
)
BASE64_ENCODINGS = ("base64url", "base64")
_ZONES = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
)
_START = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------


def make_corpus(n: int = 1200, seed: int = 20261125) -> list[dict[str, Any]]:
    """Return ``n`` valid, varied vCons; the same seed gives the same documents.

    Every document has ``created_at`` and ``updated_at`` (timezone-aware, written in
    several offsets) between 2024 and early 2026; some share an instant with an
    earlier one. Every twelfth document carries the tag :data:`TIE_TAG` and one of
    only 12 instants, so pages of 7 cut through groups of equal ``created_at``.
    Parties (1-4) mix tel formats, mailto with and without ``mailto:`` in mixed case,
    names (some tricky), party uuids; dialogs (0-4) are text, recording (base64url
    bodies), transfer and incomplete; analyses (0-3) vary type, vendor and encoding;
    most documents have a tags attachment, some other attachments. Marker words are
    planted in searched fields and in fields that full-text search must ignore.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    tie_instants = [
        _START + timedelta(days=rng.randrange(100, 600), seconds=rng.randrange(86_400))
        for _ in range(12)
    ]
    instants: list[datetime] = []
    corpus = []
    for index in range(n):
        if index % 12 == 5:
            created = rng.choice(tie_instants)
        elif instants and rng.random() < 0.12:
            created = rng.choice(instants)
        else:
            created = _START + timedelta(seconds=rng.randrange(730 * 86_400))
            if rng.random() < 0.3:
                created += timedelta(microseconds=rng.randrange(1, 1_000_000))
        instants.append(created)
        corpus.append(_make_vcon(rng, index, created))
    return corpus


def _make_vcon(rng: random.Random, index: int, created: datetime) -> dict[str, Any]:
    the_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if rng.random() < 0.03:
        the_uuid = the_uuid.upper()
    updated = created + timedelta(seconds=rng.randrange(120 * 86_400))
    document: dict[str, Any] = {
        "vcon": rng.choice(("0.4.0", "0.4.0", "0.3.0")),
        "uuid": the_uuid,
        "created_at": _render(rng, created),
        "updated_at": _render(rng, updated),
    }
    parties = [_party(rng, index, k) for k in range(rng.choice((1, 2, 2, 2, 3, 4)))]
    document["parties"] = parties
    roll = rng.random()
    customer = parties[0].get("name") or "a customer"
    if roll < 0.14:
        tricky = rng.choice(TRICKY_SUBJECTS)
        document["subject"] = rng.choice((tricky, f"Re: {tricky}", tricky.upper()))
    elif roll > 0.95:
        pass  # no subject
    else:
        document["subject"] = f"{rng.choice(_TOPICS)} for {customer}"
    start = created
    document["dialog"] = [
        _dialog(rng, k, start + timedelta(minutes=3 * k), len(parties))
        for k in range(rng.choice((0, 1, 1, 2, 2, 3, 4)))
    ]
    document["analysis"] = [
        _analysis(rng, document["dialog"]) for _ in range(rng.choice((0, 1, 1, 2, 3)))
    ]
    document["attachments"] = _attachments(rng, index)
    _plant_markers(rng, document)
    for name in ("dialog", "analysis"):
        if not document[name] and rng.random() < 0.5:
            del document[name]  # absent and empty arrays both occur
    return document


def _render(rng: random.Random, instant: datetime) -> str:
    text = instant.astimezone(rng.choice(_ZONES)).isoformat()
    return text.replace("+00:00", "Z") if rng.random() < 0.2 else text


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_FILLER) for _ in range(rng.randint(4, 12))]
    return " ".join(words).capitalize() + "."


def _b64(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(rng.randrange(24, 96))).decode().rstrip("=")


def _b64_with(rng: random.Random, word: str) -> str:
    """A base64url body that contains ``word`` literally (and still decodes)."""
    text = f"{_b64(rng)[:12]}_{word}_{_b64(rng)[:9]}"
    return text + "A" * (-len(text) % 4)


def _tel(rng: random.Random) -> str:
    if rng.random() < 0.04:
        return rng.choice(("anonymous", "restricted"))
    national = rng.choice(TEL_NUMBERS)
    a, b, c = national[:3], national[3:6], national[6:]
    return rng.choice(
        (
            f"+1{national}",
            f"+1 ({a}) {b}-{c}",
            f"tel:+1-{a}-{b}-{c}",
            f"1.{a}.{b}.{c}",
            f"1{national}",
            f"{a}-{b}-{c}",  # no country code: other digits
        )
    )


def _mailto(rng: random.Random, address: str | None = None) -> str:
    if address is None:
        address = f"{rng.choice(MAILTO_LOCALS)}@{rng.choice(MAILTO_DOMAINS)}"
    address = rng.choice((address, address.lower(), address.upper(), address.title()))
    return f"mailto:{address}" if rng.random() < 0.4 else address


def _party(rng: random.Random, index: int, position: int) -> dict[str, Any]:
    party: dict[str, Any] = {}
    if rng.random() < 0.7:
        party["tel"] = _tel(rng)
    if rng.random() < 0.5:
        party["mailto"] = _mailto(rng)
    if rng.random() < 0.85:
        if rng.random() < 0.06:
            party["name"] = rng.choice(TRICKY_NAMES)
        else:
            party["name"] = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if rng.random() < 0.2:
        party_uuid = rng.choice(PARTY_UUIDS)
        party["uuid"] = rng.choice((party_uuid, party_uuid.upper()))
    if position == 0 and index % 400 == 17:
        party["tel"] = MARKER_TEL
    if position == 1 and rng.random() < 0.08:
        party["mailto"] = _mailto(rng, MARKER_MAILTO)
    if rng.random() < 0.2:
        party["meta"] = {"role": rng.choice(("customer", "agent"))}
    if not party:
        party["tel"] = _tel(rng)
    return party


def _dialog(rng: random.Random, k: int, at: datetime, parties: int) -> dict[str, Any]:
    who = [0, 1] if parties > 1 else [0]
    kind = rng.choices(("text", "recording", "transfer", "incomplete"), (50, 25, 12, 13))[0]
    dialog: dict[str, Any] = {"type": kind, "start": at.isoformat()}
    if kind == "text":
        dialog.update(parties=who, originator=0, mediatype="text/plain", body=_sentence(rng))
        if rng.random() < 0.7:
            dialog["encoding"] = "none"
    elif kind == "recording":
        dialog.update(parties=who, duration=rng.randrange(10, 900), mediatype="audio/x-wav")
        if rng.random() < 0.7:
            dialog.update(filename="call.wav", encoding="base64url", body=_b64(rng))
        else:
            dialog.update(url=f"https://media.example.com/{k}.wav", content_hash="sha512-abc")
    elif kind == "transfer":
        dialog.update(transferee=0, transferor=who[-1], transfer_target=[0], original=[0])
    else:
        dialog.update(parties=[0], disposition=rng.choice(("no-answer", "busy", "failed")))
    return dialog


def _analysis(rng: random.Random, dialogs: list[dict[str, Any]]) -> dict[str, Any]:
    analysis: dict[str, Any] = {"type": rng.choice(ANALYSIS_TYPES), "vendor": rng.choice(VENDORS)}
    if dialogs:
        analysis["dialog"] = rng.randrange(len(dialogs))
    if rng.random() < 0.3:
        analysis["product"] = rng.choice(("nova-3", "gpt-4o", "v1"))
    encoding = rng.choices(("none", "json", None, "base64url"), (35, 30, 15, 20))[0]
    if encoding == "json":
        body: Any = {"summary": _sentence(rng), "score": rng.randrange(100)}
        analysis["body"] = body if rng.random() < 0.5 else json.dumps(body)
    elif encoding == "base64url":
        analysis["body"] = _b64(rng)
    else:
        analysis["body"] = _sentence(rng)
    if encoding is not None:
        analysis["encoding"] = encoding
    return analysis


def _attachments(rng: random.Random, index: int) -> list[dict[str, Any]]:
    attachments: list[dict[str, Any]] = []
    if rng.random() < 0.85 or index % 12 == 5:
        tags = [
            f"{key}:{rng.choice(values)}"
            for key, values in TAG_VOCABULARY.items()
            if rng.random() < 0.6
        ]
        if index % 12 == 5:
            tags.append(TIE_TAG)
        elif rng.random() < 0.3:
            tags.append(rng.choice(("team:day", "team:weekend")))
        if rng.random() < 0.06:
            tags.append(rng.choice(TRICKY_TAGS))
        if rng.random() < 0.04:
            tags.append("customer:Gold")  # case matters: not customer:gold
        if not tags:
            tags.append("channel:voice")
        rng.shuffle(tags)
        attachments.append({"type": "tags", "encoding": "json", "body": json.dumps(tags)})
    if rng.random() < 0.06:  # looks like tags, but it is not the tags attachment
        labels = json.dumps(["customer:gold", "region:emea", "priority:high"])
        attachments.append({"type": "labels", "encoding": "json", "body": labels})
    if rng.random() < 0.1:
        attachments.append(
            {
                "purpose": "transcript-pdf",
                "mediatype": "application/pdf",
                "filename": "t.pdf",
                "encoding": "base64url",
                "body": _b64(rng),
            }
        )
    if rng.random() < 0.05:
        attachments.append({"type": "tenant", "encoding": "json", "body": {"id": "acme"}})
    rng.shuffle(attachments)
    return attachments


def _plant_markers(rng: random.Random, document: dict[str, Any]) -> None:
    """Plant marker words in searched fields, and (for other markers) in ignored ones."""
    planted = set()
    for marker in MARKERS:
        if rng.random() < 0.07:
            planted.add(marker)
            _plant_searched(rng, document, marker)
    for marker in MARKERS:
        if marker not in planted and rng.random() < 0.05:
            _plant_ignored(rng, document, marker)
    roll = rng.random()
    if roll < 0.05:  # together in one field
        _plant_searched(rng, document, " ".join(PAIR), parties=False)
    elif roll < 0.10:  # split: one word in the subject, the other in a dialog body
        document["subject"] = f"{document.get('subject', 'call')} {PAIR[0]}"
        _text_dialog(rng, document)["body"] += f" {PAIR[1]}."


def _plant_searched(
    rng: random.Random, document: dict[str, Any], words: str, *, parties: bool = True
) -> None:
    places = ["subject", "text dialog", "analysis none", "analysis no encoding"]
    places += ["analysis json object", "analysis json text"] if " " not in words else []
    places += ["party name"] if parties else []
    place = rng.choice(places)
    if place == "subject":
        document["subject"] = f"{words.capitalize()}: {document.get('subject', 'call')}"
    elif place == "party name":
        party = rng.choice(document["parties"])
        party["name"] = f"{words.capitalize()} {rng.choice(_LAST)}"
    elif place == "text dialog":
        _text_dialog(rng, document)["body"] += f" {words}, {rng.choice(_FILLER)}!"
    else:
        body = f"{_sentence(rng)} {words}. {_sentence(rng)}"
        analysis: dict[str, Any] = {"type": rng.choice(ANALYSIS_TYPES), "vendor": "acme"}
        if place == "analysis none":
            analysis.update(encoding="none", body=body)
        elif place == "analysis no encoding":
            analysis.update(body=body)
        elif place == "analysis json object":
            analysis.update(encoding="json", body={"summary": body, "score": 7})
        else:
            analysis.update(encoding="json", body=json.dumps({"summary": body}))
        document["analysis"].append(analysis)


def _plant_ignored(rng: random.Random, document: dict[str, Any], marker: str) -> None:
    place = rng.choice(
        (
            "recording",
            "base64 text dialog",
            "plain recording",
            "base64 analysis",
            "attachment",
            "tag",
            "dialog filename",
            "party meta",
        )
    )
    if place == "recording":
        dialog = {"type": "recording", "start": document["created_at"], "parties": [0]}
        dialog.update(mediatype="audio/x-wav", encoding="base64url", body=_b64_with(rng, marker))
        document["dialog"].append(dialog)
    elif place == "base64 text dialog":  # a text dialog, but base64url: not searched
        dialog = {"type": "text", "start": document["created_at"], "parties": [0]}
        dialog.update(mediatype="text/plain", encoding="base64url", body=_b64_with(rng, marker))
        document["dialog"].append(dialog)
    elif place == "plain recording":  # plain text, but not a text dialog: not searched
        dialog = {"type": "recording", "start": document["created_at"], "parties": [0]}
        dialog.update(mediatype="text/plain", encoding="none", body=f"note {marker} here")
        document["dialog"].append(dialog)
    elif place == "base64 analysis":
        analysis = {"type": "transcript", "vendor": "deepgram", "encoding": "base64url"}
        analysis["body"] = _b64_with(rng, marker)
        document["analysis"].append(analysis)
    elif place == "attachment":
        attachment = {"type": "note", "encoding": "none", "body": f"remember the {marker}"}
        document["attachments"].append(attachment)
        attachment = {"purpose": "audio", "encoding": "base64url", "body": _b64_with(rng, marker)}
        document["attachments"].append(attachment)
    elif place == "tag":
        tags = [a for a in document["attachments"] if a.get("type") == "tags"]
        if tags:
            tags[0]["body"] = json.dumps([*json.loads(tags[0]["body"]), f"fruit:{marker}"])
        else:
            document["attachments"].append(
                {"type": "tags", "encoding": "json", "body": json.dumps([f"fruit:{marker}"])}
            )
    elif place == "dialog filename":
        dialog = {"type": "recording", "start": document["created_at"], "parties": [0]}
        dialog.update(filename=f"{marker}.wav", url="https://media.example.com/r.wav")
        document["dialog"].append(dialog)
    else:
        document["parties"][0]["meta"] = {"nickname": marker}


def _text_dialog(rng: random.Random, document: dict[str, Any]) -> dict[str, Any]:
    """A searched text dialog of ``document`` (one is added when there is none)."""
    searched = [
        d
        for d in document["dialog"]
        if d["type"] == "text" and d.get("encoding") not in BASE64_ENCODINGS
    ]
    if searched:
        return rng.choice(searched)
    dialog = {"type": "text", "start": document["created_at"], "parties": [0]}
    dialog.update(mediatype="text/plain", body=_sentence(rng), encoding="none")
    document["dialog"].append(dialog)
    return dialog
