"""validate_vcon: every rule names the vCon and the field."""

from __future__ import annotations

from typing import Any

import pytest

from conserver_supabase import InvalidVconError, validate_vcon
from conserver_supabase._validation import MAX_DEPTH

from ..support.vcons import all_samples, rich_vcon, sample


def test_rich_and_sample_vcons_pass() -> None:
    for document in [rich_vcon(), *all_samples()]:
        assert validate_vcon(document) == document["uuid"]


def test_uuid_is_returned_lowercase() -> None:
    document = sample()
    document["uuid"] = document["uuid"].upper()
    assert validate_vcon(document) == document["uuid"].lower()


def test_expected_uuid_must_match() -> None:
    document = sample()
    other = sample()["uuid"]
    with pytest.raises(InvalidVconError) as caught:
        validate_vcon(document, expected_uuid=other)
    assert caught.value.vcon_uuid == other
    assert caught.value.field == "uuid"


def deep(levels: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("uuid"), "uuid"),
        (lambda d: d.update(uuid="../../etc/passwd"), "uuid"),
        (lambda d: d.update(uuid="*"), "uuid"),
        (lambda d: d.update(uuid=42), "uuid"),
        (lambda d: d.update(vcon="0.4.0-and-more"), "vcon"),
        (lambda d: d.update(subject=["a"]), "subject"),
        (lambda d: d.update(created_at="yesterday"), "created_at"),
        (lambda d: d.update(updated_at=1700000000), "updated_at"),
        (lambda d: d.update(extensions="CC"), "extensions"),
        (lambda d: d.update(critical=[1]), "critical"),
        (lambda d: d.update(redacted=[]), "redacted"),
        (lambda d: d.update(group={}), "group"),
        (lambda d: d.update(parties={}), "parties"),
        (lambda d: d.update(parties=["+1555"]), "parties[0]"),
        (lambda d: d["parties"][0].update(tel=15551234567), "parties[0].tel"),
        (lambda d: d.update(dialog="text"), "dialog"),
        (lambda d: d["dialog"][0].update(type="video"), "dialog[0].type"),
        (lambda d: d["dialog"][0].pop("type"), "dialog[0].type"),
        (lambda d: d["dialog"][0].update(start="06/03/2026"), "dialog[0].start"),
        (lambda d: d["dialog"][0].update(duration="342"), "dialog[0].duration"),
        (lambda d: d["dialog"][0].update(duration=-1), "dialog[0].duration"),
        (lambda d: d["dialog"][0].update(parties=[[0, 1], 2]), "dialog[0].parties[0]"),
        (lambda d: d["dialog"][0].update(parties=["0"]), "dialog[0].parties[0]"),
        (lambda d: d["dialog"][0].update(parties=True), "dialog[0].parties"),
        (lambda d: d["dialog"][0].update(originator=-1), "dialog[0].originator"),
        (lambda d: d["dialog"][0].update(originator=2**31), "dialog[0].originator"),
        (lambda d: d["dialog"][0].update(encoding="gzip"), "dialog[0].encoding"),
        (lambda d: d["dialog"][0].update(encoding="base64url", body={"a": 1}), "dialog[0].body"),
        (lambda d: d["dialog"][0].update(content_hash=5), "dialog[0].content_hash"),
        (lambda d: d["dialog"][0].update(party_history={}), "dialog[0].party_history"),
        (lambda d: d["dialog"][0].update(transfer_target=[[1]]), "dialog[0].transfer_target[0]"),
        (lambda d: d["analysis"][0].pop("vendor"), "analysis[0].vendor"),
        (lambda d: d["analysis"][0].update(type=""), "analysis[0].type"),
        (lambda d: d["analysis"][0].update(dialog="0"), "analysis[0].dialog"),
        (lambda d: d["analysis"][0].update(encoding="JSON"), "analysis[0].encoding"),
        (
            lambda d: d.update(attachments=[{"type": "tags", "body": "[category:billing]"}]),
            "attachments[0].body",
        ),
        (lambda d: d.update(attachments=[{"type": "tags", "body": [1, 2]}]), "attachments[0].body"),
        (
            lambda d: d.update(attachments=[{"type": "tags", "body": ["k:" + "v" * 3000]}]),
            "attachments[0].body",
        ),
        (
            lambda d: d.update(
                attachments=[{"type": "tags", "body": []}, {"type": "tags", "body": []}]
            ),
            "attachments[1]",
        ),
        (lambda d: d.update(attachments=[{"party": "0"}]), "attachments[0].party"),
        (lambda d: d.update(attachments=[{"start": "noon"}]), "attachments[0].start"),
        (lambda d: d.update(subject="nul \x00 inside"), "subject"),
        (lambda d: d["parties"][0].update(name="lone \ud800 surrogate"), "parties[0].name"),
        (lambda d: d.update(meta={"bad\x00key": 1}), "meta.bad\x00key"),
        (lambda d: d.update(meta={"score": float("nan")}), "meta.score"),
        (lambda d: d.update(meta={"when": object()}), "meta.when"),
        (lambda d: d.update(meta=deep(MAX_DEPTH + 5)), "meta" + ".x" * (MAX_DEPTH - 1)),
    ],
)
def test_rule_names_vcon_and_field(mutate: Any, field: str) -> None:
    document = sample()
    vcon_uuid = document["uuid"]
    mutate(document)
    with pytest.raises(InvalidVconError) as caught:
        validate_vcon(document, expected_uuid=vcon_uuid)
    error = caught.value
    assert error.field == field
    assert error.vcon_uuid == vcon_uuid
    assert vcon_uuid in str(error)
    assert field in str(error)


