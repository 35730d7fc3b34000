"""Hostile input against real PostgreSQL (15 and 18) and Redis: validation agrees with
the database (what it accepts is stored, as it was given), what it refuses is an
InvalidVconError naming the vCon and the field with nothing written anywhere, and a
refusal of the data by the database itself is an InvalidVconError too: never retried,
never journaled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings

from conserver_supabase import (
    ConserverSupabaseError,
    DatabaseError,
    InvalidVconError,
    SupabaseStorage,
)
from conserver_supabase.testing import make_vcon

from ..support.hostile import SETTINGS, hostile_vcons
from ..support.services import redis_client

pytestmark = pytest.mark.integration
JOURNAL = "conserver_supabase:journal"


def options(database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "redis_url": redis_url,
        "chain_lists": ["egress"],
        "retry_deadline": 0,
    }


@pytest.fixture
def store(database_url: str, redis_json_url: str) -> Iterator[SupabaseStorage]:
    with SupabaseStorage(options(database_url, redis_json_url)) as storage:
        yield storage


def stored(database_url: str, vcon_uuid: str) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()[0]


def as_jsonb(database_url: str, document: dict[str, Any]) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT %s::jsonb", [json.dumps(document)]).fetchone()[0]


def redis_keys_of(redis_url: str, vcon_uuid: str) -> list[bytes]:
    r = redis_client(redis_url)
    found = r.keys(f"*{vcon_uuid}*")
    if r.lrange(JOURNAL, 0, -1) or r.lrange("egress", 0, -1):
        found.append(b"(a list entry)")
    return found


@settings(SETTINGS, max_examples=150)
@given(document=hostile_vcons())
def test_validation_agrees_with_the_database(
    store: SupabaseStorage, database_url: str, document: dict[str, Any]
) -> None:
    """Whatever validation accepts, this PostgreSQL stores, and returns as it was given;
    what it refuses never reaches the database (no SQLSTATE on the error)."""
    refused: ConserverSupabaseError | None = None
    try:
        store.save_vcon(document)
    except ConserverSupabaseError as exc:
        refused = exc
    if refused is None:
        # As jsonb holds it: numbers are rewritten (1e16 -> 10000000000000000) until the
        # document is kept byte for byte (issue 17, fidelity).
        assert store.get_vcon(document["uuid"], use_cache=False) == as_jsonb(database_url, document)
        return
    assert not isinstance(refused, DatabaseError), refused
    assert isinstance(refused, InvalidVconError)
    assert refused.code is None, f"validation let through what the database refused: {refused}"


def _two_uuids() -> str:
    document = make_vcon(seed=11)
    text = json.dumps(document)
    return text[:-1] + ', "uuid": "00000000-0000-4000-8000-000000000000"}'


def _changed(change: Any) -> dict[str, Any]:
    document = make_vcon(seed=11)
    change(document)
    return document


MEASURED = [
    pytest.param(_changed(lambda d: d["dialog"][0].update(type=["text"])), "dialog[0].type"),
    pytest.param(_changed(lambda d: d["dialog"][0].update(type={"a": 1})), "dialog[0].type"),
    pytest.param(
        _changed(lambda d: d["dialog"][0].update(encoding=["none"])), "dialog[0].encoding"
    ),
    pytest.param(
        _changed(lambda d: d["analysis"][0].update(encoding={"none": 1})), "analysis[0].encoding"
    ),
    pytest.param(
        _changed(lambda d: d.update(created_at="2026-01-01T00:00:00+16:00")), "created_at"
    ),
    pytest.param(
        _changed(lambda d: d["dialog"][0].update(start="2026-01-01T00:00:00-23:59")),
        "dialog[0].start",
    ),
    pytest.param(_changed(lambda d: d["dialog"][0].update(duration=5e-324)), "dialog[0].duration"),
    pytest.param(_two_uuids(), "uuid", id="two-uuids"),
]


@pytest.mark.parametrize(("vcon", "field"), MEASURED)
def test_the_measured_cases_are_refused_with_the_field_and_write_nothing(
    store: SupabaseStorage, database_url: str, redis_json_url: str, vcon: Any, field: str
) -> None:
    vcon_uuid = make_vcon(seed=11)["uuid"]
    with pytest.raises(InvalidVconError) as caught:
        store.save_vcon(vcon)
    assert caught.value.field == field
    assert caught.value.code is None
    if field != "uuid":  # two uuids: which vCon was meant is what is unknown
        assert caught.value.vcon_uuid == vcon_uuid
    assert stored(database_url, vcon_uuid) is None
    assert redis_keys_of(redis_json_url, vcon_uuid) == []


EDGES = [
    lambda d: d.update(created_at="2026-01-01T00:00:00+15:59"),
    lambda d: d.update(updated_at="0001-01-01T00:00:00+15:59"),
    lambda d: d["dialog"][0].update(start="9999-12-31T23:59:59.999999999-15:59"),
    lambda d: d["dialog"][0].update(duration=1e-45),  # the smallest real above 0
    lambda d: d["dialog"][1].update(duration=3.4e38),
    lambda d: d["dialog"][2].update(duration=0),
]


@pytest.mark.parametrize(
    "change", EDGES, ids=["+15:59", "year-1", "year-9999", "1e-45", "3.4e38", "0"]
)
def test_the_edges_validation_accepts_are_stored(
    store: SupabaseStorage, database_url: str, change: Any
) -> None:
    document = _changed(change)
    assert store.save_vcon(document) == 1
    assert stored(database_url, document["uuid"]) == as_jsonb(database_url, document)


def test_a_refusal_of_the_data_by_the_database_is_invalid_and_not_journaled(
    fresh_database_url: str, redis_json_url: str
) -> None:
    """A rule only the database has (a CHECK constraint added to vcon-mcp's tables):
    InvalidVconError with the SQLSTATE and the field the constraint names; not retried,
    not journaled, nothing cached or pushed, nothing written."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE dialog ADD CONSTRAINT dialog_mediatype_check "
            "CHECK (mediatype IS DISTINCT FROM 'audio/forbidden')"
        )
    document = make_vcon(seed=12)
    document["dialog"][1]["mediatype"] = "audio/forbidden"
    opts = {**options(fresh_database_url, redis_json_url), "retry_deadline": 5}
    with SupabaseStorage(opts) as storage:
        with pytest.raises(InvalidVconError) as caught:
            storage.save_vcon(document)
        assert caught.value.code == "23514"
        assert caught.value.field == "dialog[].mediatype"
        assert caught.value.vcon_uuid == document["uuid"]
        assert (storage.stats()["retries"], storage.stats()["journaled"]) == (0, 0)
    assert stored(fresh_database_url, document["uuid"]) is None
    assert redis_keys_of(redis_json_url, document["uuid"]) == []
