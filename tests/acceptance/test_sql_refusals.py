"""The SQL functions against a real PostgreSQL: what they refuse (writing nothing), how
they reassemble what vcon-mcp wrote, and who may call them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conserver_supabase import InvalidVconError
from conserver_supabase._database._functions import Transport

from ..support.schema import counts
from ..support.sql_calls import SqlCalls
from ..support.vcons import new_uuid, sample

pytestmark = pytest.mark.integration


@pytest.fixture
def db(transport: Transport) -> SqlCalls:
    """The same behaviour through both transports (``transport``)."""
    return SqlCalls(transport)


class TestInvalidInputWritesNothing:
    """The SQL functions refuse what vcon-mcp's tables cannot hold, in one transaction."""

    @pytest.mark.parametrize(
        ("mutate", "field", "code", "direct_field"),
        [
            (lambda d: d["dialog"][0].update(type="video"), None, "23514", "dialog[].type"),
            (lambda d: d["dialog"][0].update(encoding="gzip"), None, "23514", "dialog[].encoding"),
            (lambda d: d["analysis"][0].pop("vendor"), None, "23502", "analysis[].vendor"),
            (lambda d: d["dialog"][0].update(parties=[[0, 1], 2]), None, "22P02", "(document)"),
            (lambda d: d["dialog"][0].update(start="yesterday-ish"), None, "22007", "(document)"),
            (lambda d: d.update(vcon="0.4.0-very-long-version"), None, "22001", "(document)"),
            (lambda d: d.update(dialog={"not": "an array"}), "dialog", "22023", None),
            (lambda d: d["parties"].append("not an object"), "parties[2]", "22023", None),
            (lambda d: d.update(uuid="not-a-uuid"), "uuid", "22023", None),
        ],
        ids=[
            "dialog-type",
            "encoding",
            "vendor",
            "nested-parties",
            "date",
            "version",
            "dialog-object",
            "party-string",
            "uuid",
        ],
    )
    def test_rejected_and_nothing_written(
        self,
        db: SqlCalls,
        sql: Any,
        mutate: Any,
        field: str | None,
        code: str,
        direct_field: str | None,
    ) -> None:
        """Every refusal of the data is an InvalidVconError with the SQLSTATE; the field
        is what our guards name, or what PostgreSQL's error names (its table and column:
        psycopg only, PostgREST's error body has neither)."""
        existing = sample()
        db.save(existing, existing["uuid"])
        document = sample()
        document["analysis"] = document["analysis"][:1]
        mutate(document)
        before = counts(sql)
        with pytest.raises(InvalidVconError) as caught:
            db.save(document, str(document.get("uuid")))
        error = caught.value
        assert error.code == code
        if field is None:
            through_postgrest = type(db.transport).__name__ == "PostgrestDatabase"
            field = "(document)" if through_postgrest else direct_field
        assert error.field == field
        assert counts(sql) == before
        assert db.load(existing["uuid"]) == existing


class TestReassembly:
    """vCons written by another writer (vcon-mcp) have rows but no document."""

    def test_vcon_without_document_is_reassembled_from_rows(self, db: SqlCalls, sql: Any) -> None:
        u = new_uuid()
        sql.execute(
            "INSERT INTO vcons (id, uuid, vcon_version, subject, created_at, updated_at) "
            "VALUES (%s, %s, '0.3.0', 'from vcon-mcp', '2026-01-02T03:04:05Z', "
            "'2026-01-02T03:04:05Z')",
            [u, u],
        )
        sql.execute(
            "INSERT INTO parties (vcon_id, party_index, tel, name) VALUES "
            "(%s, 0, '+1555', 'Ann'), (%s, 1, NULL, 'Bob')",
            [u, u],
        )
        sql.execute(
            "INSERT INTO dialog (vcon_id, dialog_index, type, start_time, parties, body, "
            "encoding) VALUES (%s, 0, 'text', '2026-01-02T03:04:05Z', '{0,1}', 'hi', 'none')",
            [u],
        )
        sql.execute(
            "INSERT INTO analysis (vcon_id, analysis_index, type, vendor, dialog_indices, "
            "body, encoding) VALUES (%s, 0, 'summary', 'v', '{0}', '{\"a\":1}', 'none'), "
            "(%s, 1, 'note', 'v', '{0,1}', 'plain words', NULL)",
            [u, u],
        )
        sql.execute(
            "INSERT INTO attachments (vcon_id, attachment_index, type, body, encoding) "
            "VALUES (%s, 0, 'tags', '[\"a:b\"]', 'json')",
            [u],
        )
        assert db.load(u) == {
            "vcon": "0.3.0",
            "uuid": u,
            "created_at": "2026-01-02T03:04:05+00:00",
            "updated_at": "2026-01-02T03:04:05+00:00",
            "subject": "from vcon-mcp",
            "parties": [{"tel": "+1555", "name": "Ann"}, {"name": "Bob"}],
            "dialog": [
                {
                    "type": "text",
                    "start": "2026-01-02T03:04:05+00:00",
                    "parties": [0, 1],
                    "body": "hi",
                    "encoding": "none",
                }
            ],
            "analysis": [
                {
                    "type": "summary",
                    "vendor": "v",
                    "dialog": 0,
                    "body": {"a": 1},
                    "encoding": "none",
                },
                {"type": "note", "vendor": "v", "dialog": [0, 1], "body": "plain words"},
            ],
            "attachments": [{"type": "tags", "body": '["a:b"]', "encoding": "json"}],
        }
        assert db.load_many([u]) == {u: db.load(u)}


