"""The columns conserver_vcon_write fills hold what the row-mapping helpers and the
search triggers say (issue 18: the write spells out conserver_int_array,
conserver_jsonb_text and conserver_text_array instead of calling them, reads its batch as
an array, and conserver_tsvector skips its guard for short texts). Checked on real
PostgreSQL, on the search corpus saved in batches and on hostile vCons saved one by one:
every mapped column of every row against the helper applied to the stored document, and
every tsvector against the formula the search reads."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from hypothesis import given

from conserver_supabase.testing import make_vcon

from ..support.hostile import SETTINGS, hostile_vcons
from ..support.search_corpus import make_corpus

pytestmark = pytest.mark.integration

#: Per table: the stored columns, and the same columns computed from the stored document
#: by the helpers and the search formula (e: the element, d: the document, o: its index,
#: from ``jsonb_array_elements(d -> <array>) WITH ORDINALITY``).
_TSV = "CASE WHEN coalesce({enc}, 'none') IN ('base64url', 'base64') THEN NULL ELSE {vector} END"
EXPECTED: dict[str, tuple[str, str, str]] = {
    "vcons": (
        "v.extensions, v.critical, v.subject_tsvector",
        "conserver_text_array(d -> 'extensions'),"
        " conserver_text_array(coalesce(nullif(d -> 'critical', 'null'), d -> 'must_support')),"
        " setweight(to_tsvector('english', coalesce(d ->> 'subject', '')), 'A')",
        "",
    ),
    "parties": (
        "x.party_index, x.party_tsvector",
        "o - 1, setweight(to_tsvector('simple',"
        " concat_ws(' ', e ->> 'name', e ->> 'mailto', e ->> 'tel')), 'B')",
        "parties",
    ),
    "dialog": (
        "x.dialog_index, x.parties, x.body, x.content_hash, x.transfer_target, x.original,"
        " x.consultation, x.target_dialog, x.body_tsvector",
        "o - 1, conserver_int_array(e -> 'parties'), conserver_jsonb_text(e -> 'body'),"
        " conserver_jsonb_text(e -> 'content_hash'), conserver_int_array(e -> 'transfer_target'),"
        " conserver_int_array(e -> 'original'), conserver_int_array(e -> 'consultation'),"
        " conserver_int_array(e -> 'target_dialog'), "
        + _TSV.format(
            enc="e ->> 'encoding'",
            vector="to_tsvector('english', coalesce(conserver_jsonb_text(e -> 'body'), ''))",
        ),
        "dialog",
    ),
    "analysis": (
        "x.analysis_index, x.dialog_indices, x.body, x.content_hash, x.body_tsvector",
        "o - 1, conserver_int_array(e -> 'dialog'), conserver_jsonb_text(e -> 'body'),"
        " conserver_jsonb_text(e -> 'content_hash'), "
        + _TSV.format(
            enc="e ->> 'encoding'",
            vector="setweight(to_tsvector('english',"
            " coalesce(conserver_jsonb_text(e -> 'body'), '')), 'B')",
        ),
        "analysis",
    ),
    "attachments": (
        "x.attachment_index, x.body, x.content_hash",
        "o - 1, conserver_jsonb_text(e -> 'body'), conserver_jsonb_text(e -> 'content_hash')",
        "attachments",
    ),
}


#: What :func:`differences` returns when every column agrees.
AGREE: dict[str, list[Any]] = {table: [] for table in EXPECTED}


def differences(sql: Any, uuids: list[str]) -> dict[str, list[Any]]:
    """Per table, the rows of ``uuids`` whose stored columns differ from the expected
    ones (either side of the difference), empty lists when they agree."""
    found: dict[str, list[Any]] = {}
    for table, (stored, expected, array) in EXPECTED.items():
        if table == "vcons":
            have = f"SELECT v.uuid, {stored} FROM vcons v WHERE v.uuid = ANY(%(u)s::uuid[])"
            want = (
                f"SELECT doc.uuid, {expected} FROM conserver_vcon_documents doc,"
                " LATERAL (SELECT doc.document) AS s (d) WHERE doc.uuid = ANY(%(u)s::uuid[])"
            )
        else:
            have = f"SELECT x.vcon_id, {stored} FROM {table} x WHERE x.vcon_id = ANY(%(u)s::uuid[])"
            want = (
                f"SELECT doc.uuid, {expected} FROM conserver_vcon_documents doc,"
                f" jsonb_array_elements(coalesce(nullif(doc.document -> '{array}', 'null'),"
                " '[]')) WITH ORDINALITY AS t (e, o) WHERE doc.uuid = ANY(%(u)s::uuid[])"
            )
        query = f"(({have}) EXCEPT ALL ({want})) UNION ALL (({want}) EXCEPT ALL ({have}))"
        found[table] = sql.execute(query, {"u": uuids}).fetchall()
    return found


def test_the_search_corpus_saved_in_batches_has_the_helpers_columns(sql: Any) -> None:
    """300 varied vCons (text and base64url bodies, indexes as scalars and arrays, tags)
    saved by conserver_vcon_save_many in batches of 100, as their JSON texts: every
    column equals the helper's value and every tsvector the search formula's."""
    corpus = make_corpus(300)
    for start in range(0, len(corpus), 100):
        texts = [json.dumps(d) for d in corpus[start : start + 100]]
        sql.execute("SELECT conserver_vcon_save_many(%s::jsonb, NULL, NULL)", [json.dumps(texts)])
    uuids = [d["uuid"] for d in corpus]
    rows = sql.execute("SELECT count(*) FROM dialog WHERE vcon_id = ANY(%s::uuid[])", [uuids])
    assert rows.fetchone()[0] > 300
    assert differences(sql, uuids) == AGREE


def test_a_saved_again_batch_keeps_the_helpers_columns(sql: Any) -> None:
    """The same vCons saved again with fewer dialogs (stale rows deleted, the rest
    updated) in reverse order: the columns still agree."""
    corpus = make_corpus(60, seed=7)
    sql.execute(
        "SELECT conserver_vcon_save_many(%s::jsonb)", [json.dumps([json.dumps(d) for d in corpus])]
    )
    for document in corpus:
        document["dialog"] = document.get("dialog", [])[:1]
        document["subject"] = f"{document.get('subject') or ''} again"
    again = [json.dumps(d) for d in reversed(corpus)]
    sql.execute("SELECT conserver_vcon_save_many(%s::jsonb, NULL, NULL)", [json.dumps(again)])
    assert differences(sql, [d["uuid"] for d in corpus]) == AGREE


#: A value of every JSON kind each helper tells apart (indexes: an array, of numbers or
#: of numeric strings, a scalar, null; text: a string, null, a number, an object, an
#: array, a boolean), and the field left out (None here).
INDEXES: list[Any] = [[0, 1], ["1", 0], 1, [], None, "null"]
TEXTS: list[Any] = ["plain", "null", 42, {"k": [1, "two"]}, ["a", 1], True, None]
NAMES: list[Any] = [["x", "y"], "null", [], None]


def branch_vcons() -> list[dict[str, Any]]:
    """vCons whose mapped fields take every value of INDEXES, TEXTS and NAMES in turn."""
    out = []
    for k in range(max(len(INDEXES), len(TEXTS), len(NAMES))):
        document = make_vcon(seed=100 + k)
        index, text, names = INDEXES[k % len(INDEXES)], TEXTS[k % len(TEXTS)], NAMES[k % len(NAMES)]
        fields = {
            "dialog": ["parties", "transfer_target", "original", "consultation", "target_dialog"],
            "analysis": ["dialog"],
        }
        for array, keys in fields.items():
            for element in document.get(array) or []:
                for key in keys:
                    set_field(element, key, index)
        for array in ("dialog", "analysis", "attachments"):
            for element in document.get(array) or []:
                set_field(element, "body", text)
                set_field(element, "content_hash", text)
                element["encoding"] = "none"
        set_field(document, "extensions", names)
        set_field(document, "critical" if k % 2 else "must_support", names)
        out.append(document)
    return out


def set_field(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = None if value == "null" else value


def test_every_kind_of_value_a_helper_tells_apart_maps_as_the_helper_does(sql: Any) -> None:
    """Indexes as arrays, numeric strings, scalars, null and absent; bodies and hashes of
    every JSON kind; extensions and critical/must_support as arrays, null and absent:
    saved in one batch, and each alone, every column is the helper's."""
    documents = branch_vcons()
    texts = [json.dumps(d) for d in documents]
    sql.execute("SELECT conserver_vcon_save_many(%s::jsonb, NULL, NULL)", [json.dumps(texts)])
    uuids = [d["uuid"] for d in documents]
    assert differences(sql, uuids) == AGREE
    for text in texts:
        sql.execute("SELECT conserver_vcon_save(%s::jsonb, NULL, NULL)", [json.dumps(text)])
    assert differences(sql, uuids) == AGREE


