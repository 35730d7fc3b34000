"""The documented options are the real ones, and the example configuration loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import yaml

from conserver_supabase import StorageConfig
from conserver_supabase._config import DEFAULT_OPTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_every_option_is_documented_and_in_the_example() -> None:
    documented = set(
        re.findall(
            r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "configuration.md").read_text(), re.MULTILINE
        )
    )
    example = yaml.safe_load((ROOT / "config.example.yml").read_text())
    options = example["storages"]["supabase"]["options"]
    assert documented == set(DEFAULT_OPTIONS)
    assert set(options) == set(DEFAULT_OPTIONS)


def test_example_configuration_builds() -> None:
    example = yaml.safe_load((ROOT / "config.example.yml").read_text())
    options = example["storages"]["supabase"]["options"]
    config = StorageConfig.from_options(
        options,
        environ={"SUPABASE_URL": "https://proj.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"},
    )
    assert config.url == "https://proj.supabase.co"
    assert config.database_url is None
    assert config.redis_url.reveal() == "redis://localhost:6379/0"
    assert config.cache_key_prefix == "vcon:"


def test_every_error_and_command_is_documented() -> None:
    import conserver_supabase
    from conserver_supabase._cli import parser as _parser

    errors_doc = (ROOT / "docs" / "errors.md").read_text()
    for name in conserver_supabase.__all__:
        if name.endswith("Error"):
            assert re.search(rf"\b{name}\b", errors_doc), name
    readme = (ROOT / "README.md").read_text()
    commands = cast(Any, _parser())._subparsers._group_actions[0].choices
    for command in commands:
        assert f"conserver-supabase {command}" in readme or f"make {command}" in readme, command


def test_operations_doc_shows_every_command_run() -> None:
    """docs/operations.md (captured by scripts/capture_operations.py) shows each command
    and subcommand run, with its exit code, and no template slot left empty."""
    from conserver_supabase._cli import parser as _parser

    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "{{" not in doc
    blocks = re.findall(
        r"```console\n\$ (conserver-supabase [^\n]*)\n.*?\(exit code \d\)\n```", doc, re.S
    )
    ran = {line.split()[1] for line in blocks if len(line.split()) > 1}
    nesting = ("cache", "journal")
    ran |= {
        " ".join(line.split()[1:3])
        for line in blocks
        if line.split()[1:2][0:1] and line.split()[1] in nesting
    }
    commands = cast(Any, _parser())._subparsers._group_actions[0].choices
    wanted = set(commands) - set(nesting)
    for parent in nesting:
        children = commands[parent]._subparsers._group_actions[0].choices
        wanted |= {f"{parent} {name}" for name in children}
    assert wanted <= ran, wanted - ran
