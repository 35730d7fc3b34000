"""Helpers for tests and demos, shipped for downstream users too.

* :func:`make_vcon` builds realistic, valid vCon documents (plain dicts) from a seed,
  without importing the ``vcon`` library (which reconfigures logging on import);
* :class:`MemoryDatabase` is the database seam (:class:`Database`) in memory: pass it
  as ``SupabaseStorage(options, database=MemoryDatabase())`` to test a chain link
  without PostgreSQL (give it ``redis_client=`` a fake Redis too, or a real one);
* :func:`put_working_copy` and :func:`evict` do to a storage's Redis what the conserver
  does (its working copy at ``vcon:{uuid}``, then eviction);
* :class:`EmbeddedPostgres` and :class:`EmbeddedRedis` start throwaway servers (the
  ``embedded`` extra).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._database import Database
from ._embedded import EmbeddedPostgres, EmbeddedRedis
from ._memory import MemoryDatabase

if TYPE_CHECKING:
    from ._storage import SupabaseStorage

__all__ = [
    "Database",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "MemoryDatabase",
    "chain_length",
    "drop_chain",
    "evict",
    "key_type",
    "make_vcon",
    "put_working_copy",
]


def put_working_copy(storage: SupabaseStorage, document: Mapping[str, Any]) -> None:
    """Put ``document`` where the conserver keeps the vCon it processes: ``vcon:{uuid}``
    in the storage's Redis, as RedisJSON (a JSON string where RedisJSON is missing)."""
    storage._redis.conserver.put(document)


def evict(storage: SupabaseStorage, vcon_uuid: str) -> None:
    """Remove ``vcon:{uuid}`` from the storage's Redis, as eviction or its TTL would."""
    storage._redis.conserver.evict(vcon_uuid)


def key_type(storage: SupabaseStorage, vcon_uuid: str) -> str:
    """The Redis type of ``vcon:{uuid}``: ``ReJSON-RL``, ``string`` or ``none``."""
    return storage._redis.conserver.kind(vcon_uuid)


def chain_length(storage: SupabaseStorage, list_name: str) -> int:
    """How many uuids wait on a chain list of the storage's Redis."""
    return storage._redis.conserver.length(list_name)


def drop_chain(storage: SupabaseStorage, list_name: str) -> None:
    """Remove a chain list from the storage's Redis."""
    storage._redis.conserver.drop(list_name)


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
