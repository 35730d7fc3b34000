"""The 0.0.1 shape a read hands out (``egress_format_version``, issue 17): our converter
against vcon-server's own ``to_legacy`` on the corpus of tests/data/legacy (its output
produced by running theirs: scripts/legacy_expected.py), and the option's checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conserver_supabase import ConfigurationError, StorageConfig
from conserver_supabase._legacy import check_version, egress_version, to_legacy

CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "legacy").glob("*.json"))


def case(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def test_the_corpus_has_every_kind() -> None:
    """Our samples, the conserver's shape, hand-made and the conserver's own old vCons."""
    names = {p.stem for p in CASES}
    assert {"rich", "conserver-0.4.0", "legacy-0.0.1", "both-names", "minimal"} <= names
    assert len([n for n in names if n.startswith("sample-")]) == 7
    assert len([n for n in names if n.startswith("host-")]) == 3


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_our_output_is_vcon_servers_exactly(path: Path) -> None:
    """The same JSON text as vcon-server's to_legacy: keys, values and key order."""
    loaded = case(path)
    assert json.dumps(to_legacy(loaded["input"], "0.0.1")) == json.dumps(loaded["to_legacy"])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_the_input_is_not_changed_and_the_output_shares_nothing(path: Path) -> None:
    document = case(path)["input"]
    before = copy.deepcopy(document)
    out = to_legacy(document, "0.0.1")
    assert document == before
    for name in ("parties", "dialog", "analysis", "attachments"):
        for ours, theirs in zip(out.get(name) or [], document.get(name) or [], strict=True):
            assert ours is not theirs
            for key, value in ours.items():
                if isinstance(value, dict | list):
                    assert value is not theirs.get(key), (name, key)


def test_what_the_conversion_does() -> None:
    """The deltas, spelled out on the conserver's shape (the corpus checks the rest)."""
    path = next(p for p in CASES if p.stem == "conserver-0.4.0")
    out = to_legacy(case(path)["input"], "0.0.1")
    assert list(out) == ["uuid", "vcon", "created_at", "subject", "parties", "dialog",
                         "analysis", "attachments", "appended", "must_support", "group",
                         "redacted"]  # fmt: skip
    assert out["vcon"] == "0.0.1"
    assert out["appended"] == {"uuid": "0190a0e0-0000-8000-8000-000000000001"}
    assert "amended" not in out
    assert out["must_support"] == ["lawful_basis"]
    assert out["group"] == []
    assert out["redacted"] == {}
    assert out["dialog"][0]["mimetype"] == "audio/wav"
    assert out["dialog"][0]["must_support"] == ["x"]
    assert out["dialog"][1]["encoding"] == "json"  # dialog bodies are left alone
    assert out["analysis"][0]["schema_version"] == "v1"
    assert out["analysis"][1]["body"]["n"] == 1.5
    assert out["analysis"][1]["encoding"] == "none"
    assert (out["analysis"][3]["body"], out["analysis"][4]["body"]) == (42, "text")
    assert out["analysis"][5] == {**out["analysis"][5], "body": "{not json", "encoding": "json"}
    assert out["analysis"][6]["encoding"] == "json"  # a value already: left alone
    tags, lawful, both, pdf = out["attachments"]
    assert tags["type"] == "tags"
    assert "purpose" not in tags
    assert tags["encoding"] == "none"
    assert lawful == {"type": "lawful_basis", "body": "consent", "encoding": "none"}
    assert (both["type"], both["purpose"], both["mimetype"]) == (
        "lawful_basis", "consent-record", "application/json"
    )  # fmt: skip
    assert pdf["type"] == "transcript-pdf"
    assert pdf["encoding"] == "base64url"


def test_anything_but_a_dict_is_returned_as_it_is() -> None:
    assert to_legacy(None, "0.0.1") is None
    assert to_legacy([1], "0.0.1") == [1]


class TestTheOption:
    def test_default_is_the_current_shape(self) -> None:
        assert StorageConfig.from_options({}).egress_format_version is None

    def test_0_0_1_is_accepted_also_through_a_variable(self) -> None:
        config = StorageConfig.from_options(
            {"egress_format_version": "${EGRESS_FORMAT_VERSION:-}"},
            environ={"EGRESS_FORMAT_VERSION": "0.0.1"},
        )
        assert config.egress_format_version == "0.0.1"
        assert (
            StorageConfig.from_options(
                {"egress_format_version": "${EGRESS_FORMAT_VERSION:-}"}, environ={}
            ).egress_format_version
            is None
        )

    @pytest.mark.parametrize("value", ["0.4.0", "0.0.2", "legacy", 1, ["0.0.1"]])
    def test_anything_else_names_the_option_and_the_supported_values(self, value: Any) -> None:
        with pytest.raises(ConfigurationError) as caught:
            StorageConfig.from_options({"egress_format_version": value})
        assert caught.value.option == "egress_format_version"
        assert "'egress_format_version'" in str(caught.value)
        assert "0.0.1" in str(caught.value)

    def test_the_argument_wins_over_the_option_and_is_checked(self) -> None:
        assert egress_version(None, None) is None
        assert egress_version(None, "0.0.1") == "0.0.1"
        assert egress_version("0.0.1", None) == "0.0.1"
        with pytest.raises(ConfigurationError, match="egress_format_version"):
            egress_version("0.4.0", "0.0.1")
        assert check_version(" 0.0.1 ") == "0.0.1"
