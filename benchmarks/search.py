"""Search benchmark: p50/p95 per filter kind, and which indexes each plan uses.

Run (from the repository root, with the ``postgres`` and ``embedded`` extras)::

    python benchmarks/search.py [--count 100000] [--repeat 30] [--database-url URL]
                                [--check] [--show-plans] [--json FILE]

Without ``--database-url`` it starts an embedded PostgreSQL, applies the migrations,
loads ``--count`` generated vCons (varied subjects, parties, dialog types, analysis,
tags, created_at over three years) with ``save_many`` and runs ``VACUUM (ANALYZE)``.
With ``--database-url`` it does the same in that database: use a scratch one, it
writes vCons there (``--count 0`` loads nothing and searches what is there).

Every search goes through ``SupabaseStorage.search`` (psycopg transport; the search
never touches Redis, so no Redis is started). Columns of the timing table:

* ``kind``     the filter kind (``*``: a common value, which may legitimately scan);
* ``rows``     items on the page returned (limit ``--limit``);
* ``matches``  every vCon the filters match (counted by paging, not timed);
* ``p50 ms`` / ``p95 ms``  median and 95th percentile (nearest rank) wall time of one
  ``search`` call over ``--repeat`` calls, after two warm-up calls;
* ``x base``   p50 divided by the p50 of ``no filter`` (the newest page), from this
  same run: quote these ratios, not absolute times;
* ``plan``     ``index`` when the plan reads the big tables (vcons, parties, dialog,
  analysis, attachments) only through indexes, else the tables it Seq Scans.

The plan is that of the exact statement ``conserver_vcon_search`` executes, with the
same parameters: captured with ``auto_explain`` (log_nested_statements) when the
server can load it, otherwise from a temporary copy of the function that runs
``EXPLAIN (ANALYZE, FORMAT JSON)`` on the statement it built. ``--check`` exits 1 when
a kind not marked ``*`` Seq Scans a big table.

``--json FILE`` writes the same figures (``make bench`` writes ``docs/bench-search.json``)::

    {"run": {"count", "repeat", "limit", "seed", "batch", "threads", "cpus",
             "postgres_version", "plans_from", "tables": {table: rows}, "load_seconds"},
     "kinds": [{"name", "filters" (as sent, with the customer picked from the data),
                "include_vcons", "second_page", "common", "skipped" (null, or why),
                "rows", "matches", "matches_capped" (counting stopped at --count-cap),
                "p50_ms", "p95_ms", "x_base",
                "plan": {"index_only", "seq_scans": [{"table", "rows"}], "indexes"}}],
     "check": {"failing": [kind names]}}

A skipped kind has no keys after ``skipped``. ``index_only`` is the ``plan`` column's
``index``: no Seq Scan on a big table (other tables may still be scanned).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import os
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conserver_supabase import (  # noqa: E402
    StorageConfig,
    SupabaseStorage,
    validate_vcon,
)
from conserver_supabase._database._postgres import PostgresDatabase  # noqa: E402
from conserver_supabase._search import build_query  # noqa: E402

BIG_TABLES: Final = frozenset({"vcons", "parties", "dialog", "analysis", "attachments"})
SEARCH_STATEMENT_MARK: Final = "WITH page AS"

# --- generated data -----------------------------------------------------------------

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
    shape = rng.random()
    if shape < 0.5:
        subject: str | None = f"{customer} / {agent}: {topic}"
    elif shape < 0.75:
        subject = f"Re: {topic} (case {rng.randrange(10**6):06d})"
    elif shape < 0.95:
        subject = f"{topic.capitalize()} - {channel} contact"
    else:
        subject = None
    rare = rng.random() < 0.003

    dialogs: list[dict[str, Any]] = []
    analyses: list[dict[str, Any]] = []
    at = created
    for index in range(rng.choices([1, 2, 3, 4], [0.35, 0.35, 0.2, 0.1])[0]):
        kind = rng.choices(DIALOG_TYPES, DIALOG_WEIGHTS)[0]
        at += timedelta(seconds=rng.randrange(30, 900))
        dialog: dict[str, Any] = {"type": kind, "start": at.isoformat(), "parties": [0, 1]}
        if kind == "text":
            body = _text_body(rng, [customer, agent], opening if index == 0 else "Hello again.")
            if rare:
                body += f"\n{customer}: My {RARE_PRODUCT} X2 router keeps rebooting."
                rare = False
            dialog |= {
                "duration": rng.randrange(20, 600),
                "originator": 0,
                "mediatype": "text/plain",
                "body": body,
                "encoding": "none",
            }
            if rng.random() < 0.5:
                score = round(rng.uniform(-1, 1), 2)
                analyses.append(
                    {
                        "type": "sentiment",
                        "dialog": index,
                        "vendor": rng.choice(SUMMARIZERS),
                        "product": "sentiment-v2",
                        "encoding": "json",
                        "body": {"score": score, "label": "negative" if score < 0 else "positive"},
                    }
                )
        elif kind == "recording":
            audio = rng.randbytes(rng.randrange(96, 384))
            dialog |= {
                "duration": rng.randrange(30, 1800),
                "originator": rng.randrange(2),
                "mediatype": "audio/x-wav",
                "filename": f"call-{vcon_uuid[:8]}-{index}.wav",
                "body": base64.urlsafe_b64encode(audio).decode().rstrip("="),
                "encoding": "base64url",
            }
            analyses.append(
                {
                    "type": "transcript",
                    "dialog": index,
                    "vendor": rng.choices(TRANSCRIBERS, TRANSCRIBER_WEIGHTS)[0],
                    "product": "nova-2",
                    "encoding": "none",
                    "body": _text_body(rng, [customer, agent], opening),
                }
            )
            if rng.random() < 0.03:
                analyses.append(
                    {
                        "type": "diarization",
                        "dialog": index,
                        "vendor": rng.choices(DIARIZERS, [0.6, 0.3, 0.1])[0],
                        "product": "diarize-3",
                        "encoding": "json",
                        "body": {"speakers": 2, "turns": rng.randrange(4, 40)},
                    }
                )
        elif kind == "transfer":
            dialog |= {
                "transferee": 0,
                "transferor": 1,
                "transfer_target": [len(parties) - 1],
                "original": [0] if index else [],
            }
        else:
            dialog |= {"disposition": rng.choice(["no-answer", "busy", "failed"])}
        dialogs.append(dialog)

    if rng.random() < 0.8:
        summary = f"{customer} contacted us about {topic}; {agent} followed up."
        if rare:
            summary += f" Mentions the {RARE_PRODUCT} router."
            rare = False
        analyses.append(
            {
                "type": "summary",
                "dialog": list(range(len(dialogs))),
                "vendor": rng.choice(SUMMARIZERS),
                "product": "v1",
                "encoding": "none",
                "body": summary,
            }
        )
    if rare and subject is not None:
        subject += f" ({RARE_PRODUCT})"

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
    document: dict[str, Any] = {
        "vcon": "0.4.0",
        "uuid": vcon_uuid,
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
        "parties": parties,
        "dialog": dialogs,
        "analysis": analyses,
        "attachments": attachments,
    }
    if subject is not None:
        document["subject"] = subject
    return document


def make_batch(seed: int, batch: int, size: int) -> list[dict[str, Any]]:
    """Batch ``batch`` of generated vCons, validated (each batch has its own rng)."""
    rng = random.Random(f"{seed}:{batch}")  # noqa: S311 - test data, not cryptography
    documents = [make_document(rng) for _ in range(size)]
    for document in documents:
        validate_vcon(document)
    return documents


def load(url: str, count: int, batch_size: int, threads: int, seed: int) -> float:
    """Seconds to insert ``count`` generated vCons with ``save_many``, ``threads`` batches
    at a time."""
    database = PostgresDatabase(
        StorageConfig.from_options(
            {"database_url": url, "timeout": 600, "pool_size": max(2, threads)}
        )
    )
    sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]
    done = 0
    lock = threading.Lock()
    started = time.perf_counter()
    last_report = started

    def one(batch: int) -> int:
        nonlocal done, last_report
        documents = make_batch(seed, batch, sizes[batch])
        database.save(documents, None)
        with lock:
            done += len(documents)
            now = time.perf_counter()
            if now - last_report >= 15:
                last_report = now
                rate = done / (now - started)
                print(f"  loaded {done:>7,} / {count:,} ({rate:,.0f} vCons/s)", flush=True)
        return len(documents)

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # map() submits indexes only: each worker generates its own batch, so at
            # most `threads` batches of documents are in memory at once.
            for _ in pool.map(one, range(len(sizes))):
                pass
    finally:
        database.close()
    elapsed = time.perf_counter() - started
    print(
        f"load: {count:,} vCons in {elapsed:.1f} s = {count / elapsed:,.0f} vCons/s "
        f"({len(sizes)} save_many batches of <= {batch_size}, {threads} threads)",
        flush=True,
    )
    return elapsed


# --- the kinds measured -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """One search to time and explain."""

    name: str
    filters: Mapping[str, Any]
    include_vcons: bool = False
    second_page: bool = False
    common: bool = False  # a value many vCons have: a Seq Scan may be the right plan


def pick_customer(url: str) -> tuple[str, str]:
    """A customer who has vCons: the tel (re-spelled) and name filter values."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT tel, name FROM parties WHERE party_index = 0 AND tel IS NOT NULL "
            "AND name IS NOT NULL ORDER BY vcon_id LIMIT 1"
        ).fetchone()
    if row is None:
        return "+1 415 555 0100", "priya okonkwo"
    digits = re.sub(r"\D", "", row[0])
    tel = f"+{digits[0]} {digits[1:4]} {digits[4:7]} {digits[7:]}" if len(digits) == 11 else digits
    return tel, str(row[1]).lower()


