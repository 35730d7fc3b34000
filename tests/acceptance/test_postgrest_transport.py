"""The PostgREST transport over real HTTP: one request per operation, errors mapped."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conserver_supabase import DatabaseRejectedError, DatabaseUnavailableError, StorageConfig
from conserver_supabase._database._postgrest import PostgrestDatabase

from ..support.postgrest_standin import PostgrestStandIn
from ..support.sql_calls import SqlCalls
from ..support.vcons import new_uuid, sample

pytestmark = pytest.mark.integration
KEY = "test-service-key"


@pytest.fixture
def server(database_url: str) -> Iterator[PostgrestStandIn]:
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        yield stand_in


def transport(url: str, key: str = KEY) -> SqlCalls:
    return SqlCalls(
        PostgrestDatabase(StorageConfig.from_options({"url": url, "key": key, "timeout": 5}))
    )


def test_exactly_one_request_per_operation(server: PostgrestStandIn) -> None:
    db = transport(server.url)
    document, other = sample(), sample()
    calls = [
        ("conserver_vcon_save", lambda: db.save(document, document["uuid"])),
        ("conserver_vcon_load", lambda: db.load(document["uuid"])),
        ("conserver_vcon_save_many", lambda: db.save_many([document, other])),
        ("conserver_vcon_load_many", lambda: db.load_many([document["uuid"], other["uuid"]])),
        ("conserver_vcon_remove", lambda: db.delete(document["uuid"])),
    ]
    try:
        for function, call in calls:
            before = len(server.requests)
            call()
            made = server.requests[before:]
            assert [r["path"] for r in made] == [f"/rest/v1/rpc/{function}"]
            assert made[0]["headers"]["apikey"] == KEY
            assert made[0]["headers"]["authorization"] == f"Bearer {KEY}"
    finally:
        db.close()
    assert json.loads(server.requests[0]["body"]) == {
        "p_document": document,
        "p_tenant": None,
        "p_base": {},  # the version the copy was read at: not known
    }


def test_wrong_key_is_a_rejection_that_says_which_key(server: PostgrestStandIn) -> None:
    db = transport(server.url, key="anon-or-wrong")
    try:
        with pytest.raises(DatabaseRejectedError) as caught:
            db.load(new_uuid())
    finally:
        db.close()
    assert caught.value.code == "PGRST301"
    assert "service-role key" in str(caught.value)
    assert "anon-or-wrong" not in str(caught.value)


def test_unreachable_server_is_unavailable() -> None:
    db = transport("http://127.0.0.1:1")
    vcon_uuid = new_uuid()
    try:
        with pytest.raises(DatabaseUnavailableError) as caught:
            db.load(vcon_uuid)
    finally:
        db.close()
    assert caught.value.vcon_uuid == vcon_uuid
    assert f"load of vCon {vcon_uuid} failed: database unavailable" in str(caught.value)
