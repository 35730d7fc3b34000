"""The vCon back as it was given (issue 17): byte-exact through the database on every
transport and server, and one answer per vCon from the cache and the database.

Real PostgreSQL (the embedded 18 and, in CI, Debian's 15), the PostgREST stand-in and a
real PgBouncer (the ``transport`` fixture), real Redis with and without RedisJSON.
"""

from __future__ import annotations

import json
import random
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from conserver_supabase import InvalidVconError, SupabaseStorage
from conserver_supabase._database import Database
from conserver_supabase._database._functions import FUNCTIONS, Transport
from conserver_supabase._documents import dumps
from conserver_supabase._redis import holds_exactly

from ..support.exact_corpus import CORPUS, Case, exact_form, text_of

pytestmark = pytest.mark.integration

IDS = [case.name for case in CORPUS]


def storage(database: Database, redis_url: str, **options: Any) -> SupabaseStorage:
    return SupabaseStorage(
        {"database_url": "postgresql://unused/x", "redis_url": redis_url, **options},
        database=database,
    )


def same(a: Any, b: Any) -> bool:
    """Equal documents, key order and int/float kinds included (``1.0`` is not ``1``,
    ``-0.0`` is not ``0.0``)."""
    return json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)


def stored_text(transport: Transport, vcon_uuid: str) -> str:
    """What conserver_vcon_read hands back: the exact text."""
    entry = transport.call(FUNCTIONS["fetch"], [vcon_uuid], vcon_uuid)
    text: str = entry["text"]
    return text


@pytest.fixture
def store(transport: Transport, redis_json_url: str) -> Iterator[SupabaseStorage]:
    with storage(transport, redis_json_url) as s:
        yield s


class TestTheDatabaseKeepsTheText:
    @pytest.mark.parametrize("case", CORPUS, ids=IDS)
    def test_text_in_text_out(
        self, case: Case, store: SupabaseStorage, transport: Transport
    ) -> None:
        """JSON text saved comes back byte for byte from the database (key order, number
        spelling, escapes, whitespace), and get(use_cache=False) returns what Python's
        parser makes of it: the same dict, key order and number kinds included."""
        text = text_of(case)
        vcon_uuid = json.loads(text)["uuid"]
        store.save_vcon(text)
        assert stored_text(transport, vcon_uuid) == text
        got = store.get_vcon(vcon_uuid, use_cache=False)
        assert json.dumps(got, ensure_ascii=False) == exact_form(text)

    @pytest.mark.parametrize("case", CORPUS, ids=IDS)
    def test_a_dict_comes_back_equal(
        self, case: Case, store: SupabaseStorage, transport: Transport
    ) -> None:
        """A dict saved comes back with the same key order and the same values, every
        int an int and every float the same float (the text is our dumps of it)."""
        document = json.loads(text_of(case))
        store.save_vcon(document)
        assert stored_text(transport, document["uuid"]) == dumps(document)
        assert same(store.get_vcon(document["uuid"], use_cache=False), document)
        assert same(store.get_many([document["uuid"]])[document["uuid"]], document)

    def test_save_many_keeps_each_text(self, store: SupabaseStorage, transport: Transport) -> None:
        texts = [text_of(case) for case in CORPUS]
        store.save_many(texts)
        for text in texts:
            assert stored_text(transport, json.loads(text)["uuid"]) == text

    def test_search_returns_the_documents_as_saved(self, store: SupabaseStorage) -> None:
        """search(include_vcons) answers as get does."""
        texts = [text_of(case) for case in CORPUS]
        store.save_many(texts)
        wanted = {json.loads(t)["uuid"]: exact_form(t) for t in texts}
        found = store.search(tel="+15551230000", include_vcons=True, limit=100).items
        got = {v["uuid"]: json.dumps(v, ensure_ascii=False) for v in found if v["uuid"] in wanted}
        assert got == wanted

    def test_the_old_object_form_still_saves(self, transport: Transport, database_url: str) -> None:
        """A caller of the 0.1 API passes the vCon as an object: saved as before, and read
        back from the jsonb document (no text kept)."""
        document = json.loads(text_of(CORPUS[0]))
        transport.save([document], None)  # no texts: the object form
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT document_text, document FROM conserver_vcon_documents WHERE uuid = %s",
                [document["uuid"]],
            ).fetchone()
        assert row[0] is None
        assert row[1] == document
        assert transport.fetch([document["uuid"]])[document["uuid"]][0] == document