def kinds(tel: str, name: str) -> list[Kind]:
    agent = 17
    first, last = _agent_name(agent).split()
    recent = END - timedelta(days=90)
    return [
        Kind("no filter", {}),
        Kind("text", {"text": RARE_PRODUCT.lower()}),
        Kind("text*", {"text": "refund"}, common=True),
        Kind("subject", {"subject": "WARRANTY claim"}),
        Kind("tel", {"tel": tel}),
        Kind("mailto", {"mailto": f"MAILTO:{first}.{last}{agent}@Support.Example.com"}),
        Kind("name", {"name": name}),
        Kind("party_uuid", {"party_uuid": _agent_uuid(agent).upper()}),
        Kind("tags", {"tags": ["priority:urgent", "region:apac"]}),
        Kind("tags*", {"tags": ["channel:phone"]}, common=True),
        Kind("created range", {"created_after": "2024-06-03", "created_before": "2024-06-10"}),
        Kind("updated range", {"updated_after": "2024-03-01", "updated_before": "2024-03-04"}),
        Kind("dialog_type", {"dialog_type": "incomplete"}),
        Kind("analysis type+vendor", {"analysis_type": "diarization", "analysis_vendor": "aws"}),
        Kind(
            "3 filters",
            {
                "dialog_type": "recording",
                "tags": ["channel:phone"],
                "created_after": recent.isoformat(),
            },
        ),
        Kind("page 2 (no filter)", {}, second_page=True),
        Kind("page 2 (party_uuid)", {"party_uuid": _agent_uuid(agent)}, second_page=True),
        Kind("include_vcons", {}, include_vcons=True),
    ]


