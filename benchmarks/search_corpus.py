"""The generated corpus of the search benchmark (``benchmarks/search.py``): varied,
valid vCons (subjects, parties, dialog types, analyses, tags, created_at over three
years), the same ones for the same seed and batch."""

from __future__ import annotations

import base64
import random
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conserver_supabase import validate_vcon  # noqa: E402

END: Final = datetime(2026, 1, 1, tzinfo=UTC)
START: Final = END - timedelta(days=3 * 365)
SPAN_SECONDS: Final = int((END - START).total_seconds())
NAMESPACE: Final = uuid.UUID("6f1c3a52-5a8e-4d0c-9a57-3b1f0d1e2c4b")
CUSTOMERS: Final = 20_000
AGENTS: Final = 250

FIRST: Final = [
    "Sarah", "David", "Maria", "Tom", "Rachel", "Lisa", "Mike", "Aisha", "Kenji", "Olga",
    "Priya", "Lucas", "Fatima", "Noah", "Elena", "Omar", "Grace", "Ivan", "Chloe", "Mateo",
    "Hana", "Samuel", "Zoe", "Arjun", "Nina", "Diego", "Yuki", "Ben", "Leila", "Oscar",
    "Ingrid", "Kwame", "Sofia", "Liam", "Mei", "Jonas", "Amara", "Pavel", "Rosa", "Theo",
]  # fmt: skip
LAST: Final = [
    "Johnson", "Chen", "Gonzalez", "Bradley", "Kim", "Park", "Rivera", "Khan", "Sato", "Okonkwo",
    "Novak", "Silva", "Müller", "Dubois", "Rossi", "Haddad", "Nguyen", "Kowalski", "Larsen",
    "Mensah", "Petrov", "Tanaka", "Schmidt", "Costa", "Murphy", "Yilmaz", "Ali", "Fischer",
    "Moreau", "Popescu", "Horvat", "Lindqvist", "Santos", "Ivanova", "Brennan", "Das", "Weber",
    "Ortiz", "Becker", "Adeyemi",
]  # fmt: skip
AGENT_FIRST: Final = [
    "Alex", "Jordan", "Casey", "Morgan", "Riley", "Taylor", "Jamie", "Quinn", "Avery", "Parker",
    "Reese", "Rowan", "Sage", "Skyler", "Emerson", "Finley", "Harper", "Hayden",
]  # fmt: skip
AGENT_LAST: Final = [
    "Abbott", "Barnes", "Carver", "Doyle", "Ellis", "Foster", "Garner", "Hale", "Irwin", "Jensen",
    "Keller", "Lowe", "Marsh", "Nolan", "Osborne", "Pierce",
]  # fmt: skip
AREAS: Final = ["415", "212", "646", "312", "206", "617", "305", "512"]
DOMAINS: Final = ["example.com", "mail.example.org", "example.net", "corp.example.co.uk"]
TOPICS: Final = [
    ("billing dispute", "I was charged twice for my subscription this month."),
    ("VPN support", "The VPN client disconnects every few minutes since the update."),
    ("cancellation", "I would like to cancel unless you can offer a better plan."),
    ("delivery delay", "My order was due on Monday and it still has not arrived."),
    ("password reset", "I cannot log in and the reset email never comes."),
    ("plan upgrade", "I want more data on my plan, what are the options?"),
    ("roaming charges", "I got a huge bill for roaming while I was abroad."),
    ("router setup", "The new router does not show up on my laptop."),
    ("address change", "We moved and I need to update the service address."),
    ("late payment", "My payment will be a few days late this month."),
    ("porting request", "I want to keep my old number when I switch to you."),
    ("data outage", "There has been no mobile data in my area since this morning."),
    ("invoice copy", "Could you send me a copy of last quarter's invoice?"),
    ("loyalty discount", "I have been a customer for ten years, is there a discount?"),
    ("device return", "The phone I received is damaged and I want to return it."),
    ("contract renewal", "My contract ends next month, what happens then?"),
    ("fraud alert", "There are calls on my bill that I never made."),
    ("voicemail setup", "My voicemail greeting keeps resetting to the default."),
    ("warranty claim", "The screen stopped working after eight months of normal use."),
    ("international calling", "How much does it cost to call Brazil from my plan?"),
]
# Zipf-like topic popularity: the first topics are common, the last ones rare.
TOPIC_WEIGHTS: Final = [1 / (rank + 1) ** 0.9 for rank in range(len(TOPICS))]
FILLER: Final = [
    "Thanks, that helps.",
    "Can you check again?",
    "Yes, please go ahead.",
    "I already tried restarting it twice.",
    "Could I get a refund for the days without service?",
    "The refund should show up within five business days.",
    "Let me transfer you to the right team.",
    "Is there anything else I can help you with today?",
    "I will send you a confirmation email shortly.",
    "That is not what I was told last time.",
    "Please hold while I look at your account history.",
    "Your case number is in the email we just sent.",
]
RARE_PRODUCT: Final = "Zephyr"  # mentioned in about 0.3% of the vCons: the rare text query
DIALOG_TYPES: Final = ["text", "recording", "transfer", "incomplete"]
DIALOG_WEIGHTS: Final = [0.55, 0.38, 0.05, 0.02]
TRANSCRIBERS: Final = ["deepgram", "assemblyai", "whisper", "google", "aws"]
TRANSCRIBER_WEIGHTS: Final = [0.35, 0.25, 0.2, 0.12, 0.08]
SUMMARIZERS: Final = ["openai", "anthropic", "demo-summarizer"]
DIARIZERS: Final = ["pyannote", "deepgram", "aws"]
CHANNELS: Final = ["phone", "chat", "email"]
PRIORITIES: Final = ["low", "normal", "high", "urgent"]
REGIONS: Final = ["na", "emea", "apac", "latam"]


