"""A real database transport that counts its calls, and the storage tests' views of the
database and the cache."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from conserver_supabase import (
    SupabaseStorage,
)
from conserver_supabase._database import Database, Tenant, Versioned


class CountingDatabase:
    """A real transport, counting calls (to prove what the cache saved us): each call is
    named after the SQL function it makes (``save``/``save_many``, ``fetch``/
    ``fetch_many`` by the number of vCons)."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.before_load: Any = None

    def save(
        self,
        documents: Sequence[Mapping[str, Any]],
        tenants: Sequence[Tenant] | None,
        bases: Sequence[int | None] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        self.calls.append("save" if len(documents) == 1 else "save_many")
        return self.inner.save(documents, tenants, bases, texts)

    def fetch(self, vcon_uuids: Sequence[str]) -> dict[str, Versioned]:
        self.calls.append("fetch" if len(vcon_uuids) == 1 else "fetch_many")
        found = self.inner.fetch(vcon_uuids)
        if self.before_load is not None:
            for vcon_uuid in vcon_uuids:
                self.before_load(vcon_uuid)
        return found

    def replay(
        self,
        document: Mapping[str, Any],
        tenant: Tenant | None,
        base: Mapping[str, Any],
        text: str | None = None,
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        self.calls.append("replay")
        return self.inner.replay(document, tenant, base, text)

    def exists(self, vcon_uuid: str) -> bool:
        self.calls.append("exists")
        return self.inner.exists(vcon_uuid)

    def delete(self, vcon_uuid: str) -> int:
        self.calls.append("delete")
        return self.inner.delete(vcon_uuid)

    def search(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("search")
        return self.inner.search(query)

    def saved_between(self, query: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("saved_between")
        return self.inner.saved_between(query)

    def feed_poll(self, name: str, state: Mapping[str, Any], limit: int) -> dict[str, Any]:
        self.calls.append("feed_poll")
        return self.inner.feed_poll(name, state, limit)

    def close(self) -> None:
        self.inner.close()


def storage(db: CountingDatabase, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {"database_url": "postgresql://unused/x", "redis_url": redis_url, **options}, database=db
    )


def stored(database_url: str, vcon_uuid: str) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()
    return None if row is None else row[0]


def cached(r: Any, vcon_uuid: str) -> Any:
    key = f"vcon:{vcon_uuid}"
    kind = r.type(key)
    if kind == b"ReJSON-RL":
        return r.json().get(key)
    if kind == b"string":
        return json.loads(r.get(key))
    return None