def test_not_an_object() -> None:
    with pytest.raises(InvalidVconError) as caught:
        validate_vcon(["not", "a", "vcon"])
    assert caught.value.field == "(document)"
    assert caught.value.vcon_uuid is None
    assert "(no uuid)" in str(caught.value)


def test_tags_as_json_string_array_is_fine() -> None:
    document = sample()
    document["attachments"] = [
        {"type": "tags", "encoding": "json", "body": '["category:billing","priority:high"]'}
    ]
    validate_vcon(document)


def test_error_message_does_not_contain_bodies() -> None:
    document = sample()
    secret_body = "CONFIDENTIAL TRANSCRIPT " * 10
    document["dialog"][0].update(body=secret_body, encoding="gzip")
    with pytest.raises(InvalidVconError) as caught:
        validate_vcon(document)
    assert "CONFIDENTIAL" not in str(caught.value)


RECORDING = "UklGRiQAAABXQVZF" * 65_536  # 1 MiB of base64url, ASCII


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["dialog"][0].update(body=RECORDING + "\x00"), "dialog[0].body", "NUL"),
        (lambda d: d["dialog"][0].update(body=RECORDING + "\udfff"), "dialog[0].body", "surrogate"),
        (lambda d: d["dialog"][0].update(body="é" * 99 + "\ud800"), "dialog[0].body", "surrogate"),
        (lambda d: d["parties"][0].update(name="😀\ud83d\ude00"), "parties[0].name", "surrogate"),
        (lambda d: d.update(meta={"clé\udc80": 1}), "meta.clé\udc80", "surrogate"),
        (lambda d: d.update(meta={"clé\x00": 1}), "meta.clé\x00", "NUL"),
        (lambda d: d.update(meta={"k": ["ok", ["é\x00"]]}), "meta.k[1][0]", "NUL"),
    ],
)
def test_unstorable_characters_anywhere(mutate: Any, field: str, reason: str) -> None:
    """A NUL or a lone surrogate (a surrogate pair spelled as two code points too) is
    refused wherever it is: at the end of a 1 MiB recording, in a non-ASCII string or
    name, deep in an extension; the error names the field."""
    document = sample()
    mutate(document)
    with pytest.raises(InvalidVconError, match=reason) as caught:
        validate_vcon(document)
    assert caught.value.field == field


def test_any_valid_unicode_is_accepted() -> None:
    """Strings and names beyond ASCII (accents, CJK, emoji outside the BMP, U+2028, the
    last code point) pass."""
    document = sample()
    document["subject"] = "Réclamation 請求 😀\u2028\U0010ffff"
    document["dialog"][0].update(body="é" * 100_000 + "😀", encoding="none")
    document["meta"] = {"名前": ["ü", {"😀": "\U0001f600"}]}
    validate_vcon(document)


def test_ascii_strings_cost_no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ASCII string (a base64url recording) is checked with ``in`` and isascii()
    alone, never scanned character by character for surrogates (a regular expression
    over a 1 MiB recording took milliseconds per save: docs/performance.md); only a
    string beyond ASCII is."""
    from conserver_supabase import _storable

    looked_at: list[int] = []

    def valid_unicode(text: str) -> bool:
        looked_at.append(len(text))
        return True

    monkeypatch.setattr(_storable, "valid_unicode", valid_unicode)
    document = sample()
    document["dialog"][0].update(body=RECORDING, encoding="base64url")
    validate_vcon(document)
    assert len(RECORDING) not in looked_at
    document["subject"] = "Réclamation"
    validate_vcon(document)
    assert len("Réclamation") in looked_at


@pytest.mark.parametrize(
    ("value", "field"),
    [(object(), "meta.when"), ({1j: 2}, "meta.when"), (b"bytes", "meta.when")],
    ids=["object", "complex key", "bytes"],
)
def test_a_value_json_cannot_hold_is_named_by_save(value: Any, field: str) -> None:
    """save_vcon of a dict holding what JSON cannot (json.dumps raises on it while the
    JSON text is made, before validation) raises InvalidVconError naming the vCon and
    the field, not json's TypeError."""
    import fakeredis

    from conserver_supabase import SupabaseStorage, testing

    document = sample()
    document["meta"] = {"when": value}
    options = {"database_url": "postgresql://unused/x", "cache_key_prefix": "app:"}
    redis = fakeredis.FakeRedis()
    with (
        SupabaseStorage(options, database=testing.MemoryDatabase(), redis_client=redis) as s,
        pytest.raises(InvalidVconError) as caught,
    ):
        s.save_vcon(document)
    assert (caught.value.vcon_uuid, caught.value.field) == (document["uuid"], field)