def _tel(rng: random.Random, customer: int) -> str:
    area, number = AREAS[customer % len(AREAS)], f"{(customer * 7919) % 10**7:07d}"  # unique
    digits = f"1{area}{number}"
    return rng.choice(
        [
            f"+{digits}",
            f"+1 ({area}) {number[:3]}-{number[3:]}",
            f"tel:+{digits}",
            f"1-{area}-{number[:3]}-{number[3:]}",
            f"+1.{area}.{number[:3]}.{number[3:]}",
        ]
    )


def _customer_name(customer: int) -> str:
    return f"{FIRST[customer % len(FIRST)]} {LAST[(customer // len(FIRST)) % len(LAST)]}"


def _agent_name(agent: int) -> str:
    first = AGENT_FIRST[agent % len(AGENT_FIRST)]
    return f"{first} {AGENT_LAST[(agent // len(AGENT_FIRST)) % len(AGENT_LAST)]}"


def _agent_mailto(rng: random.Random, agent: int) -> str:
    first, last = _agent_name(agent).split()
    address = f"{first}.{last}{agent}@support.example.com"
    return rng.choice([address.lower(), f"mailto:{address.lower()}", address, f"MAILTO:{address}"])


def _agent_uuid(agent: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"agent-{agent}"))


def _party(rng: random.Random, role: str, ident: int) -> dict[str, Any]:
    if role == "customer":
        party: dict[str, Any] = {"tel": _tel(rng, ident), "name": _customer_name(ident)}
        if rng.random() < 0.35:
            first, last = _customer_name(ident).lower().split()
            party["mailto"] = f"{first}.{last}{ident}@{DOMAINS[ident % len(DOMAINS)]}"
        if rng.random() < 0.4:
            party["uuid"] = str(uuid.uuid5(NAMESPACE, f"customer-{ident}"))
    else:
        party = {
            "mailto": _agent_mailto(rng, ident),
            "name": _agent_name(ident),
            "uuid": _agent_uuid(ident),
        }
    party["meta"] = {"role": role}
    return party


