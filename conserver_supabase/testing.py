"""Helpers for tests and demos, shipped for downstream users too.

:func:`make_vcon` builds realistic, valid vCon documents (plain dicts) from a seed,
without importing the ``vcon`` library (which reconfigures logging on import).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["make_vcon"]

_FIRST = ["Sarah", "David", "Maria", "Tom", "Rachel", "Lisa", "Mike", "Aisha", "Kenji", "Olga"]
_LAST = ["Johnson", "Chen", "Gonzalez", "Bradley", "Kim", "Park", "Rivera", "Khan", "Sato"]
_TOPICS = [
    ("billing dispute", "I was charged twice for my subscription this month."),
    ("VPN support", "The VPN client disconnects every few minutes since the update."),
    ("cancellation", "I would like to cancel unless you can offer a better plan."),
    ("delivery delay", "My order was due on Monday and it still has not arrived."),
    ("password reset", "I cannot log in and the reset email never comes."),
]


def make_vcon(
    seed: int | None = None, *, dialogs: int = 3, vcon_uuid: str | None = None
) -> dict[str, Any]:
    """Return a valid vCon: 2 parties, ``dialogs`` text dialogs, analysis per dialog,
    a tags attachment. The same seed gives the same document."""
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    topic, opening = rng.choice(_TOPICS)
    customer = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    agent = f"Agent {rng.choice(_FIRST)} {rng.choice(_LAST)}"
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(500_000))
    the_uuid = vcon_uuid or str(uuid.UUID(int=rng.getrandbits(128), version=4))
    dialog = []
    analysis = []
    for index in range(dialogs):
        at = start + timedelta(minutes=5 * index)
        line = (
            opening
            if index == 0
            else rng.choice(
                ["Thanks, that helps.", "Can you check again?", "Yes, please go ahead."]
            )
        )
        dialog.append(
            {
                "type": "text",
                "start": at.isoformat(),
                "duration": rng.randrange(20, 600),
                "parties": [0, 1],
                "originator": index % 2,
                "mediatype": "text/plain",
                "body": f"{customer}: {line}\n{agent}: Let me look into that for you.",
                "encoding": "none",
            }
        )
        analysis.append(
            {
                "type": "summary",
                "dialog": index,
                "vendor": "demo-summarizer",
                "product": "v1",
                "encoding": "none",
                "body": f"{customer} called about a {topic}; {agent} followed up.",
            }
        )
    return {
        "vcon": "0.4.0",
        "uuid": the_uuid,
        "created_at": start.isoformat(),
        "subject": f"{customer} / {agent}: {topic}",
        "parties": [
            {
                "tel": f"+1555{rng.randrange(10**7):07d}",
                "name": customer,
                "meta": {"role": "customer"},
            },
            {
                "mailto": f"{agent.split()[1].lower()}@example.com",
                "name": agent,
                "meta": {"role": "agent"},
            },
        ],
        "dialog": dialog,
        "analysis": analysis,
        "attachments": [
            {
                "type": "tags",
                "encoding": "json",
                "body": [
                    f"topic:{topic.replace(' ', '-')}",
                    f"priority:{rng.choice(['low', 'high'])}",
                ],
            },
        ],
    }