# --- timing ---------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Timing:
    rows: int
    matches: int
    matches_capped: bool  # counting stopped at --count-cap: at least ``matches``
    p50_ms: float
    p95_ms: float

    @property
    def matches_text(self) -> str:
        return f"{'>=' if self.matches_capped else ''}{self.matches:,}"


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def count_matches(
    storage: SupabaseStorage, filters: Mapping[str, Any], cap: int
) -> tuple[int, bool]:
    """How many vCons the filters match, by paging 1000 uuids at a time, and whether
    counting stopped at ``cap`` (then there are at least that many)."""
    total, cursor = 0, None
    while total < cap:
        page = storage.search(filters, limit=1000, cursor=cursor)
        total += len(page)
        cursor = page.next_cursor
        if cursor is None:
            return total, False
    return total, True


def cursor_for(storage: SupabaseStorage, kind: Kind, limit: int) -> str | None:
    if not kind.second_page:
        return None
    return storage.search(kind.filters, limit=limit).next_cursor


def time_kind(
    storage: SupabaseStorage, kind: Kind, limit: int, repeat: int, cap: int
) -> Timing | None:
    cursor = cursor_for(storage, kind, limit)
    if kind.second_page and cursor is None:
        return None

    def call() -> int:
        page = storage.search(
            kind.filters, limit=limit, cursor=cursor, include_vcons=kind.include_vcons
        )
        return len(page)

    for _ in range(2):  # warm-up: connection, caches
        call()
    samples = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = call()
        samples.append((time.perf_counter() - started) * 1000)
    matches, capped = count_matches(storage, kind.filters, cap)
    return Timing(
        rows=rows,
        matches=matches,
        matches_capped=capped,
        p50_ms=statistics.median(samples),
        p95_ms=_percentile(samples, 0.95),
    )


