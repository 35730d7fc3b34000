"""The exact text as the psycopg transport passes it: ``json_string`` and ``exact_json``
write what ``json.dumps`` writes of the text (the same JSON string once parsed), and a
large text without ``json.dumps``. The database's side: tests/acceptance/
test_exact_large_texts.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conserver_supabase._database import _functions
from conserver_supabase._database._functions import (
    ExactText,
    ExactTexts,
    exact_json,
    json_string,
)
from conserver_supabase._documents import dumps
from conserver_supabase.testing import make_vcon

LARGE = _functions._LARGE_TEXT


def recording_text(body: str = "UklGRiQAAABXQVZF" * 70_000, **fields: Any) -> str:
    """The JSON text of a vCon with a large inline recording (about 1 MiB)."""
    document = make_vcon(seed=7, dialogs=2)
    document["dialog"][0].update(encoding="base64url", body=body, **fields)
    return dumps(document)


def no_json_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("json.dumps was called for a large text")

    monkeypatch.setattr(json, "dumps", refuse)  # the module _functions calls


#: JSON text as the storage may hold it: a text given by a caller keeps its whitespace
#: between tokens and its escapes; a body can hold quotes, backslashes, any Unicode.
PIECES = st.sampled_from(
    ['"', "\\", "\n", "\r", "\t", " ", "{", ":", "a", "é", "€", "😀", "\u2028", "x" * 500]
)
TEXTS = st.lists(PIECES, max_size=200).map("".join)


class TestTheValueIsJsonDumpsOfTheText:
    @settings(max_examples=300, deadline=None)
    @given(TEXTS, st.booleans())
    def test_any_text_small_or_large(self, text: str, large: bool) -> None:
        """Any text, below and above the size where the fast path starts, comes back from
        JSON as itself: quotes, backslashes, whitespace and non-ASCII included."""
        if large:
            text = text + "y" * LARGE
        assert json.loads(json_string(text)) == text

    @pytest.mark.parametrize(
        "text",
        [
            recording_text(),
            json.dumps(json.loads(recording_text()), indent=2),  # pretty-printed by a caller
            recording_text(body="A" * LARGE + '\\"\\\\\\n\n\t\r"' + "B" * 1000),
            # More escapes than the fast path takes:
            recording_text(body='{\\"k\\": \\"v\\"}' * 3000),
            '"' * (LARGE + 1),
            "\\" * (LARGE + 1),
        ],
        ids=["recording", "pretty", "escapes at a run's ends", "escaped JSON body", "quotes", "bs"],
    )
    def test_large_texts(self, text: str) -> None:
        """The value of a large text parses back to the text, as json.dumps' does."""
        assert len(text) >= LARGE
        assert json.loads(json_string(text)) == json.loads(json.dumps(text)) == text

    def test_lone_surrogate_as_json_dumps_writes_it(self) -> None:
        """A lone surrogate (which validation refuses before) is written as json.dumps
        writes it, ``\\udXXX``: the value is the same as before this path."""
        text = recording_text() + "\ud800"
        assert json_string(text) == json.dumps(text).encode("ascii")

    def test_small_text_is_json_dumps(self) -> None:
        """Below the threshold the bytes are json.dumps' own."""
        text = dumps(make_vcon(seed=3))
        assert len(text) < LARGE
        assert json_string(text) == json.dumps(text).encode("ascii")


class TestExactJson:
    def test_one_text_and_a_batch(self) -> None:
        """An ExactText is a JSON string of its text; ExactTexts a JSON array of them,
        small and large texts mixed, in order."""
        small, large = dumps(make_vcon(seed=1)), recording_text()
        assert json.loads(exact_json(ExactText(large))) == large
        batch = ExactTexts([ExactText(small), ExactText(large), ExactText(small)])
        assert json.loads(exact_json(batch)) == [small, large, small]
        assert json.loads(exact_json(ExactTexts([ExactText(small)] * 3))) == [small] * 3

    def test_a_large_text_costs_no_json_dumps(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A large vCon's text, alone or in a batch, is escaped without json.dumps: its
        C encoder looks at every character of a 1 MiB recording, which took most of the
        adaptation's time (docs/performance.md, "Where a save's time goes")."""
        text = recording_text(body="UklGRiQAAABXQVZF" * 70_000 + "\\n")
        expected = json.dumps(text)
        no_json_dumps(monkeypatch)
        assert json.loads(exact_json(ExactText(text))) == json.loads(expected)
        assert json.loads(exact_json(ExactTexts([ExactText(text)] * 2))) == [text, text]