class TestOneAnswerPerVcon:
    @pytest.mark.parametrize("case", CORPUS, ids=IDS)
    @pytest.mark.parametrize("fill", [False, True], ids=["after a save", "after a fill"])
    def test_the_cache_and_the_database_agree(
        self, case: Case, fill: bool, transport: Transport, redis_url: str
    ) -> None:
        """With and without RedisJSON, after a save and after a fill, every read path
        (get from the cache, get from the database, get_many, exists) gives one answer."""
        text = text_of(case)
        vcon_uuid = json.loads(text)["uuid"]
        with storage(transport, redis_url) as store:
            store.save_vcon(text)
            if fill:
                redis.Redis.from_url(redis_url).delete(f"vcon:{vcon_uuid}")
                store.get_vcon(vcon_uuid)  # the miss fills the cache where it can
            cached = store.get_vcon(vcon_uuid)
            again = store.get_vcon(vcon_uuid)
            database = store.get_vcon(vcon_uuid, use_cache=False)
            many = store.get_many([vcon_uuid])[vcon_uuid]
            assert json.dumps(database, ensure_ascii=False) == exact_form(text)
            for answer in (cached, again, many):
                assert same(answer, database)
            assert store.exists(vcon_uuid)

    @pytest.mark.parametrize("case", [c for c in CORPUS if c.inexact], ids=lambda c: c.name)
    def test_what_redisjson_cannot_hold_is_answered_by_the_database(
        self, case: Case, transport: Transport, redis_json_url: str
    ) -> None:
        """The documented exception: RedisJSON rounds these numbers, so a save still
        writes the conserver's key (it is what a conserver would process) but marks it,
        and our reads take the database's answer; a fill leaves the key absent."""
        text = text_of(case)
        vcon_uuid = json.loads(text)["uuid"]
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        with storage(transport, redis_json_url) as store:
            store.save_vcon(text)
            rendition = r.execute_command("JSON.GET", f"vcon:{vcon_uuid}")
            assert not same(json.loads(rendition), json.loads(text))  # RedisJSON rounded
            assert r.exists(f"conserver_supabase:head:{{vcon:{vcon_uuid}}}")
            assert same(store.get_vcon(vcon_uuid), json.loads(text))
            calls_before = store.stats()
            r.delete(f"vcon:{vcon_uuid}")
            assert same(store.get_vcon(vcon_uuid), json.loads(text))
            assert not r.exists(f"vcon:{vcon_uuid}")  # not filled: the database answers
            assert calls_before is not None

    def test_what_redisjson_holds_is_filled(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        """The exception is only for those numbers: another vCon is filled on a miss and
        then served from the cache (the mark is not set)."""
        text = text_of(CORPUS[1])  # 1e16 and friends: RedisJSON keeps them
        vcon_uuid = json.loads(text)["uuid"]
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        with storage(transport, redis_json_url) as store:
            store.save_vcon(text)
            assert not r.exists(f"conserver_supabase:head:{{vcon:{vcon_uuid}}}")
            r.delete(f"vcon:{vcon_uuid}")
            store.get_vcon(vcon_uuid)
            assert r.exists(f"vcon:{vcon_uuid}")
            assert same(
                json.loads(r.execute_command("JSON.GET", f"vcon:{vcon_uuid}")), json.loads(text)
            )

    def test_the_hook_saves_what_redisjson_gives(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        """The conserver's working copy is RedisJSON's: the save hook stores that
        rendition, and the cache and the database then agree on it."""
        inexact = next(case for case in CORPUS if case.inexact)
        text = text_of(inexact)
        vcon_uuid = json.loads(text)["uuid"]
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        r.execute_command("JSON.SET", f"vcon:{vcon_uuid}", "$", text)  # the conserver's copy
        rendition = r.execute_command("JSON.GET", f"vcon:{vcon_uuid}")
        with storage(transport, redis_json_url) as store:
            store.save_working_copy(vcon_uuid)
            assert stored_text(transport, vcon_uuid) == rendition
            assert same(store.get_vcon(vcon_uuid), json.loads(rendition))
            assert same(store.get_vcon(vcon_uuid, use_cache=False), json.loads(rendition))


@pytest.mark.one_database
class TestTheRuleForRedisJson:
    def test_the_corpus_marks_are_what_redisjson_does(self, redis_json_url: str) -> None:
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        for case in CORPUS:
            document = json.loads(text_of(case))
            r.execute_command("JSON.SET", "probe", "$", dumps(document))
            kept = same(json.loads(r.execute_command("JSON.GET", "probe")), document)
            assert kept == (not case.inexact), case.name
            assert holds_exactly(document) == kept, case.name

    def test_holds_exactly_predicts_redisjson(self, redis_json_url: str) -> None:
        """holds_exactly against a real RedisJSON on random doubles and integers (about
        one in six of the doubles is changed by RedisJSON's parser)."""
        rng = random.Random(17)  # noqa: S311 - test values, not cryptography
        values: list[float | int] = []
        while len(values) < 3000:
            pick = rng.random()
            if pick < 0.4:
                value: float | int = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[
                    0
                ]
                if value != value or value in (float("inf"), float("-inf")):
                    continue
            elif pick < 0.7:
                value = rng.random() * 10 ** rng.randint(-30, 30)
            elif pick < 0.9:
                value = round(rng.uniform(0, 1e6), rng.randint(0, 10))
            else:
                value = rng.choice([1, -1]) * rng.getrandbits(rng.randint(1, 70))
            values.append(value)
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        pipe = r.pipeline(transaction=False)
        for index, value in enumerate(values):
            pipe.execute_command("JSON.SET", f"n{index}", "$", json.dumps([value]))
        pipe.execute()
        for index in range(len(values)):
            pipe.execute_command("JSON.GET", f"n{index}")
        back = pipe.execute()
        changed = 0
        for value, text in zip(values, back, strict=True):
            kept = same(json.loads(text), [value])
            changed += not kept
            assert holds_exactly({"v": [value]}) == kept, repr(value)
        assert changed > 100  # the sample does cover what RedisJSON changes


class TestNumbersADoubleCannotHold:
    @pytest.mark.parametrize(
        ("members", "field"),
        [
            ('"x_n":{"tiny":1e-400}', "x_n.tiny"),
            ('"x_n":[0, -2.5E-999]', "x_n[1]"),
            (
                '"dialog":[{"type":"text","start":"2026-01-02T03:04:05Z","parties":[0],'
                '"body":"x","mediatype":"text/plain","encoding":"none","duration":1e-400}]',
                "dialog[0].duration",
            ),
        ],
    )
    def test_text_with_a_number_that_underflows_is_refused_by_its_field(
        self, members: str, field: str, store: SupabaseStorage, redis_json_url: str
    ) -> None:
        """Python reads 1e-400 as 0.0 while the database keeps the text (and its numeric
        columns refuse it): a typed error naming the field, nothing written anywhere."""
        text = text_of(Case("underflow", '{"vcon":"0.4.0","uuid":"{uuid}",' + members + "}"))
        vcon_uuid = json.loads(text)["uuid"]
        with pytest.raises(InvalidVconError) as caught:
            store.save_vcon(text)
        assert caught.value.field == field
        assert caught.value.vcon_uuid == vcon_uuid
        assert "too small for a double" in str(caught.value)
        assert store.get_vcon(vcon_uuid, use_cache=False) is None
        assert redis.Redis.from_url(redis_json_url).keys(f"*{vcon_uuid}*") == []

    def test_zero_spelled_any_way_is_zero(self, store: SupabaseStorage) -> None:
        text = text_of(Case("zeros", _ZEROS))
        store.save_vcon(text)
        got = store.get_vcon(json.loads(text)["uuid"], use_cache=False)
        assert got is not None
        assert got["x_n"] == [0.0, -0.0, 0.0, 0.0]


_ZEROS = '{"vcon":"0.4.0","uuid":"{uuid}","x_n":[0.0e5,-0.0,0E-400,0.000]}'


_INEXACT: dict[str, Any] = {"vcon": "0.4.0", "x_n": {"v": 123456789.12345679}}


class TestTheMarkHolds:
    """Review of the one-answer rule: the ways a rounded copy could still be served."""

    def keys(self, vcon_uuid: str) -> tuple[str, str, str]:
        return (
            f"vcon:{vcon_uuid}",
            f"conserver_supabase:version:{{vcon:{vcon_uuid}}}",
            f"conserver_supabase:head:{{vcon:{vcon_uuid}}}",
        )

    def test_a_copy_the_conserver_caches_after_reading_us_is_not_our_answer(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        """Everything expired; the conserver's miss reads us (a fill, which does not
        write the rounded vCon) and caches the vCon itself with JSON.SET: our reads still
        take the database's answer."""
        document = {**_INEXACT, "uuid": str(uuid.uuid4())}
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        key, _, head = self.keys(document["uuid"])
        with storage(transport, redis_json_url) as store:
            store.save_vcon(document)
            r.delete(*self.keys(document["uuid"]))  # every key expired
            assert same(store.get_vcon(document["uuid"]), document)  # the miss: a fill
            assert not r.exists(key)
            assert r.exists(head)
            assert r.ttl(head) > store.config.cache_ttl  # outlives a copy cached now
            r.execute_command("JSON.SET", key, "$", json.dumps(document))  # the conserver
            r.expire(key, store.config.cache_ttl)
            assert same(store.get_vcon(document["uuid"]), document)
            assert same(store.get_many([document["uuid"]])[document["uuid"]], document)

    def test_the_hook_s_copy_written_again_is_checked(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        """The working copy vanished during the hook's save: the touch writes the saved
        text again, which RedisJSON may round once more; it is marked like any other."""
        rng = random.Random(5)  # noqa: S311 - test values, not cryptography
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        # a double RedisJSON's own rendition of which it changes again when it is set
        for _ in range(10000):
            value = rng.random() * 10 ** rng.randint(-30, 30)
            r.execute_command("JSON.SET", "probe", "$", json.dumps([value]))
            once = r.execute_command("JSON.GET", "probe")
            r.execute_command("JSON.SET", "probe", "$", once)
            if r.execute_command("JSON.GET", "probe") != once:
                break
        else:
            pytest.fail("no double found that RedisJSON moves twice")
        vcon_uuid = str(uuid.uuid4())
        key = f"vcon:{vcon_uuid}"
        text = json.dumps({"vcon": "0.4.0", "uuid": vcon_uuid, "x_n": {"v": value}})
        r.execute_command("JSON.SET", key, "$", text)
        inner_save = transport.save

        def save(*args: Any) -> Any:
            saved = inner_save(*args)
            r.delete(key)  # expired or evicted between the commit and the touch
            return saved

        with storage(transport, redis_json_url) as store:
            transport.save = save  # type: ignore[method-assign,assignment]
            try:
                store.save_working_copy(vcon_uuid)
            finally:
                del transport.save
            assert same(store.get_vcon(vcon_uuid), store.get_vcon(vcon_uuid, use_cache=False))

    def test_a_refresh_that_writes_nothing_keeps_the_mark(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        from conserver_supabase._redis import Entry

        document = {**_INEXACT, "uuid": str(uuid.uuid4())}
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        with storage(transport, redis_json_url) as store:
            version = store.save_vcon(document)
            entry = Entry(document["uuid"], dumps(document), "refresh", version, exact=False)
            assert store._redis._cache.write(entry) == 0  # that version is there already
            assert r.exists(self.keys(document["uuid"])[2])
            assert same(store.get_vcon(document["uuid"]), document)

    def test_an_integer_redisjson_refuses_removes_the_key(
        self, transport: Transport, redis_json_url: str
    ) -> None:
        """10**4000 is beyond a double: RedisJSON refuses it. The save still succeeds,
        the older copy in Redis goes, and the database answers."""
        vcon_uuid = str(uuid.uuid4())
        r = redis.Redis.from_url(redis_json_url, decode_responses=True)
        key = f"vcon:{vcon_uuid}"
        r.execute_command("JSON.SET", key, "$", json.dumps({"uuid": vcon_uuid, "old": True}))
        document = {"vcon": "0.4.0", "uuid": vcon_uuid, "x_n": {"huge": 10**4000}}
        with storage(transport, redis_json_url) as store:
            store.save_vcon(document)
            assert not r.exists(key)
            assert same(store.get_vcon(vcon_uuid), document)
            assert store.stats()["cache"]["errors"] == 0  # no failed cache write
            assert store.stats()["suspect_keys"]["tracked"] == 0


class TestTheTextOfEveryInput:
    def test_utf8_bytes_with_a_byte_order_mark(
        self, store: SupabaseStorage, transport: Transport
    ) -> None:
        text = text_of(CORPUS[0])
        store.save_vcon(b"\xef\xbb\xbf" + text.encode())
        assert stored_text(transport, json.loads(text)["uuid"]) == text

    def test_a_number_with_more_digits_than_numeric_holds(self, store: SupabaseStorage) -> None:
        text = text_of(Case("scale", '{"vcon":"0.4.0","uuid":"{uuid}","x":0e-400000}'))
        with pytest.raises(InvalidVconError) as caught:
            store.save_vcon(text)
        assert caught.value.field == "x"
        assert "numeric" in str(caught.value)

    def test_a_backfill_keeps_each_file_s_text(
        self, database_url: str, redis_json_url: str, tmp_path: Any
    ) -> None:
        texts = [text_of(case) for case in CORPUS]
        source = tmp_path / "in"
        source.mkdir()
        for index, text in enumerate(texts):
            (source / f"{index}.json").write_text(text, "utf-8")
        options = {"database_url": database_url, "redis_url": redis_json_url}
        with SupabaseStorage(options) as store:
            summary = store.backfill(
                source, checkpoint=tmp_path / "ck.json", report=tmp_path / "report.jsonl"
            )
            assert summary.saved == len(texts)
        with psycopg.connect(database_url) as conn:
            for text in texts:
                row = conn.execute(
                    "SELECT document_text FROM conserver_vcon_documents WHERE uuid = %s",
                    [json.loads(text)["uuid"]],
                ).fetchone()
                assert row == (text,)