# --- plans ----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PlanInfo:
    plan: dict[str, Any]
    indexes: list[str]
    seq_scans: list[tuple[str, float]]  # (table, actual or else estimated rows), BIG_TABLES

    @property
    def seq_scan_labels(self) -> list[str]:
        return [f"{table} ({rows:g} rows)" for table, rows in self.seq_scans]

    def summary(self) -> dict[str, Any]:
        """The plan as ``--json`` records it: the verdict and the indexes, not the tree."""
        return {
            "index_only": not self.seq_scans,
            "seq_scans": [
                {"table": table, "rows": int(rows) if float(rows).is_integer() else rows}
                for table, rows in self.seq_scans
            ],
            "indexes": list(self.indexes),
        }


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.get("Plans", [])))


def summarize(plan: dict[str, Any]) -> PlanInfo:
    indexes: dict[str, None] = {}
    seq: list[tuple[str, float]] = []
    for node in _nodes(plan):
        if "Index Name" in node:
            indexes[str(node["Index Name"])] = None
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
            rows = node.get("Actual Rows", node.get("Plan Rows"))
            seq.append((str(node["Relation Name"]), rows))
    return PlanInfo(plan=plan, indexes=list(indexes), seq_scans=seq)


def render_plan(plan: Mapping[str, Any], width: int = 150) -> list[str]:
    """A compact text rendering of a JSON plan (one line per node, conditions inline)."""
    lines: list[str] = []

    def visit(node: Mapping[str, Any], depth: int) -> None:
        label = str(node.get("Node Type", "?"))
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
        if "Relation Name" in node:
            label += f" on {node['Relation Name']} {node.get('Alias', '')}".rstrip()
        if "Subplan Name" in node:
            label = f"[{node['Subplan Name']}] {label}"
        for key in ("Index Cond", "Recheck Cond", "Hash Cond", "Filter", "Join Filter"):
            if key in node:
                label += f"  {key}: {node[key]}"
        actual = node.get("Actual Rows")
        counts = [f"rows={actual:g}"] if actual is not None else []
        counts.append(f"est={node.get('Plan Rows', '?')}")
        if node.get("Actual Loops", 1) != 1:
            counts.append(f"loops={node['Actual Loops']}")
        label += f"  ({' '.join(counts)})"
        line = "  " * depth + "-> " + label
        lines.append(line if len(line) <= width else line[: width - 3] + "...")
        for child in node.get("Plans", []):
            visit(child, depth + 1)

    visit(plan, 0)
    return lines


class PlanSource:
    """Gets the plan of the statement ``conserver_vcon_search`` builds and executes."""

    def __init__(self, url: str, schema: str = "public") -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)
        self._schema = schema
        self._notices: list[str] = []
        self._auto_explain_error = ""
        self.method = self._setup_auto_explain() or self._setup_explain_copy()

    def _setup_auto_explain(self) -> str | None:
        import psycopg

        try:
            self._conn.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_nested_statements", "on"),
                ("auto_explain.log_format", "json"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_level", "notice"),
            ):
                self._conn.execute("SELECT set_config(%s, %s, false)", [setting, value])
        except psycopg.Error as exc:
            self._auto_explain_error = str(exc).splitlines()[0]
            return None
        self._conn.add_notice_handler(lambda diag: self._notices.append(diag.message_primary or ""))
        return "auto_explain (nested statement, log_analyze)"

    def _setup_explain_copy(self) -> str:
        from psycopg import sql

        function = sql.SQL("{}.conserver_vcon_search(jsonb)").format(sql.Identifier(self._schema))
        row = self._conn.execute(
            sql.SQL("SELECT pg_get_functiondef({}::regprocedure)").format(
                sql.Literal(function.as_string(self._conn))
            )
        ).fetchone()
        assert row is not None
        source: str = row[0]
        marker = "EXECUTE format($q$"
        renamed, renames = re.subn(
            r"FUNCTION\s+\S*?conserver_vcon_search\(",
            "FUNCTION pg_temp.conserver_bench_explain(",
            source,
            count=1,
        )
        if renames != 1 or source.count(marker) != 1:
            raise RuntimeError(
                "conserver_vcon_search no longer has exactly one 'EXECUTE format($q$': "
                "update PlanSource in benchmarks/search.py"
            )
        # EXPLAIN is not allowed in a STABLE function: the copy is VOLATILE (the statement
        # it plans is the same; volatility only changes the snapshot it runs under).
        header, as_, body = renamed.partition("\nAS ")  # pg_get_functiondef's layout
        copy = re.sub(r"\b(STABLE|IMMUTABLE)\b", "VOLATILE", header) + as_ + body
        self._conn.execute(
            copy.replace(marker, "EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || format($q$")
        )
        return (
            "EXPLAIN (ANALYZE) via a temporary copy of the function "
            f"(auto_explain: {self._auto_explain_error})"
        )

    def plan(self, query: Mapping[str, Any]) -> dict[str, Any]:
        from psycopg.types.json import Jsonb

        if self.method.startswith("auto_explain"):
            self._notices.clear()
            self._conn.execute("SELECT conserver_vcon_search(%s)", [Jsonb(dict(query))])
            for message in self._notices:
                _, found, text = message.partition("plan:")
                if not found:
                    continue
                logged = json.loads(text)
                if SEARCH_STATEMENT_MARK in logged.get("Query Text", ""):
                    plan: dict[str, Any] = logged["Plan"]
                    return plan
            raise RuntimeError("auto_explain logged no plan for the search statement")
        row = self._conn.execute(
            "SELECT pg_temp.conserver_bench_explain(%s)", [Jsonb(dict(query))]
        ).fetchone()
        assert row is not None
        explained: dict[str, Any] = row[0][0]["Plan"]
        return explained

    def close(self) -> None:
        self._conn.close()