def _text_body(rng: random.Random, speakers: Sequence[str], opening: str) -> str:
    lines = [f"{speakers[0]}: {opening}"]
    for turn in range(rng.randint(1, 4)):
        lines.append(f"{speakers[(turn + 1) % 2]}: {rng.choice(FILLER)}")
    return "\n".join(lines)


def make_document(rng: random.Random) -> dict[str, Any]:
    """One varied, valid vCon (deterministic for a given ``rng`` state)."""
    vcon_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    created = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    later = rng.random()
    if later < 0.7:
        updated = created + timedelta(seconds=rng.randrange(7200))
    elif later < 0.95:
        updated = created + timedelta(seconds=rng.randrange(30 * 86400))
    else:
        updated = created + timedelta(seconds=rng.randrange(400 * 86400))
    topic, opening = rng.choices(TOPICS, TOPIC_WEIGHTS)[0]
    customer_id, agent_id = rng.randrange(CUSTOMERS), rng.randrange(AGENTS)
    customer, agent = _customer_name(customer_id), _agent_name(agent_id)
    parties = [_party(rng, "customer", customer_id), _party(rng, "agent", agent_id)]
    if rng.random() < 0.15:
        parties.append(_party(rng, "supervisor", rng.randrange(AGENTS)))
    channel = rng.choices(CHANNELS, [0.55, 0.3, 0.15])[0]
    subject = _subject(rng, customer, agent, topic, channel)
    draft = _Draft(rng, vcon_uuid, customer, agent, opening, rare=rng.random() < 0.003)
    draft.conversation(created, len(parties))
    draft.summary(topic)
    if draft.rare and subject is not None:
        subject += f" ({RARE_PRODUCT})"
    document: dict[str, Any] = {
        "vcon": "0.4.0",
        "uuid": vcon_uuid,
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
        "parties": parties,
        "dialog": draft.dialogs,
        "analysis": draft.analyses,
        "attachments": _attachments(rng, topic, channel),
    }
    if subject is not None:
        document["subject"] = subject
    return document


def _subject(rng: random.Random, customer: str, agent: str, topic: str, channel: str) -> str | None:
    shape = rng.random()
    if shape < 0.5:
        return f"{customer} / {agent}: {topic}"
    if shape < 0.75:
        return f"Re: {topic} (case {rng.randrange(10**6):06d})"
    if shape < 0.95:
        return f"{topic.capitalize()} - {channel} contact"
    return None


