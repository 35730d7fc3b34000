"""Tenants: stamped on every row as vcon-mcp's row-level security expects, searches
scoped to a storage's tenant (conserver_supabase/tenants.py, migration 0008).

The database tests run on vcon-mcp's layout (tests/sql/vcon_mcp_layout.sql: its
child-tenant triggers, get_current_tenant_id() and the ``<table>_tenant_isolation``
policies for ``authenticated``) with our migrations on top.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from conserver_supabase import (
    DatabaseRejectedError,
    InvalidVconError,
    SupabaseStorage,
)
from conserver_supabase import _migrations as migrations

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import TESTS, closing_later
from ..support.vcons import new_uuid

TABLES = ("vcons", "parties", "dialog", "analysis", "attachments")


def vcon(tenant: Any = None, *, parties: int = 2, **attachment: Any) -> dict[str, Any]:
    """A small vCon with a row in every table; ``tenant``: a tenant attachment's id."""
    attachments: list[dict[str, Any]] = [{"type": "tags", "body": ["kind:test"]}]
    if tenant is not None:
        attachments.append({"type": "tenant", "body": {"id": tenant}, **attachment})
    return {
        "vcon": "0.4.0",
        "uuid": new_uuid(),
        "created_at": "2026-01-02T03:04:05+00:00",
        "subject": "tenant test",
        "parties": [{"name": f"party {n}", "tel": f"+1555010000{n}"} for n in range(parties)],
        "dialog": [{"type": "text", "start": "2026-01-02T03:04:05Z", "parties": [0], "body": "hi"}],
        "analysis": [{"type": "summary", "vendor": "test", "body": "a summary"}],
        "attachments": attachments,
    }


@pytest.fixture
def mcp_url(empty_database_url: str) -> str:
    """A database with vcon-mcp's layout (RLS policies included), then our migrations."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute((TESTS / "sql" / "vcon_mcp_layout.sql").read_text())
    migrations.apply(empty_database_url)
    return empty_database_url


@pytest.fixture
def opened(mcp_url: str, redis_json_url: str) -> Any:
    """``opened(**options)``: a SupabaseStorage on the vcon-mcp database (psycopg)."""

    def make(**options: Any) -> SupabaseStorage:
        base = {"database_url": mcp_url, "redis_url": redis_json_url}
        return closing_later(SupabaseStorage({**base, **options}))

    return make


def tenants(url: str, vcon_uuid: str) -> dict[str, set[str | None]]:
    """The distinct tenant_id of the vCon's rows, per table."""
    found = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            column = "uuid" if table == "vcons" else "vcon_id"
            rows = conn.execute(
                f"SELECT DISTINCT tenant_id FROM {table} WHERE {column} = %s", [vcon_uuid]
            ).fetchall()
            found[table] = {row[0] for row in rows}
    return found


def everywhere(tenant: str | None) -> dict[str, set[str | None]]:
    return {table: {tenant} for table in TABLES}


class TestStamping:
    def test_fixed_tenant_on_every_row_and_the_document_untouched(
        self, opened: Any, mcp_url: str
    ) -> None:
        storage = opened(tenant_id="acme")
        document = vcon()
        storage.save_vcon(document)
        assert tenants(mcp_url, document["uuid"]) == everywhere("acme")
        assert storage.get_vcon(document["uuid"], use_cache=False) == document

    def test_from_attachment_json_string_body_and_none(self, opened: Any, mcp_url: str) -> None:
        storage = opened(tenant_from_attachment=True)
        parsed = vcon()
        parsed["attachments"].append(
            {"type": "tenant", "encoding": "json", "body": json.dumps({"id": "globex"})}
        )
        plain, without = vcon("acme"), vcon()
        storage.save_many([parsed, plain, without])
        assert tenants(mcp_url, parsed["uuid"]) == everywhere("globex")
        assert tenants(mcp_url, plain["uuid"]) == everywhere("acme")
        assert tenants(mcp_url, without["uuid"]) == everywhere(None)

    def test_resave_moves_every_row_when_the_attachment_changes(
        self, opened: Any, mcp_url: str
    ) -> None:
        storage = opened(tenant_from_attachment=True)
        document = vcon("acme", parties=3)
        storage.save_vcon(document)
        moved = {**vcon("globex", parties=2), "uuid": document["uuid"]}
        storage.save_vcon(moved)
        assert tenants(mcp_url, document["uuid"]) == everywhere("globex")
        storage.save_vcon({**vcon(parties=1), "uuid": document["uuid"]})  # no attachment
        assert tenants(mcp_url, document["uuid"]) == everywhere(None)

    def test_without_tenant_options_a_resave_leaves_the_tenant_alone(
        self, opened: Any, mcp_url: str
    ) -> None:
        document = vcon("acme")
        opened(tenant_id="acme").save_vcon(document)
        opened().save_vcon(document)  # the pre-0008 call: conserver_vcon_save(jsonb)
        opened().save_many([document])
        assert tenants(mcp_url, document["uuid"]) == everywhere("acme")

    def test_fixed_tenant_refuses_another_tenants_vcon_and_claims_an_unowned_one(
        self, opened: Any, mcp_url: str
    ) -> None:
        theirs, unowned = vcon(), vcon()
        opened(tenant_id="globex").save_vcon(theirs)
        opened().save_vcon(unowned)
        acme = opened(tenant_id="acme", journal_list="")
        with pytest.raises(DatabaseRejectedError, match="belongs to another tenant"):
            acme.save_vcon(theirs)
        with pytest.raises(DatabaseRejectedError, match="belongs to another tenant"):
            acme.save_many([vcon(), theirs])  # all or nothing
        assert tenants(mcp_url, theirs["uuid"]) == everywhere("globex")
        acme.save_vcon(unowned)
        assert tenants(mcp_url, unowned["uuid"]) == everywhere("acme")

    def test_conflicting_attachment_is_refused_before_anything_is_written(
        self, opened: Any, mcp_url: str
    ) -> None:
        storage = opened(tenant_id="acme", tenant_from_attachment=True)
        document = vcon("globex")
        with pytest.raises(InvalidVconError):
            storage.save_vcon(document)
        assert not storage.exists(document["uuid"])


