"""One connection convention for every command: the same flags (``--database-url``,
``--url``, ``--key``, ``--redis-url``, ``--config``, ``--storage``) and one precedence,
a flag over the --config file's entry over the environment over the default."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conserver_supabase import SupabaseStorage
from conserver_supabase._cli import main, parser
from conserver_supabase._cli._connection import FLAGS, connection
from conserver_supabase._cli._table import COMMANDS, GROUPS, Command
from conserver_supabase.testing import make_vcon

from ..support.cli import run
from ..support.postgrest_standin import PostgrestStandIn

WRONG_DB = "postgresql://postgres@127.0.0.1:9/wrong"
TIERS = ("flag", "file", "env")


def leaves() -> list[Command]:
    """The commands that run (a parent such as ``cache`` only holds subcommands)."""
    return [c for c in COMMANDS if not any(o.name.startswith(f"{c.name} ") for o in COMMANDS)]


def required(command: Command) -> list[str]:
    """The smallest valid command line of ``command``, from the table."""
    argv = command.name.split()
    chosen: set[str] = set()
    for spec in (*command.args, *(a for group in command.groups for a in GROUPS[group])):
        name = spec.names[0]
        if spec.exclusive and spec.exclusive.startswith("!"):
            if spec.exclusive in chosen:
                continue
            chosen.add(spec.exclusive)
            argv += ["x"] if not name.startswith("-") else [name, "x"]
        elif not name.startswith("-") and spec.options.get("nargs") != "?":
            argv.append("00000000-0000-4000-8000-000000000000")
        elif spec.options.get("required"):
            argv += [name, "2026-01-01T00:00:00Z"]
    return argv


def storage_file(path: Path, options: dict[str, Any]) -> Path:
    entry = {"module": "conserver_supabase", "options": options}
    path.write_text(yaml.safe_dump({"storages": {"ours": entry}}))
    return path


def namespace(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(argv)


@pytest.mark.parametrize("command", leaves(), ids=lambda c: c.name)
def test_every_command_takes_the_connection_options_in_one_precedence(
    command: Command, tmp_path: Path
) -> None:
    """Each shared flag parses on every command of the table, and the configuration it
    builds takes each option from the highest tier that gives it."""
    assert "config" in command.groups, f"{command.name} does not take the connection options"
    values = {
        tier: {
            "database_url": f"postgresql://{tier}@127.0.0.1:5432/db",
            "url": f"https://{tier}.supabase.co",
            "key": f"{tier}-key",
            "redis_url": f"redis://{tier}:6379/0",
        }
        for tier in TIERS
    }
    environ = {
        "SUPABASE_DB_URL": values["env"]["database_url"],
        "SUPABASE_URL": values["env"]["url"],
        "SUPABASE_SERVICE_ROLE_KEY": values["env"]["key"],
        "REDIS_URL": values["env"]["redis_url"],
    }
    # The file spells the key by its alias: the flag still replaces it.
    file_options = {**values["file"], "service_role_key": values["file"]["key"]}
    del file_options["key"]
    config_file = storage_file(tmp_path / "config.yml", file_options)
    flags = [arg for option, flag in FLAGS.items() for arg in (flag, values["flag"][option])]
    base = required(command)
    with_file = [*base, "--config", str(config_file), "--storage", "ours"]

    parsed = namespace([*with_file, *flags])
    assert (parsed.config, parsed.storage) == (str(config_file), "ours")
    for option in FLAGS:
        assert getattr(parsed, option) == values["flag"][option]
    for argv, tier in ((parsed, "flag"), (namespace(with_file), "file"), (namespace(base), "env")):
        config = connection(argv, environ).config()
        assert config.database_url is not None
        assert config.database_url.reveal() == values[tier]["database_url"], tier
        assert config.url == values[tier]["url"], tier
        assert config.key is not None
        assert config.key.reveal() == values[tier]["key"], tier
        assert config.redis_url.reveal() == values[tier]["redis_url"], tier
    assert (
        connection(namespace([*base, "--config", str(config_file)]), {}).config().url
        == (values["file"]["url"])
    )  # --storage defaults to the entry with our module

    # --url replaces the database location below it: the file's and the environment's
    # database_url do not turn it back into a direct connection.
    rest = connection(namespace([*with_file, "--url", values["flag"]["url"]]), environ).config()
    assert (rest.transport, rest.url) == ("postgrest", values["flag"]["url"])
    assert rest.database_url is None
    assert rest.key is not None
    assert rest.key.reveal() == values["file"]["key"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["migrate", "--url", "https://p.supabase.co"], "--url"),
        (["migrate", "--key", "k"], "--key"),
        (["migrate", "--redis-url", "redis://localhost:6379/0"], "--redis-url"),
        (["migrate", "--print", "--database-url", WRONG_DB], "--database-url"),
        (["get", "00000000-0000-4000-8000-000000000000", "--database-url", " "], "--database-url"),
    ],
)
def test_an_option_a_command_cannot_use_is_refused_by_name(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never ignored: a usage error (exit code 2) that names the flag."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("conserver-supabase: configuration error: ")
    assert named in error


@pytest.mark.integration
@pytest.mark.one_database
def test_get_takes_the_flag_over_the_file_over_the_environment(
    database_url: str,
    fresh_database_url: str,
    redis_json_url: str,
    redis_plain_url: str,
    tmp_path: Path,
) -> None:
    """End to end against the embedded services: a saved vCon read with ``get
    --no-cache`` through whichever tier is right while every lower one names another
    database (migrated, without the vCon: exit code 3 if it were used)."""
    document = make_vcon(seed=7)
    with SupabaseStorage({"database_url": database_url, "redis_url": redis_json_url}) as store:
        store.save_vcon(document)
    uuid = document["uuid"]
    wrong_env = {"SUPABASE_DB_URL": fresh_database_url, "REDIS_URL": redis_plain_url}
    right = {"database_url": database_url, "redis_url": redis_json_url}
    wrong = {"database_url": fresh_database_url, "redis_url": redis_plain_url}
    right_file = storage_file(tmp_path / "right.yml", right)
    wrong_file = storage_file(tmp_path / "wrong.yml", wrong)

    env_only = run("get", uuid, "--no-cache", env=wrong_env)
    assert env_only.returncode == 3, env_only.stderr  # the environment's database is used
    from_file = run("get", uuid, "--no-cache", "--config", str(right_file), env=wrong_env)
    assert json.loads(from_file.stdout) == document, from_file.stderr
    flags = ["--database-url", database_url, "--redis-url", redis_json_url]
    from_flag = run("get", uuid, "--no-cache", "--config", str(wrong_file), *flags, env=wrong_env)
    assert json.loads(from_flag.stdout) == document, from_flag.stderr

    with PostgrestStandIn(database_url, key="k") as server:
        rest = run(
            "get", uuid, "--no-cache", "--url", server.url, "--redis-url", redis_json_url,
            env={**wrong_env, "SUPABASE_SERVICE_ROLE_KEY": "k"},
        )  # fmt: skip
        calls = len(server.requests)
    assert json.loads(rest.stdout) == document, rest.stderr  # not outvoted by SUPABASE_DB_URL
    assert calls > 0