class _Draft:
    """The dialogs and analyses of one vCon being made. ``rare``: the rare product is
    still to be mentioned (once, in the first place that takes it)."""

    def __init__(
        self,
        rng: random.Random,
        vcon_uuid: str,
        customer: str,
        agent: str,
        opening: str,
        *,
        rare: bool,
    ) -> None:
        self.rng = rng
        self.vcon_uuid = vcon_uuid
        self.customer, self.agent, self.opening = customer, agent, opening
        self.rare = rare
        self.dialogs: list[dict[str, Any]] = []
        self.analyses: list[dict[str, Any]] = []

    def conversation(self, created: datetime, parties: int) -> None:
        rng = self.rng
        at = created
        for index in range(rng.choices([1, 2, 3, 4], [0.35, 0.35, 0.2, 0.1])[0]):
            kind = rng.choices(DIALOG_TYPES, DIALOG_WEIGHTS)[0]
            at += timedelta(seconds=rng.randrange(30, 900))
            dialog: dict[str, Any] = {"type": kind, "start": at.isoformat(), "parties": [0, 1]}
            if kind == "text":
                dialog |= self._text(index)
            elif kind == "recording":
                dialog |= self._recording(index)
            elif kind == "transfer":
                dialog |= {
                    "transferee": 0,
                    "transferor": 1,
                    "transfer_target": [parties - 1],
                    "original": [0] if index else [],
                }
            else:
                dialog |= {"disposition": rng.choice(["no-answer", "busy", "failed"])}
            self.dialogs.append(dialog)

    def _text(self, index: int) -> dict[str, Any]:
        rng = self.rng
        opening = self.opening if index == 0 else "Hello again."
        body = _text_body(rng, [self.customer, self.agent], opening)
        if self.rare:
            body += f"\n{self.customer}: My {RARE_PRODUCT} X2 router keeps rebooting."
            self.rare = False
        fields = {
            "duration": rng.randrange(20, 600),
            "originator": 0,
            "mediatype": "text/plain",
            "body": body,
            "encoding": "none",
        }
        if rng.random() < 0.5:
            score = round(rng.uniform(-1, 1), 2)
            self.analyses.append(
                {
                    "type": "sentiment",
                    "dialog": index,
                    "vendor": rng.choice(SUMMARIZERS),
                    "product": "sentiment-v2",
                    "encoding": "json",
                    "body": {"score": score, "label": "negative" if score < 0 else "positive"},
                }
            )
        return fields

    def _recording(self, index: int) -> dict[str, Any]:
        rng = self.rng
        audio = rng.randbytes(rng.randrange(96, 384))
        fields = {
            "duration": rng.randrange(30, 1800),
            "originator": rng.randrange(2),
            "mediatype": "audio/x-wav",
            "filename": f"call-{self.vcon_uuid[:8]}-{index}.wav",
            "body": base64.urlsafe_b64encode(audio).decode().rstrip("="),
            "encoding": "base64url",
        }
        self.analyses.append(
            {
                "type": "transcript",
                "dialog": index,
                "vendor": rng.choices(TRANSCRIBERS, TRANSCRIBER_WEIGHTS)[0],
                "product": "nova-2",
                "encoding": "none",
                "body": _text_body(rng, [self.customer, self.agent], self.opening),
            }
        )
        if rng.random() < 0.03:
            self.analyses.append(
                {
                    "type": "diarization",
                    "dialog": index,
                    "vendor": rng.choices(DIARIZERS, [0.6, 0.3, 0.1])[0],
                    "product": "diarize-3",
                    "encoding": "json",
                    "body": {"speakers": 2, "turns": rng.randrange(4, 40)},
                }
            )
        return fields

    def summary(self, topic: str) -> None:
        if self.rng.random() >= 0.8:
            return
        summary = f"{self.customer} contacted us about {topic}; {self.agent} followed up."
        if self.rare:
            summary += f" Mentions the {RARE_PRODUCT} router."
            self.rare = False
        self.analyses.append(
            {
                "type": "summary",
                "dialog": list(range(len(self.dialogs))),
                "vendor": self.rng.choice(SUMMARIZERS),
                "product": "v1",
                "encoding": "none",
                "body": summary,
            }
        )


def _attachments(rng: random.Random, topic: str, channel: str) -> list[dict[str, Any]]:
    tags = [
        f"topic:{topic.replace(' ', '-').lower()}",
        f"channel:{channel}",
        f"priority:{rng.choices(PRIORITIES, [0.5, 0.3, 0.15, 0.05])[0]}",
        f"region:{rng.choice(REGIONS)}",
    ]
    if rng.random() < 0.03:
        tags.append(f"escalation:{rng.choice(['supervisor', 'legal'])}")
    attachments: list[dict[str, Any]] = [{"type": "tags", "encoding": "json", "body": tags}]
    if rng.random() < 0.15:
        attachments.append(
            {
                "type": "note",
                "mediatype": "text/plain",
                "encoding": "none",
                "body": "Customer prefers a callback after 5pm.",
            }
        )
    return attachments


def make_batch(seed: int, batch: int, size: int) -> list[dict[str, Any]]:
    """Batch ``batch`` of generated vCons, validated (each batch has its own rng)."""
    rng = random.Random(f"{seed}:{batch}")  # noqa: S311 - test data, not cryptography
    documents = [make_document(rng) for _ in range(size)]
    for document in documents:
        validate_vcon(document)
    return documents
