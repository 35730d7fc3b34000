"""What SupabaseStorage sends to Supabase over PostgREST, request by request.

respx pins the exact requests and fakes failure shapes (fast, no database); the
last tests take the real path through supabase-py to the PostgREST stand-in in
front of a real PostgreSQL. Redis is real in both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    InvalidVconError,
    SupabaseStorage,
)
from conserver_supabase._documents import dumps

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client
from ..support.vcons import sample

URL = "https://proj.supabase.co"
KEY = "service-role-key-for-tests"
RPC = "/rest/v1/rpc/"


@pytest.fixture
def r(redis_json_url: str) -> Iterator[Any]:
    client = redis_client(redis_json_url)
    yield client
    client.close()


@pytest.fixture
def store(redis_json_url: str) -> Iterator[SupabaseStorage]:
    options = {"url": URL, "key": KEY, "redis_url": redis_json_url, "chain_lists": ["egress"]}
    with SupabaseStorage(options) as storage:
        yield storage


def journal_only(vcon_uuid: str) -> set[bytes]:
    """What a failed save leaves in Redis: the journal entry, the document and what the
    replay is fenced on, nothing else."""
    journal = "conserver_supabase:journal"
    kept = (journal, f"{journal}:vcon:{vcon_uuid}", f"{journal}:meta:{vcon_uuid}")
    return {key.encode() for key in kept}


def sent(call: Any) -> tuple[str, str, Any]:
    request = call.request
    return request.method, request.url.path, json.loads(request.content)


@pytest.mark.respx(base_url=URL)
class TestExactRequests:
    def test_save_is_one_rpc_call_with_the_document(
        self, respx_mock: respx.MockRouter, store: SupabaseStorage, r: Any
    ) -> None:
        document = sample()
        respx_mock.post(f"{RPC}conserver_vcon_save").respond(json={"version": 1})
        assert store.save_vcon(document) == 1
        assert len(respx_mock.calls) == 1
        assert sent(respx_mock.calls[0]) == (
            "POST",
            f"{RPC}conserver_vcon_save",
            # the vCon as its exact JSON text (a JSON string: the database keeps it);
            # None: tenant_id left as it is; {}: the version the copy was read at unknown
            {"p_document": dumps(document), "p_tenant": None, "p_base": {}},
        )
        headers = respx_mock.calls[0].request.headers
        assert headers["apikey"] == KEY
        assert headers["authorization"] == f"Bearer {KEY}"
        assert r.json().get(f"vcon:{document['uuid']}") == document
        assert r.lrange("egress", 0, -1) == [document["uuid"].encode()]

    def test_a_miss_is_one_rpc_call_and_a_hit_is_none(
        self, respx_mock: respx.MockRouter, store: SupabaseStorage, r: Any
    ) -> None:
        document = sample()
        respx_mock.post(f"{RPC}conserver_vcon_read").respond(
            json={"version": 3, "text": dumps(document)}
        )
        assert store.get_vcon(document["uuid"]) == document
        assert store.get_vcon(document["uuid"]) == document
        assert [sent(call) for call in respx_mock.calls] == [
            ("POST", f"{RPC}conserver_vcon_read", {"p_uuid": document["uuid"]})
        ]
        assert r.get(f"conserver_supabase:version:{{vcon:{document['uuid']}}}") == b"3"

    def test_delete_is_one_rpc_call(
        self, respx_mock: respx.MockRouter, store: SupabaseStorage, r: Any
    ) -> None:
        document = sample()
        r.json().set(f"vcon:{document['uuid']}", "$", document)
        respx_mock.post(f"{RPC}conserver_vcon_remove").respond(json=4)
        assert store.delete_vcon(document["uuid"]) is True
        assert [sent(call) for call in respx_mock.calls] == [
            ("POST", f"{RPC}conserver_vcon_remove", {"p_uuid": document["uuid"]})
        ]
        assert r.exists(f"vcon:{document['uuid']}") == 0
        assert r.get(f"conserver_supabase:version:{{vcon:{document['uuid']}}}") == b"-4"


@pytest.mark.respx(base_url=URL)
class TestFailureShapes:
    """A save the database did not take leaves Redis untouched and pushes nothing.

    Retries are off here (retry_deadline 0) to see one failure's mapping; test_retry.py
    covers retrying."""

    @pytest.fixture
    def store(self, redis_json_url: str) -> Iterator[SupabaseStorage]:
        options = {
            "url": URL,
            "key": KEY,
            "redis_url": redis_json_url,
            "chain_lists": ["egress"],
            "retry_deadline": 0,
        }
        with SupabaseStorage(options) as storage:
            yield storage

    @pytest.mark.parametrize(
        ("response", "error", "text"),
        [
            (
                httpx.Response(
                    503, json={"code": "PGRST001", "message": "no connection", "details": None}
                ),
                DatabaseUnavailableError,
                "database unavailable",
            ),
            (
                httpx.Response(401, json={"code": "PGRST301", "message": "JWT invalid"}),
                DatabaseRejectedError,
                "service-role key",
            ),
            (httpx.ReadTimeout("timed out"), DatabaseUnavailableError, "timed out"),
            (httpx.ConnectError("refused"), DatabaseUnavailableError, "refused"),
        ],
        ids=["503", "401", "timeout", "refused"],
    )
    def test_failed_save(
        self,
        respx_mock: respx.MockRouter,
        store: SupabaseStorage,
        r: Any,
        response: Any,
        error: type[Exception],
        text: str,
    ) -> None:
        document = sample()
        route = respx_mock.post(f"{RPC}conserver_vcon_save")
        if isinstance(response, Exception):
            route.side_effect = response
        else:
            route.return_value = response
        with pytest.raises(error, match=text) as caught:
            store.save_vcon(document)
        assert document["uuid"] in str(caught.value)
        assert KEY not in str(caught.value)
        assert len(respx_mock.calls) == 1  # supabase-py itself never retries a POST
        # Only a transient failure is journaled; a refusal (401) leaves nothing behind.
        journaled = error is DatabaseUnavailableError
        assert set(r.keys("*")) == (journal_only(document["uuid"]) if journaled else set())

    def test_the_sql_guard_becomes_an_invalid_vcon_error(
        self, respx_mock: respx.MockRouter, store: SupabaseStorage, r: Any
    ) -> None:
        document = sample()
        respx_mock.post(f"{RPC}conserver_vcon_save").respond(
            400,
            json={
                "code": "22023",
                "message": "invalid vCon: must be a string",
                "details": "parties[0].name",
                "hint": None,
            },
        )
        with pytest.raises(InvalidVconError) as caught:
            store.save_vcon(document)
        assert caught.value.field == "parties[0].name"
        assert r.keys("*") == []  # invalid: not even journaled


@pytest.mark.integration
def test_round_trips_through_supabase_py_to_a_real_database(
    database_url: str, redis_url: str
) -> None:
    """save: 1 request; get hit: 0; get miss: 1; delete: 1."""
    document = sample()
    with (
        PostgrestStandIn(database_url, key=KEY) as server,
        SupabaseStorage({"url": server.url, "key": KEY, "redis_url": redis_url}) as storage,
    ):
        client = redis_client(redis_url)
        counts = []
        for step in (
            lambda: storage.save_vcon(document),
            lambda: storage.get_vcon(document["uuid"]),
            lambda: client.delete(f"vcon:{document['uuid']}"),
            lambda: storage.get_vcon(document["uuid"]),
            lambda: storage.delete_vcon(document["uuid"]),
        ):
            before = len(server.requests)
            step()
            counts.append(len(server.requests) - before)
        assert counts == [1, 0, 0, 1, 1]
        assert storage.get_vcon(document["uuid"]) is None
