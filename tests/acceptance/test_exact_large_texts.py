"""Large vCons keep their exact text through the database (issue 18): the psycopg
transport escapes a large text itself (``json_string``) instead of through json.dumps,
and the database keeps the same text, byte for byte, on every transport, alone and in a
batch. Real PostgreSQL, the PostgREST stand-in and a real PgBouncer (``transport``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from conserver_supabase import InvalidVconError, SupabaseStorage
from conserver_supabase._database._functions import FUNCTIONS, ExactText, Transport
from conserver_supabase._documents import dumps
from conserver_supabase.testing import make_vcon

pytestmark = pytest.mark.integration

RECORDING = "UklGRiQAAABXQVZF" * 70_000  # about 1 MiB of base64url


def large(seed: int, body: str = RECORDING, **dialog: Any) -> dict[str, Any]:
    document = make_vcon(seed=seed, dialogs=2)
    document["uuid"] = str(uuid.uuid4())
    document["dialog"][0].update(encoding="base64url", body=body, **dialog)
    return document


def texts() -> list[str]:
    """Large texts as callers give them: dumps of a dict, pretty-printed with non-ASCII
    and escapes, a transcript body full of escaped quotes (more than the fast path takes),
    a name with a quote and a backslash right before the recording."""
    pretty = large(2, mediatype="audio/x-wav", filename='call "ü" \\ 😀.wav')
    pretty["subject"] = "Réclamation\n\t請求"
    transcript = large(3)
    transcript["dialog"][0].update(encoding="json", body='{\\"k\\": \\"v\\"}' * 4000)
    return [
        dumps(large(1)),
        json.dumps(pretty, indent=2, ensure_ascii=False),
        json.dumps(dict(pretty, uuid=str(uuid.uuid4())), indent="\t"),
        dumps(transcript),
    ]


def stored_text(transport: Transport, vcon_uuid: str) -> str:
    entry = transport.call(FUNCTIONS["fetch"], [vcon_uuid], vcon_uuid)
    text: str = entry["text"]
    return text


@pytest.fixture
def store(transport: Transport, redis_json_url: str) -> Any:
    options = {"database_url": "postgresql://unused/x", "redis_url": redis_json_url}
    with SupabaseStorage(options, database=transport) as s:
        yield s


@pytest.mark.parametrize("index", range(4), ids=["dumps", "pretty", "tabs", "escaped body"])
def test_a_large_text_is_kept_byte_for_byte(
    index: int, store: SupabaseStorage, transport: Transport
) -> None:
    """save_vcon of a large JSON text: the database holds that text, and a read without
    the cache gives back what Python's parser makes of it."""
    text = texts()[index]
    vcon_uuid = json.loads(text)["uuid"]
    store.save_vcon(text)
    assert stored_text(transport, vcon_uuid) == text
    assert store.get_vcon(vcon_uuid, use_cache=False) == json.loads(text)


def test_a_batch_of_large_and_small_texts(store: SupabaseStorage, transport: Transport) -> None:
    """save_many with large and standard vCons mixed: each text kept as given, in order."""
    batch = [*texts(), dumps(make_vcon(seed=9)), dumps(large(10))]
    store.save_many(batch)
    for text in batch:
        assert stored_text(transport, json.loads(text)["uuid"]) == text


def test_a_text_with_a_control_character_is_refused(transport: Transport) -> None:
    """Were a text that is no JSON text to reach the transport (a raw control character
    inside a string: nothing the storage parses lets one through), the database refuses
    it as an invalid vCon, as it did when json.dumps escaped the character: nothing is
    stored."""
    document = large(11)
    text = dumps(document).replace(RECORDING[:8], "\x01" + RECORDING[1:8], 1)
    assert "\x01" in text
    with pytest.raises(InvalidVconError) as caught:
        transport.save([document], None, None, [ExactText(text)])
    assert caught.value.vcon_uuid == document["uuid"]
    assert transport.call(FUNCTIONS["exists"], [document["uuid"]], document["uuid"]) is False


def test_the_literal_reads_back_as_the_text(database_url: str) -> None:
    """The simple query's literal of an exact text (our quoting, not libpq's
    PQescapeLiteral) is read by PostgreSQL as that text, for large and small texts and
    batches, with quotes (double and single), backslashes and non-ASCII."""
    import psycopg

    from conserver_supabase._database._functions import ExactTexts
    from conserver_supabase._database._postgres import exact_jsonb

    values = [ExactText(text) for text in texts()]
    values += [ExactText(dumps(make_vcon(seed=5))), ExactText('{"it\'s": "a \\\\ \\"b\\""}')]
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = psycopg.ClientCursor(conn)
        for value in [*values, ExactTexts(values[:3]), ExactTexts(values[-2:])]:
            cursor.execute("SELECT %s", [exact_jsonb()(value)])
            row = cursor.fetchone()
            assert row is not None
            assert row[0] == (str(value) if isinstance(value, str) else [str(v) for v in value])