@SETTINGS
@given(document=hostile_vcons())
def test_a_hostile_vcon_the_database_takes_has_the_helpers_columns(
    sql: Any, document: dict[str, Any]
) -> None:
    """Whatever JSON a field holds, a vCon the SQL save accepts has the helpers'
    columns (one that it refuses writes nothing, as before)."""
    try:
        with sql.transaction():
            sql.execute("SELECT conserver_vcon_save(%s::jsonb, NULL, NULL)", [json.dumps(document)])
    except psycopg.Error:
        return
    assert differences(sql, [document["uuid"]]) == AGREE


def test_a_text_at_the_guards_bound_gets_its_tsvector(sql: Any) -> None:
    """conserver_tsvector skips its guard below 128 KiB: a text just under it that makes
    as many lexemes as the parser can (hyphenated compounds of unique words: the whole
    and each part) still gets the full tsvector, and one far over 1 MiB of lexemes still
    gets NULL instead of an error."""
    words = " ".join(f"a{k:05x}-b{k:05x}-c{k:05x}" for k in range(8000))
    under = words[: 131071 - 1]
    got, want = sql.execute(
        "SELECT conserver_tsvector('english', %s, 'B'), setweight(to_tsvector('english', %s), 'B')",
        [under, under],
    ).fetchone()
    assert got == want
    huge = " ".join(f"w{k:07x}" for k in range(200_000))  # about 1.8 MB of distinct lexemes
    assert sql.execute("SELECT conserver_tsvector('simple', %s, 'D')", [huge]).fetchone()[0] is None
