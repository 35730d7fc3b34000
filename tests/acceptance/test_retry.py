"""Retries of transient database failures: unit tests of the policy, then real faults
from the PostgREST stand-in in front of a real PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conserver_supabase import (
    DatabaseRejectedError,
    DatabaseUnavailableError,
    SupabaseStorage,
)
from conserver_supabase._redis._cache import FENCED, Entry

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client
from ..support.vcons import sample

KEY = "retry-test-key"


@pytest.fixture
def server(database_url: str) -> Iterator[PostgrestStandIn]:
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        yield stand_in


def storage(server: PostgrestStandIn, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {"url": server.url, "key": KEY, "redis_url": redis_url, "timeout": 5, **options}
    )


def rows(database_url: str, vcon_uuid: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        return tuple(
            conn.execute(
                f"SELECT count(*) FROM {table} WHERE vcon_id = %s", [vcon_uuid]
            ).fetchone()[0]
            for table in ("parties", "dialog", "analysis", "attachments")
        )


@pytest.mark.integration
class TestRealFaults:
    def test_503s_are_retried_until_the_save_lands(
        self, server: PostgrestStandIn, redis_json_url: str, database_url: str
    ) -> None:
        document = sample()
        server.faults = ["503", "503"]
        with storage(server, redis_json_url) as store:
            assert store.save_vcon(document) == 1
            assert store.get_vcon(document["uuid"]) == document
        assert len([r for r in server.requests if "vcon_save" in r["path"]]) == 3

    def test_a_save_whose_answer_was_lost_is_repeated_safely(
        self, server: PostgrestStandIn, redis_json_url: str, database_url: str
    ) -> None:
        """The first attempt committed, then the connection dropped: the retry writes the
        same rows again (no duplicates), only the version moves on."""
        document = sample()
        server.faults = ["commit-then-reset"]
        with storage(server, redis_json_url) as store:
            assert store.save_vcon(document) == 2
        expected = tuple(
            len(document.get(name) or [])
            for name in ("parties", "dialog", "analysis", "attachments")
        )
        assert rows(database_url, document["uuid"]) == expected
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM vcons").fetchone() == (1,)
            stored = conn.execute("SELECT conserver_vcon_load(%s)", [document["uuid"]]).fetchone()[
                0
            ]
        assert stored == document

    def test_a_delete_whose_answer_was_lost_still_fences_off_older_writes(
        self, server: PostgrestStandIn, redis_json_url: str, database_url: str
    ) -> None:
        """Cached at version 1; a save commits version 2 whose cache write is late; the
        delete commits version 3 and its answer is lost. The retry finds nothing to
        delete but names version 3, so the late write of version 2 cannot bring the
        deleted vCon back."""
        document = sample()
        late = {**document, "subject": "late"}
        with storage(server, redis_json_url) as store:
            store.save_vcon(document)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(late)])
            server.faults = ["commit-then-reset"]
            store.delete_vcon(document["uuid"])
            r = redis_client(redis_json_url)
            assert r.get(f"conserver_supabase:version:{{vcon:{document['uuid']}}}") == b"-3"
            late_write = Entry(document["uuid"], json.dumps(late), "overwrite", 2)
            assert store._redis._cache.write(late_write) == FENCED  # older than the delete
            assert store.get_vcon(document["uuid"]) is None
            assert store.exists(document["uuid"]) is False

    def test_a_rejection_is_not_retried(
        self, server: PostgrestStandIn, redis_json_url: str
    ) -> None:
        with (
            SupabaseStorage(
                {"url": server.url, "key": "wrong", "redis_url": redis_json_url}
            ) as store,
            pytest.raises(DatabaseRejectedError),
        ):
            store.save_vcon(sample())
        assert len(server.requests) == 1

    def test_a_dead_database_fails_within_the_deadline(
        self, server: PostgrestStandIn, redis_json_url: str
    ) -> None:
        server.faults = ["reset"] * 1000
        started = time.monotonic()
        with (
            storage(server, redis_json_url, retry_deadline=0.6) as store,
            pytest.raises(DatabaseUnavailableError) as caught,
        ):
            store.get_vcon(sample()["uuid"])
        assert time.monotonic() - started < 0.6 + 2  # the deadline plus one attempt, at most
        assert caught.value.attempts >= 3
        assert caught.value.attempts == len(server.requests)

    def test_the_psycopg_transport_retries_too(self, redis_json_url: str) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        options = {
            "database_url": f"postgresql://u@127.0.0.1:{port}/db",
            "redis_url": redis_json_url,
            "retry_deadline": 1.0,
            "timeout": 0.3,  # each attempt waits this long for a pooled connection
        }
        with SupabaseStorage(options) as store, pytest.raises(DatabaseUnavailableError) as caught:
            store.exists(sample()["uuid"])
        assert caught.value.attempts >= 2
