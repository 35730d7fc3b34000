"""Property tests, no server: no vCon and no JSON text makes the storage raise anything
but its own errors (hostile values in every field; see tests/support/hostile.py), and
what validation refuses leaves nothing anywhere."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings

from conserver_supabase import (
    InvalidVconError,
    SupabaseStorage,
    testing,
    validate_vcon,
)
from conserver_supabase.testing import make_vcon

from ..support.hostile import SETTINGS, hostile_texts, hostile_vcons

OPTIONS = {
    "database_url": "postgresql://unused/x",
    "cache_format": "string",
    "cache_key_prefix": "app:",
    "retry_deadline": 0,
    "chain_lists": ["egress"],
}


@pytest.fixture
def store() -> Any:
    redis = fakeredis.FakeRedis()
    with SupabaseStorage(OPTIONS, database=testing.MemoryDatabase(), redis_client=redis) as s:
        yield s, redis


def _save(store: Any, vcon: Any) -> None:
    """Save; an InvalidVconError must name a field and leave Redis empty; any other
    exception than ours fails the test."""
    storage, redis = store
    refused: InvalidVconError | None = None
    try:
        storage.save_vcon(vcon)
    except InvalidVconError as exc:
        refused = exc
    if refused is None:
        redis.flushall()
        return
    assert refused.code is None  # refused before the database
    assert refused.field
    assert redis.keys("*") == []  # nothing cached, pushed or journaled


@settings(SETTINGS, max_examples=400)
@given(document=hostile_vcons())
def test_a_hostile_vcon_raises_only_our_errors(store: Any, document: dict[str, Any]) -> None:
    _save(store, document)


@settings(SETTINGS, max_examples=300)
@given(text=hostile_texts())
def test_hostile_json_text_raises_only_our_errors(store: Any, text: str) -> None:
    _save(store, text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["dialog"][0].update(type=["recording"]), "dialog[0].type"),
        (lambda d: d["dialog"][0].update(type={"kind": "text"}), "dialog[0].type"),
        (lambda d: d["dialog"][0].update(encoding=["none"]), "dialog[0].encoding"),
        (lambda d: d["analysis"][0].update(encoding={"x": 1}), "analysis[0].encoding"),
        (lambda d: d.update(created_at="2026-01-01T00:00:00+16:00"), "created_at"),
        (lambda d: d["dialog"][0].update(start="2026-01-01T00:00:00-23:59"), "dialog[0].start"),
        (lambda d: d["dialog"][0].update(duration=5e-324), "dialog[0].duration"),
    ],
    ids=[
        "type-list",
        "type-object",
        "encoding-list",
        "encoding-object",
        "+16:00",
        "-23:59",
        "5e-324",
    ],
)
def test_the_measured_cases_name_the_field(change: Any, field: str) -> None:
    document = make_vcon(seed=4)
    change(document)
    with pytest.raises(InvalidVconError) as caught:
        validate_vcon(document)
    assert caught.value.field == field
    assert caught.value.vcon_uuid == document["uuid"]