# --- main -----------------------------------------------------------------------------


def prepare(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Migrates, loads and analyzes; returns the run metadata ``--json`` records."""
    import psycopg

    from conserver_supabase import migrations

    applied = migrations.apply(url)
    print(f"migrations applied: {[f'{m.version:04d}_{m.name}' for m in applied] or 'none'}")
    load_seconds = load(url, args.count, args.batch, args.threads, args.seed) if args.count else 0.0
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "VACUUM (ANALYZE) vcons, parties, dialog, analysis, attachments, "
            "conserver_vcon_documents"
        )
        row = conn.execute(
            "SELECT (SELECT count(*) FROM vcons), (SELECT count(*) FROM parties), "
            "(SELECT count(*) FROM dialog), (SELECT count(*) FROM analysis), "
            "(SELECT count(*) FROM attachments), current_setting('server_version')"
        ).fetchone()
    assert row is not None
    print(f"VACUUM (ANALYZE): {time.perf_counter() - started:.1f} s")
    print(
        f"rows: vcons {row[0]:,}, parties {row[1]:,}, dialog {row[2]:,}, "
        f"analysis {row[3]:,}, attachments {row[4]:,} (PostgreSQL {row[5]})"
    )
    return {
        "postgres_version": str(row[5]),
        "tables": dict(
            zip(("vcons", "parties", "dialog", "analysis", "attachments"), row[:5], strict=True)
        ),
        "load_seconds": round(load_seconds, 1),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


Result = tuple[Kind, Timing | None, PlanInfo | None]


def run(url: str, args: argparse.Namespace) -> int:
    meta = prepare(url, args)
    storage = SupabaseStorage(
        # search never touches Redis (one database call); the URL is only configuration
        {"database_url": url, "redis_url": "redis://127.0.0.1:6379/0", "timeout": 60}
    )
    plans = PlanSource(url)
    tel, name = pick_customer(url)
    print(f"plans: {plans.method}")
    print(f"timing: {args.repeat} calls per kind after 2 warm-ups, limit {args.limit}\n")
    results: list[Result] = []
    try:
        for kind in kinds(tel, name):
            timing = time_kind(storage, kind, args.limit, args.repeat, cap=args.count_cap)
            info = None
            if timing is not None:
                query = build_query(
                    kind.filters,
                    limit=args.limit,
                    cursor=cursor_for(storage, kind, args.limit),
                    include_vcons=kind.include_vcons,
                )
                info = summarize(plans.plan(query))
            results.append((kind, timing, info))
            print(f"  measured {kind.name}", flush=True)
    finally:
        plans.close()
        storage.close()
    if args.json:
        meta["plans_from"] = plans.method
        document = to_json(results, args, meta)
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return report(results, args)


def base_p50(results: Sequence[Result]) -> float | None:
    """The p50 of ``no filter`` (the newest page), which ``x base`` divides by."""
    return next((t.p50_ms for k, t, _ in results if k.name == "no filter" and t), None)


def failing_kinds(results: Sequence[Result]) -> list[str]:
    """Kinds ``--check`` fails on: a Seq Scan of a big table where no common value allows it."""
    return [k.name for k, _, info in results if info and info.seq_scans and not k.common]


def to_json(
    results: Sequence[Result], args: argparse.Namespace, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The document ``--json`` writes (its shape is in the module docstring)."""
    base = base_p50(results)
    entries: list[dict[str, Any]] = []
    for kind, timing, info in results:
        entry: dict[str, Any] = {
            "name": kind.name,
            "filters": dict(kind.filters),
            "include_vcons": kind.include_vcons,
            "second_page": kind.second_page,
            "common": kind.common,
            "skipped": None,
        }
        if timing is None or info is None:
            entry["skipped"] = "no second page"
        else:
            entry |= {
                "rows": timing.rows,
                "matches": timing.matches,
                "matches_capped": timing.matches_capped,
                "p50_ms": round(timing.p50_ms, 3),
                "p95_ms": round(timing.p95_ms, 3),
                "x_base": round(timing.p50_ms / base, 2) if base else None,
                "plan": info.summary(),
            }
        entries.append(entry)
    run_meta = {
        "count": args.count,
        "repeat": args.repeat,
        "limit": args.limit,
        "seed": args.seed,
        "batch": args.batch,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        **meta,
    }
    return {"run": run_meta, "kinds": entries, "check": {"failing": failing_kinds(results)}}


def report(results: Sequence[Result], args: argparse.Namespace) -> int:
    """Prints the tables and warnings; 1 when ``--check`` fails, else 0."""
    base = base_p50(results)
    rows: list[list[str]] = []
    index_rows: list[list[str]] = []
    failing = failing_kinds(results)
    warnings: list[str] = []
    for kind, timing, info in results:
        if timing is None or info is None:
            rows.append([kind.name, "-", "-", "-", "-", "-", "skipped: no second page"])
            continue
        ratio = f"{timing.p50_ms / base:.2f}" if base else "-"
        verdict = "index" if not info.seq_scans else "SEQ " + ", ".join(info.seq_scan_labels)
        rows.append(
            [
                kind.name,
                str(timing.rows),
                timing.matches_text,
                f"{timing.p50_ms:.2f}",
                f"{timing.p95_ms:.2f}",
                ratio,
                verdict,
            ]
        )
        index_rows.append([kind.name, ", ".join(info.indexes) or "(none)"])
        if not info.indexes:
            warnings.append(f"WARNING: {kind.name}: the plan uses no index")
        if info.seq_scans:
            allowed = " (allowed: common value)" if kind.common else ""
            warnings.append(
                f"WARNING: {kind.name}: Seq Scan on {', '.join(info.seq_scan_labels)}{allowed}"
            )
        if (info.seq_scans or not info.indexes or args.show_plans) and info.plan:
            warnings.extend(f"    {line}" for line in render_plan(info.plan))
    headers = ["kind", "rows", "matches", "p50 ms", "p95 ms", "x base", "plan"]
    print()
    print("\n".join(table(headers, rows, right={1, 2, 3, 4, 5})))
    print()
    print("\n".join(table(["kind", "indexes in the plan"], index_rows, right=set())))
    print()
    for line in warnings:
        print(line)
    if not warnings:
        print("every kind reads the big tables through indexes only")
    print("\n(* = a common value: a Seq Scan is accepted there by --check)")
    if args.check and failing:
        print(f"--check: Seq Scan on a big table in: {', '.join(failing)}")
        return 1
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="vCons to load (0: none)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per kind")
    parser.add_argument("--database-url", help="a scratch database (default: embedded)")
    parser.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    parser.add_argument("--batch", type=int, default=500, help="vCons per save_many")
    parser.add_argument(
        "--threads", type=int, default=max(2, min(4, os.cpu_count() or 2)), help="load threads"
    )
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument("--count-cap", type=int, default=200_000, help="stop counting matches here")
    parser.add_argument("--check", action="store_true", help="exit 1 on a Seq Scan (see above)")
    parser.add_argument("--show-plans", action="store_true", help="print every kind's plan")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.count < 0 or args.batch < 1 or args.threads < 1:
        parser.error("--repeat, --batch and --threads must be >= 1, --count >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        return run(args.database_url, args)
    from conserver_supabase.testing import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        print("embedded PostgreSQL started")
        return run(server.url, args)


if __name__ == "__main__":
    sys.exit(main())
