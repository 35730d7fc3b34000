"""The PostgREST stand-in's table endpoints (what the example design's access pattern
sends) against the real PostgreSQL, and the round-trip benchmark over PostgREST."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import TESTS
from ..support.vcons import new_uuid

pytestmark = pytest.mark.integration
KEY = "table-test-key"
MERGE = {"Prefer": "resolution=merge-duplicates,return=representation"}
MERGE_MINIMAL = {"Prefer": "resolution=merge-duplicates"}


@pytest.fixture
def server(database_url: str) -> Iterator[PostgrestStandIn]:
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        yield stand_in


@pytest.fixture
def http(server: PostgrestStandIn) -> Iterator[httpx.Client]:
    headers = {"apikey": KEY, "Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=f"{server.url}/rest/v1", headers=headers) as client:
        yield client


def vcon_row(u: str, subject: str, created_at: str = "2026-01-02T03:04:05+00:00") -> Any:
    return {"uuid": u, "subject": subject, "created_at": created_at, "redacted": {"k": [1]}}


def test_an_upsert_twice_leaves_one_row_updated(http: httpx.Client, sql: Any) -> None:
    """merge-duplicates on ``on_conflict`` updates the given columns; JSON arrays land in
    int[] columns and objects in jsonb; return=representation answers 201 with rows."""
    u = new_uuid()
    first = http.post("/vcons", params={"on_conflict": "uuid"}, headers=MERGE,
                      json=vcon_row(u, "first"))  # fmt: skip
    assert first.status_code == 201
    assert [(r["uuid"], r["subject"], r["redacted"]) for r in first.json()] == [
        (u, "first", {"k": [1]})
    ]
    again = http.post("/vcons", params={"on_conflict": "uuid"}, headers=MERGE,
                      json=vcon_row(u, "second"))  # fmt: skip
    assert again.status_code == 201
    assert again.json()[0]["id"] == first.json()[0]["id"]
    assert sql.execute("SELECT subject FROM vcons WHERE uuid = %s", [u]).fetchall() == [("second",)]
    dialogs = [{"vcon_id": u, "dialog_index": i, "type": "text", "parties": [0, 1],
                "body": f"line {i}"} for i in range(2)]  # fmt: skip
    for body in ("once", "twice"):
        dialogs[1]["body"] = body
        done = http.post("/dialog", params={"on_conflict": "vcon_id,dialog_index"},
                         headers=MERGE_MINIMAL, json=dialogs)  # fmt: skip
        assert (done.status_code, done.content) == (201, b"")
    assert sql.execute(
        "SELECT dialog_index, parties, body FROM dialog WHERE vcon_id = %s ORDER BY 1", [u]
    ).fetchall() == [(0, [0, 1], "line 0"), (1, [0, 1], "twice")]


def test_a_plain_insert_of_a_duplicate_is_a_conflict(http: httpx.Client) -> None:
    u = new_uuid()
    assert http.post("/vcons", json=vcon_row(u, "a")).status_code == 201
    duplicate = http.post("/vcons", json=vcon_row(u, "b"))
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "23505"
    keys = http.post("/vcons", json=[vcon_row(new_uuid(), "c"), {"uuid": new_uuid()}])
    assert (keys.status_code, keys.json()["code"]) == (400, "PGRST102")


def test_get_filters_orders_and_limits(http: httpx.Client) -> None:
    """eq, ilike with ``*``, in.(), order with direction, limit, and a column list."""
    uuids = [new_uuid() for _ in range(4)]
    rows = [vcon_row(u, f"Topic {i} billing" if i % 2 else f"topic {i} other",
                     f"2026-01-0{i + 1}T00:00:00+00:00") for i, u in enumerate(uuids)]  # fmt: skip
    assert http.post("/vcons", json=rows).status_code == 201

    def get(**params: str) -> Any:
        response = http.get("/vcons", params={"select": "uuid,subject", **params})
        assert response.status_code == 200, response.text
        return response.json()

    assert get(uuid=f"eq.{uuids[2]}") == [{"uuid": uuids[2], "subject": "topic 2 other"}]
    found = get(subject="ilike.*BILLING*", order="created_at.desc", limit="1")
    assert found == [{"uuid": uuids[3], "subject": "Topic 3 billing"}]
    listed = get(uuid=f"in.({uuids[0]},{uuids[1]})", order="created_at.asc")
    assert [r["uuid"] for r in listed] == uuids[:2]
    assert get(uuid=f"eq.{new_uuid()}") == []
    bad = http.get("/vcons", params={"uuid": "near.x"})
    assert (bad.status_code, bad.json()["code"]) == (400, "PGRST100")
    assert http.get("/no_such_table").status_code == 404


def test_delete_removes_the_row_and_its_children(http: httpx.Client, sql: Any) -> None:
    u = new_uuid()
    http.post("/vcons", json=vcon_row(u, "gone soon")).raise_for_status()
    http.post("/parties", json={"vcon_id": u, "party_index": 0, "name": "A"}).raise_for_status()
    deleted = http.delete("/vcons", params={"uuid": f"eq.{u}"})
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert http.get("/vcons", params={"uuid": f"eq.{u}"}).json() == []
    assert sql.execute("SELECT count(*) FROM parties WHERE vcon_id = %s", [u]).fetchone() == (0,)


def test_tables_share_profile_key_and_faults_with_rpc(
    server: PostgrestStandIn, http: httpx.Client, sql: Any
) -> None:
    """The schema comes from Content-/Accept-Profile; a wrong key, a 503 and a
    commit-then-reset meet table requests as they meet RPC calls."""
    sql.execute("CREATE SCHEMA elsewhere")
    sql.execute("CREATE TABLE elsewhere.notes (id int PRIMARY KEY, body text)")
    try:
        _other_schema_and_faults(server, http, sql)
    finally:
        sql.execute("DROP SCHEMA elsewhere CASCADE")  # the session's database is shared


def _other_schema_and_faults(server: PostgrestStandIn, http: httpx.Client, sql: Any) -> None:
    wrote = http.post("/notes", headers={"Content-Profile": "elsewhere"}, json={"id": 1})
    assert wrote.status_code == 201
    read = http.get("/notes", headers={"Accept-Profile": "elsewhere"})
    assert read.json() == [{"id": 1, "body": None}]
    assert http.get("/notes").status_code == 404  # not in public
    assert http.get("/vcons", headers={"apikey": "wrong"}).status_code == 401
    server.faults = ["503", "commit-then-reset"]
    assert http.get("/vcons").status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/notes", headers={"Content-Profile": "elsewhere"}, json={"id": 2})
    assert sql.execute("SELECT count(*) FROM elsewhere.notes").fetchone() == (2,)
    assert [r["method"] for r in server.requests[-2:]] == ["GET", "POST"]


def test_round_trips_over_postgrest_against_the_example_design(
    database_url: str, redis_json_url: str
) -> None:
    """Over PostgREST too: one request per save, miss, search and delete, none per hit;
    the example's pattern needs 11, 5, 101 and 1 (counted by the stand-in)."""
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.round_trips import run

    results = run(database_url, redis_json_url, latency=0.0, repeat=2, transports=["postgrest"])
    assert "operations" not in results  # the psycopg transport did not run
    trips = {name: (r["ours"]["round_trips"], r["baseline"]["round_trips"])
             for name, r in results["postgrest"]["operations"].items()}  # fmt: skip
    assert trips == {
        "save": (1, 11),
        "get miss": (1, 5),
        "get hit": (0, 0),
        "search, 20 hits": (1, 101),
        "delete": (1, 1),
    }


def test_a_pooled_connection_the_server_closed_is_replaced(http: httpx.Client, sql: Any) -> None:
    """The stand-in reuses connections; one terminated while idle costs no request."""
    assert http.get("/vcons").status_code == 200
    terminated = sql.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()
    assert terminated[0] >= 1
    assert http.get("/vcons").status_code == 200
    assert http.post("/rpc/conserver_vcon_exists", json={"p_uuid": new_uuid()}).json() is False