class TestRowLevelSecurity:
    """What vcon-mcp's users see of what we wrote: ``authenticated`` with a tenant claim."""

    @pytest.fixture
    def saved(self, opened: Any) -> dict[str | None, str]:
        documents = {"acme": vcon("acme"), "globex": vcon("globex"), None: vcon()}
        opened(tenant_from_attachment=True).save_many(list(documents.values()))
        return {tenant: document["uuid"] for tenant, document in documents.items()}

    @staticmethod
    def visible(conn: psycopg.Connection[Any], vcon_uuid: str) -> dict[str, int]:
        counts = {}
        for table in TABLES:
            column = "uuid" if table == "vcons" else "vcon_id"
            counts[table] = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = %s", [vcon_uuid]
            ).fetchone()[0]
        return counts

    def test_own_tenant_and_unowned_rows_visible_other_tenants_not(
        self, mcp_url: str, saved: dict[str | None, str]
    ) -> None:
        rows = {"vcons": 1, "parties": 2, "dialog": 1, "analysis": 1, "attachments": 2}
        nothing = dict.fromkeys(TABLES, 0)
        with psycopg.connect(mcp_url) as conn:  # one transaction, rolled back
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute(
                "SELECT set_config('request.jwt.claims', %s, true)", ['{"tenant_id":"acme"}']
            )
            assert self.visible(conn, saved["acme"]) == rows
            assert self.visible(conn, saved["globex"]) == nothing
            assert self.visible(conn, saved[None]) == {**rows, "attachments": 1}  # everyone's
            # another tenant's rows cannot be touched; own rows cannot be given away
            assert (
                conn.execute(
                    "UPDATE parties SET name = 'x' WHERE vcon_id = %s", [saved["globex"]]
                ).rowcount
                == 0
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "UPDATE dialog SET tenant_id = 'globex' WHERE vcon_id = %s", [saved["acme"]]
                )

    def test_session_tenant_fallback(self, mcp_url: str, saved: dict[str | None, str]) -> None:
        """Without a JWT claim, get_current_tenant_id() reads app.current_tenant_id."""
        with psycopg.connect(mcp_url) as conn:
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("SELECT set_config('app.current_tenant_id', 'globex', true)")
            assert self.visible(conn, saved["globex"])["analysis"] == 1
            assert self.visible(conn, saved["acme"])["analysis"] == 0


class TestSearch:
    def test_scoped_to_the_tenant_and_unowned_vcons(self, opened: Any) -> None:
        acme, globex, unowned = vcon("acme"), vcon("globex"), vcon()
        opened(tenant_from_attachment=True).save_many([acme, globex, unowned])
        scoped = opened(tenant_id="acme")
        expected = sorted([acme["uuid"], unowned["uuid"]])
        assert sorted(scoped.search(tel="+15550100001")) == expected
        page = scoped.search(subject="tenant test", include_vcons=True, limit=1)
        assert page.items[0]["uuid"] in expected
        assert scoped.search(subject="tenant test", cursor=page.next_cursor).items[0] in expected
        assert len(opened().search(subject="tenant test")) == 3  # no tenant: everything

    def test_reads_by_uuid_are_not_scoped(self, opened: Any) -> None:
        """Documented choice (docs/security.md): a uuid names one vCon; the cache could
        not scope it anyway; only searches, which enumerate, are scoped."""
        theirs = vcon("globex")
        opened(tenant_from_attachment=True).save_vcon(theirs)
        assert opened(tenant_id="acme").get_vcon(theirs["uuid"], use_cache=False) == theirs

    def test_through_postgrest(self, mcp_url: str, redis_json_url: str) -> None:
        """The overloads of 0008 through PostgREST's named arguments."""
        with PostgrestStandIn(mcp_url, key="k") as server:
            base = {"url": server.url, "key": "k", "redis_url": redis_json_url}
            with SupabaseStorage({**base, "tenant_from_attachment": True}) as writer:
                acme, globex = vcon("acme"), vcon("globex")
                writer.save_many([acme, globex])
                writer.save_vcon(acme)
            with SupabaseStorage({**base, "tenant_id": "globex"}) as reader:
                assert reader.search(subject="tenant test").items == [globex["uuid"]]
                with pytest.raises(DatabaseRejectedError, match="another tenant"):
                    reader.save_vcon(acme)
        assert tenants(mcp_url, acme["uuid"]) == everywhere("acme")
        assert tenants(mcp_url, globex["uuid"]) == everywhere("globex")
