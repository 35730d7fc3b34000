"""The SQL functions against a real PostgreSQL: what they store, return and refuse."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from conserver_supabase._database._functions import Transport

from ..support.schema import counts, rows
from ..support.sql_calls import SqlCalls
from ..support.vcons import all_samples, new_uuid, rich_vcon, sample

pytestmark = pytest.mark.integration


@pytest.fixture
def db(transport: Transport) -> SqlCalls:
    """The same behaviour through both transports (``transport``)."""
    return SqlCalls(transport)


class TestRoundTrip:
    def test_rich_vcon_comes_back_equal(self, db: SqlCalls) -> None:
        """Every top-level field, unknown keys, unicode, emoji, RTL, long and base64url
        bodies survive save + load unchanged."""
        document = rich_vcon()
        db.save(document, document["uuid"])
        assert db.load(document["uuid"]) == document

    @pytest.mark.parametrize("document", all_samples(), ids=lambda d: d["subject"][:30])
    def test_samples_come_back_equal(self, db: SqlCalls, document: dict[str, Any]) -> None:
        db.save(document, document["uuid"])
        assert db.load(document["uuid"]) == document

    def test_missing_vcon_loads_as_none(self, db: SqlCalls) -> None:
        assert db.load(new_uuid()) is None

    def test_load_many_returns_only_existing(self, db: SqlCalls) -> None:
        first, second = sample(), rich_vcon()
        db.save_many([first, second])
        missing = new_uuid()
        found = db.load_many([first["uuid"], second["uuid"], missing])
        assert found == {first["uuid"]: first, second["uuid"]: second}


class TestRows:
    def test_rows_follow_vcon_mcp_mapping(self, db: SqlCalls, sql: Any) -> None:
        """id = uuid, children keyed by uuid, renamed columns, body serialization."""
        document = rich_vcon()
        u = document["uuid"]
        db.save(document, u)

        vcon = sql.execute(
            "SELECT id::text, uuid::text, vcon_version, subject, created_at, extensions, "
            "critical, redacted, amended FROM vcons WHERE uuid = %s",
            [u],
        ).fetchone()
        assert vcon[0] == vcon[1] == u
        assert vcon[2] == "0.4.0"
        assert vcon[3] == document["subject"]
        assert vcon[4].isoformat() == "2026-03-06T09:15:00.123456+00:00"
        assert vcon[5] == ["CC", "x-acme"]
        assert vcon[6] == ["x-acme"]
        assert vcon[7] == document["redacted"]
        assert vcon[8] == document["amended"]

        parties = rows(sql, "parties", u, "party_index")
        assert [p["party_index"] for p in parties] == [0, 1]
        assert parties[0]["tel"] == "+15551234567"
        assert parties[0]["jcard"] == document["parties"][0]["jcard"]
        assert parties[1]["uuid"] == "usr-teams-001"
        assert parties[1]["civicaddress"] == {"country": "US", "a1": "NJ"}

        dialog = rows(sql, "dialog", u, "dialog_index")
        assert [d["type"] for d in dialog] == ["recording", "text", "transfer", "incomplete"]
        assert dialog[0]["parties"] == [0, 1]
        assert dialog[1]["parties"] == [1]  # a scalar is wrapped
        assert dialog[0]["duration_seconds"] == pytest.approx(342.5)
        assert dialog[0]["start_time"].isoformat() == "2026-03-06T09:15:00+00:00"
        assert dialog[0]["body"] == document["dialog"][0]["body"]  # raw
        assert dialog[0]["encoding"] == "base64url"
        assert json.loads(dialog[0]["content_hash"]) == ["sha512-abc", "sha256-def"]
        assert dialog[0]["session_id"] == {"local": "a", "remote": "b"}
        assert dialog[2]["transferee"] == 0
        assert dialog[2]["transfer_target"] == [1]
        assert dialog[3]["disposition"] == "no-answer"

        analysis = rows(sql, "analysis", u, "analysis_index")
        assert analysis[0]["dialog_indices"] == [0]
        assert analysis[1]["dialog_indices"] == [0, 1]
        assert json.loads(analysis[0]["body"]) == document["analysis"][0]["body"]
        assert analysis[1]["body"] == "Customer disputes a double charge. 😀"
        assert analysis[2]["body"] == '{"score": 0.8}'  # a string body is stored verbatim
        assert [a["vendor"] for a in analysis] == ["deepgram", "openai", "acme"]

        attachments = rows(sql, "attachments", u, "attachment_index")
        assert attachments[0]["type"] == "tags"
        assert json.loads(attachments[0]["body"]) == ["category:billing", "priority:high"]
        assert attachments[1]["purpose"] == "transcript-pdf"
        assert attachments[1]["mimetype"] == "application/pdf"
        assert (attachments[1]["party"], attachments[1]["dialog"]) == (0, 0)

    def test_shrinking_vcon_leaves_no_stale_children(self, db: SqlCalls, sql: Any) -> None:
        document = rich_vcon()
        u = document["uuid"]
        db.save(document, u)
        document["dialog"] = document["dialog"][:1]
        document["parties"] = document["parties"][:1]
        document["analysis"] = []
        del document["attachments"]
        db.save(document, u)
        assert len(rows(sql, "dialog", u, "dialog_index")) == 1
        assert len(rows(sql, "parties", u, "party_index")) == 1
        assert rows(sql, "analysis", u, "analysis_index") == []
        assert rows(sql, "attachments", u, "attachment_index") == []
        assert db.load(u) == document

    def test_child_rows_keep_their_ids_across_resaves(self, db: SqlCalls, sql: Any) -> None:
        """Upsert, not delete + insert: rows other tables point at (party_history) survive."""
        document = sample()
        db.save(document, document["uuid"])
        before = [d["id"] for d in rows(sql, "dialog", document["uuid"], "dialog_index")]
        document["dialog"][0]["duration"] = 999
        db.save(document, document["uuid"])
        after = rows(sql, "dialog", document["uuid"], "dialog_index")
        assert [d["id"] for d in after] == before
        assert after[0]["duration_seconds"] == 999


class TestVersions:
    def test_version_grows_on_every_save(self, db: SqlCalls, sql: Any) -> None:
        document = sample()
        versions = [db.save(document, document["uuid"]) for _ in range(3)]
        assert versions == [1, 2, 3]
        row = sql.execute(
            "SELECT version, content_hash, created_at < updated_at "
            "FROM conserver_vcon_documents WHERE uuid = %s",
            [document["uuid"]],
        ).fetchone()
        assert row[0] == 3
        assert len(row[1]) == 64

    def test_content_hash_follows_content(self, db: SqlCalls, sql: Any) -> None:
        document = sample()
        u = document["uuid"]
        query = "SELECT content_hash FROM conserver_vcon_documents WHERE uuid = %s"
        db.save(document, u)
        first = sql.execute(query, [u]).fetchone()[0]
        db.save(dict(reversed(list(document.items()))), u)  # same content, other key order
        assert sql.execute(query, [u]).fetchone()[0] == first
        document["subject"] = "changed"
        db.save(document, u)
        assert sql.execute(query, [u]).fetchone()[0] != first

    def test_concurrent_saves_of_one_uuid_serialize(self, db: SqlCalls) -> None:
        document = sample()
        versions: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(5):
                version = db.save(document, document["uuid"])
                with lock:
                    versions.append(version)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(versions) == list(range(1, 21))

    def test_fetch_returns_the_vcon_with_its_version(self, db: SqlCalls) -> None:
        document, other = sample(), rich_vcon()
        db.save(document, document["uuid"])
        db.save(document, document["uuid"])
        db.save(other, other["uuid"])
        assert db.fetch(document["uuid"]) == (document, 2)
        assert db.fetch(new_uuid()) is None
        wanted = [document["uuid"], other["uuid"], new_uuid()]
        assert db.fetch_many(wanted) == {document["uuid"]: (document, 2), other["uuid"]: (other, 1)}
        assert db.exists(other["uuid"]) is True
        assert db.exists(new_uuid()) is False


class TestDelete:
    def test_delete_cascades_and_reports_existence(self, db: SqlCalls, sql: Any) -> None:
        document = rich_vcon()
        other = sample()
        db.save_many([document, other])
        assert db.delete(document["uuid"]) == 2  # the delete's version: last version + 1
        assert db.load(document["uuid"]) is None
        for table, index in [
            ("parties", "party_index"),
            ("dialog", "dialog_index"),
            ("analysis", "analysis_index"),
            ("attachments", "attachment_index"),
        ]:
            assert rows(sql, table, document["uuid"], index) == []
        assert db.delete(document["uuid"]) == -2  # already gone: minus its delete's version
        assert db.delete(new_uuid()) == 0  # never saved: nothing to tell, nothing written
        assert db.load(other["uuid"]) == other

    def test_versions_continue_after_a_delete(self, db: SqlCalls, sql: Any) -> None:
        """Every save committed after a delete has a higher version than the delete, so
        the cache can tell a late write from before the delete from a new one."""
        document = sample()
        assert db.save(document, document["uuid"]) == 1
        assert db.save(document, document["uuid"]) == 2
        assert db.delete(document["uuid"]) == 3
        assert db.save(document, document["uuid"]) == 4
        assert db.fetch(document["uuid"]) == (document, 4)
        assert db.save_many([document, document]) == {document["uuid"]: 6}
        assert db.delete(document["uuid"]) == 7
        assert db.save_many([document]) == {document["uuid"]: 8}
        stored = sql.execute(
            "SELECT version FROM conserver_vcon_tombstones WHERE uuid = %s", [document["uuid"]]
        ).fetchall()
        assert stored == [(7,)]

    def test_a_vcon_only_in_vcon_mcp_rows_gets_a_delete_version(
        self, db: SqlCalls, sql: Any
    ) -> None:
        document = sample()
        db.save(document, document["uuid"])
        # Rows without a document, as vcon-mcp writes them (triggers off for the setup).
        sql.execute("SET session_replication_role = replica")
        sql.execute("DELETE FROM conserver_vcon_documents WHERE uuid = %s", [document["uuid"]])
        sql.execute("SET session_replication_role = origin")
        assert db.fetch(document["uuid"])[1] == 0  # another writer's vCon
        assert db.delete(document["uuid"]) == 1
        assert db.save(document, document["uuid"]) == 2

    def test_every_way_of_deleting_leaves_the_tombstone(self, db: SqlCalls, sql: Any) -> None:
        """vcon-mcp deleting the vcons row, the older conserver_vcon_delete, or a role
        without any privilege on our tables (the cascade runs our trigger as the owner):
        a vCon saved again continues after the version it reached."""
        document = sample()
        u = document["uuid"]
        for _ in range(3):
            db.save(document, u)
        sql.execute("DELETE FROM vcons WHERE uuid = %s", [u])  # vcon-mcp's delete
        assert db.save(document, u) == 5
        assert sql.execute("SELECT conserver_vcon_delete(%s)", [u]).fetchone() == (True,)
        assert db.save(document, u) == 7
        sql.execute("CREATE ROLE csb_test_deleter NOLOGIN")
        try:
            sql.execute("GRANT SELECT, DELETE ON vcons TO csb_test_deleter")
            sql.execute("CREATE POLICY csb_test_all ON vcons TO csb_test_deleter USING (true)")
            sql.execute("SET ROLE csb_test_deleter")
            try:
                sql.execute("DELETE FROM vcons WHERE uuid = %s", [u])
            finally:
                sql.execute("RESET ROLE")
            assert db.save(document, u) == 9
        finally:
            sql.execute("DROP POLICY IF EXISTS csb_test_all ON vcons")
            sql.execute("DROP OWNED BY csb_test_deleter")
            sql.execute("DROP ROLE csb_test_deleter")
        assert db.delete(u) == 10
        assert db.delete(u) == -10  # a retried delete still names the version it removed

    def test_old_tombstones_are_pruned_by_deletes(self, db: SqlCalls, sql: Any) -> None:
        old, new = sample(), sample()
        for document in (old, new):
            db.save(document, document["uuid"])
            db.delete(document["uuid"])
        sql.execute(
            "UPDATE conserver_vcon_tombstones SET deleted_at = now() - interval '31 days' "
            "WHERE uuid = %s",
            [old["uuid"]],
        )
        other = sample()
        db.save(other, other["uuid"])
        db.delete(other["uuid"])
        left = {str(r[0]) for r in sql.execute("SELECT uuid FROM conserver_vcon_tombstones")}
        assert left == {new["uuid"], other["uuid"]}


class TestSaveMany:
    def test_returns_versions_per_uuid(self, db: SqlCalls) -> None:
        first, second = sample(), sample("04-teams-escalation-review")
        assert db.save_many([first, second]) == {first["uuid"]: 1, second["uuid"]: 1}
        assert db.save_many([first]) == {first["uuid"]: 2}

    def test_a_batch_stores_what_saves_one_by_one_store(self, db: SqlCalls, sql: Any) -> None:
        """The set-based batch (0007) and the single save write the same rows, for new
        vCons and for re-saves that shrink, grow and change them."""
        documents = [*all_samples(), rich_vcon()]
        alone = [{**d, "uuid": new_uuid()} for d in documents]
        batch = [{**d, "uuid": new_uuid()} for d in documents]

        def child_rows(vcon_uuid: str) -> dict[str, list[dict[str, Any]]]:
            found = {}
            for table, index in (("parties", "party_index"), ("dialog", "dialog_index"),
                                 ("analysis", "analysis_index"),
                                 ("attachments", "attachment_index")):  # fmt: skip
                found[table] = [
                    {k: v for k, v in row.items() if k not in ("id", "vcon_id", "created_at",
                                                               "updated_at", "uuid")}
                    for row in rows(sql, table, vcon_uuid, index)
                ]  # fmt: skip
            vcon = sql.execute(
                "SELECT vcon_version, subject, created_at, extensions, critical, redacted, "
                "amended FROM vcons WHERE uuid = %s",
                [vcon_uuid],
            ).fetchone()
            snapshot: dict[str, Any] = dict(found)
            snapshot["vcons"] = [dict(enumerate(vcon or ()))]
            return snapshot

        def change(documents: list[dict[str, Any]]) -> None:
            for number, document in enumerate(documents):
                if number % 2:  # shrink: fewer dialogs and parties, no attachments
                    document["dialog"] = document.get("dialog", [])[:1]
                    document["parties"] = document.get("parties", [])[:1]
                    document.pop("attachments", None)
                else:  # grow and change
                    document["parties"] = [*document.get("parties", []), {"tel": "+15550001"}]
                    document["subject"] = f"changed {number}"

        for round_ in range(2):
            for document in alone:
                db.save(document, document["uuid"])
            versions = db.save_many(batch)
            assert versions == {d["uuid"]: round_ + 1 for d in batch}
            for one, many in zip(alone, batch, strict=True):
                assert child_rows(many["uuid"]) == child_rows(one["uuid"]), one.get("subject")
                assert db.load(many["uuid"]) == many
            for side in (alone, batch):
                side[:] = [json.loads(json.dumps(d)) for d in side]
                change(side)
        assert not sql.execute(
            "SELECT 1 FROM dialog WHERE vcon_id = ANY(%s::uuid[]) AND dialog_index > 0",
            [[d["uuid"] for d in batch[1::2]]],
        ).fetchall()  # the shrunk ones lost their stale rows

    def test_a_resave_without_created_at_keeps_it(self, sql: Any) -> None:
        document = sample()
        sql.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps([document])])
        del document["created_at"]
        sql.execute("SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps([document])])
        sql.execute("SELECT conserver_vcon_save(%s::jsonb)", [json.dumps(document)])
        row = sql.execute("SELECT created_at FROM vcons WHERE uuid = %s", [document["uuid"]])
        assert row.fetchone()[0].isoformat() == sample()["created_at"].replace("Z", "+00:00")

    def test_a_uuid_given_twice_is_saved_twice_in_order(self, db: SqlCalls) -> None:
        first = sample()
        second = {**first, "subject": "the second"}
        assert db.save_many([first, second]) == {first["uuid"]: 2}
        assert db.load(first["uuid"]) == second

    def test_batches_sharing_uuids_in_opposite_orders_do_not_deadlock(self, db: SqlCalls) -> None:
        documents = [sample(vcon_uuid=new_uuid()) for _ in range(12)]
        errors: list[BaseException] = []

        def worker(order: list[dict[str, Any]]) -> None:
            try:
                for _ in range(8):
                    db.save_many(order)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(documents,)),
                   threading.Thread(target=worker, args=(documents[::-1],))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert db.save_many(documents[:1]) == {documents[0]["uuid"]: 17}

    def test_one_bad_vcon_writes_none_of_the_batch(self, db: SqlCalls, sql: Any) -> None:
        good, bad = sample(), sample()
        bad["dialog"][0]["start"] = "not a date"
        before = counts(sql)
        with pytest.raises(Exception):  # noqa: B017,PT011 - the database refuses; any error
            db.save_many([good, bad])
        assert counts(sql) == before