class TestPrivileges:
    """On a database with Supabase's roles: service_role may call, anon may not."""

    def test_anon_cannot_execute_and_service_role_can(self, sql: Any) -> None:
        import psycopg

        document = sample()
        payload = json.dumps(document)
        sql.execute("SET ROLE service_role")
        try:
            assert (
                sql.execute("SELECT conserver_vcon_save(%s::jsonb)", [payload]).fetchone()[0] == 1
            )
            assert sql.execute("SELECT conserver_vcon_load(%s)", [document["uuid"]]).fetchone()[0]
            # the delete writes its tombstone, the next save reads it: both allowed
            assert sql.execute("SELECT conserver_vcon_remove(%s)", [document["uuid"]]).fetchone()
            saved = sql.execute("SELECT conserver_vcon_save(%s::jsonb)", [payload]).fetchone()
            assert saved == (3,)
        finally:
            sql.execute("RESET ROLE")
        for function, argument in [
            ("conserver_vcon_save(%s::jsonb)", payload),
            ("conserver_vcon_load(%s::uuid)", document["uuid"]),
            ("conserver_vcon_delete(%s::uuid)", document["uuid"]),
            ("conserver_vcon_remove(%s::uuid)", document["uuid"]),
            ("conserver_vcon_exists(%s::uuid)", document["uuid"]),
            ("conserver_vcon_fetch(%s::uuid)", document["uuid"]),
            ("conserver_vcon_read(%s::uuid)", document["uuid"]),
            ("conserver_vcon_read_many(%s::jsonb)", json.dumps([document["uuid"]])),
        ]:
            sql.execute("SET ROLE anon")
            try:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    sql.execute(f"SELECT {function}", [argument])
            finally:
                sql.execute("RESET ROLE")

    def test_functions_are_security_invoker_with_pinned_search_path(self, sql: Any) -> None:
        found = sql.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc "
            "WHERE proname LIKE 'conserver\\_%' ORDER BY proname"
        ).fetchall()
        # The dialog and analysis tsvector triggers share one since 0003; 0004 (the change
        # feed) added two trigger functions, the projection and the merge; the conflict rule
        # the three-way merge, its tags set, and an overload of write, save and save_many;
        # 0005 the change feed's poll; issue 18: search in one pass, its condition and its
        # json form, and the write taking its batch as an array.
        assert len(found) == 48
        definers = {
            # vcon-mcp's deletes as authenticated record the tombstone
            # (test_every_way_of_deleting_leaves_the_tombstone) ...
            "conserver_vcon_tombstone_on_delete",
            # ... and its writes and deletes as authenticated record their changes
            # (tests/acceptance/feed/test_reads.py, every write there is one).
            "conserver_vcon_record_change",
            "conserver_vcon_rows_changed",
        }
        for name, definer, config in found:
            assert definer is (name in definers), name
            assert any(c.startswith("search_path=") for c in config), name

    def test_document_table_is_closed_to_anon(self, sql: Any) -> None:
        import psycopg

        sql.execute("SET ROLE anon")
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                sql.execute("SELECT * FROM conserver_vcon_documents")
        finally:
            sql.execute("RESET ROLE")
        for table in ("conserver_vcon_tombstones", "conserver_vcon_changes"):
            sql.execute("SET ROLE anon")
            try:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    sql.execute(f"SELECT * FROM {table}")
            finally:
                sql.execute("RESET ROLE")
