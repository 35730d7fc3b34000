"""The bad-input corpus (tests/data/bad): every bad input gives a typed error naming the
vCon and the field (or the option), and leaves the database and Redis as they were.

One case per JSON file:

* ``description``: what is wrong, in words;
* ``kind``: ``vcon`` (``patch`` applied to ``sample()``), ``working_copy_text`` (``input``:
  the raw text the conserver left at ``vcon:{uuid}``), ``uuid`` (``input`` handed to
  get/delete/save) or ``options`` (``input`` merged onto working options, or passed as
  is when it is not a mapping);
* ``patch``: ``{"set": "/json/pointer", "value": ...}`` and ``{"delete": "/json/pointer"}``;
* ``build``: what a JSON file cannot hold or should not spell out (see :func:`built`),
  set ``at`` a pointer of the document, or replacing ``input`` when there is no ``at``;
* ``expect``: ``error`` (a class of conserver_supabase) and ``field`` or ``option``;
  ``vcon_uuid`` when the vCon to name is not the default one (see :func:`named_vcon`).
  ``expect_by_path`` overrides it for one path;
* ``paths``: the entry points to drive, when not all of :data:`PATHS` for the kind;
* ``known_gaps``: ``{path: {"reason", "state_changes"}}`` where the code does not meet
  the requirement yet: a strict xfail, on the wrong error only unless the state changes.

In strings, ``{uuid}`` is the case's vCon (whose working copy sits at ``vcon:{uuid}``)
and ``{saved}`` a vCon saved before the case runs (in the database and the cache).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import conserver_supabase
from conserver_supabase import SupabaseStorage
from conserver_supabase._validation import MAX_TAGS_BODY_BYTES

from ..support.services import closing_later, redis_client
from ..support.vcons import new_uuid, sample

pytestmark = pytest.mark.integration

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
PATHS = {
    "vcon": ("save_vcon", "working_copy"),
    "working_copy_text": ("working_copy",),
    "uuid": ("get_vcon", "delete_vcon", "save_working_copy"),
    "options": ("SupabaseStorage", "conserver_save"),
}
CHAIN_LISTS = ["egress_a", "egress_b"]
JOURNAL = "conserver_supabase:journal"
WORKING_COPY_TTL = 1000
TABLES = ("vcons", "parties", "dialog", "analysis", "attachments", "conserver_vcon_documents")


class WrongError(AssertionError):
    """The call did not raise the expected typed error (what a known gap xfails on)."""


def load(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((BAD / f"{name}.json").read_text("utf-8"))
    return case


def cases() -> Iterator[Any]:
    for file in sorted(BAD.glob("*.json")):
        case = load(file.stem)
        for path in case.get("paths", PATHS[case["kind"]]):
            gap = case.get("known_gaps", {}).get(path)
            marks = []
            if gap is not None:
                raises = AssertionError if gap["state_changes"] else WrongError
                marks.append(pytest.mark.xfail(strict=True, raises=raises, reason=gap["reason"]))
            yield pytest.param(file.stem, path, marks=marks, id=f"{file.stem}:{path}")


def test_the_corpus_covers_every_kind() -> None:
    kinds = [load(file.stem)["kind"] for file in BAD.glob("*.json")]
    assert len(kinds) >= 40
    assert set(kinds) == set(PATHS)


# --- building the input ---------------------------------------------------------------


def substitute(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ``{uuid}`` and ``{saved}`` replaced in every string."""
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, list):
        return [substitute(item, names) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, names) for key, item in value.items()}
    return value


def built(spec: dict[str, Any], vcon_uuid: str) -> Any:
    """The value (or working copy text) a ``build`` entry describes."""
    make, levels = spec["make"], spec.get("levels", 0)
    if make in ("deep_object", "deep_array"):
        value: Any = "leaf"
        for _ in range(levels):
            value = {"x": value} if make == "deep_object" else [value]
        return value
    if make == "nan":
        return float("nan")
    if make == "oversized_tags_body":
        return "category:" + "x" * MAX_TAGS_BODY_BYTES
    if make == "deep_json_text":
        return f'{{"uuid": "{vcon_uuid}", "meta": ' + "[" * levels + "]" * levels + "}"
    if make == "invalid_utf8_text":
        return f'{{"uuid": "{vcon_uuid}", "subject": "'.encode() + b'\xff\xfe"}'
    raise ValueError(f"unknown build {make!r}")


def set_at(document: Any, pointer: str, value: Any = None, *, delete: bool = False) -> None:
    """Set (or delete) what the JSON pointer ``pointer`` names in ``document``."""
    *parents, last = pointer.split("/")[1:]
    for part in parents:
        document = document[int(part) if isinstance(document, list) else part]
    key = int(last) if isinstance(document, list) else last
    if delete:
        del document[key]
    else:
        document[key] = value


def patched(case: dict[str, Any], vcon_uuid: str) -> Any:
    document = sample(vcon_uuid=vcon_uuid)
    for change in case.get("patch", []):
        if "set" in change:
            set_at(document, change["set"], change["value"])
        else:
            set_at(document, change["delete"], delete=True)
    if "build" in case:
        set_at(document, case["build"]["at"], built(case["build"], vcon_uuid))
    return document


# --- the world a case runs in ---------------------------------------------------------


@dataclass
class World:
    storage: SupabaseStorage
    redis: Any
    sql: Any
    options: dict[str, Any]
    saved: str
    uuid: str

    def put_working_copy(self, value: Any) -> None:
        """What the conserver leaves at vcon:{uuid}: RedisJSON where RedisJSON can hold
        the document, else a JSON string; text (or bytes) as a string."""
        key = f"vcon:{self.uuid}"
        if isinstance(value, str | bytes):
            self.redis.set(key, value)
        else:
            try:
                self.redis.json().set(key, "$", value)
            except redis.ResponseError:  # lone surrogates, NaN
                self.redis.set(key, json.dumps(value))
        self.redis.expire(key, WORKING_COPY_TTL)

    def snapshot(self) -> dict[str, Any]:
        """Row counts and saved versions; every Redis key with its type, value and expiry."""
        state: dict[str, Any] = {
            table: self.sql.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
        }
        state["versions"] = self.sql.execute(
            "SELECT uuid::text, version, content_hash FROM conserver_vcon_documents ORDER BY 1"
        ).fetchall()
        for key in sorted(self.redis.keys("*")):
            kind = self.redis.type(key).decode()
            read = {
                "string": lambda k: self.redis.get(k),
                "ReJSON-RL": lambda k: self.redis.execute_command("JSON.GET", k),
                "list": lambda k: self.redis.lrange(k, 0, -1),
            }.get(kind, lambda k: self.redis.dump(k))
            state[key] = (kind, read(key), self.redis.execute_command("PEXPIRETIME", key))
        return state


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Options come from the case alone, never from the environment."""
    for name in list(os.environ):
        if name.startswith(("SUPABASE_", "REDIS_", "VCON_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CONSERVER_SUPABASE_TEST_UNSET", raising=False)


@pytest.fixture
def world(database_url: str, redis_json_url: str, sql: Any) -> World:
    options = {
        "database_url": database_url,
        "redis_url": redis_json_url,
        "chain_lists": CHAIN_LISTS,
    }
    storage = closing_later(SupabaseStorage(options))
    saved = sample()
    storage.save_vcon(saved, chain_lists=[])
    return World(storage, redis_client(redis_json_url), sql, options, saved["uuid"], new_uuid())


# --- the call and its check -----------------------------------------------------------


def prepare(case: dict[str, Any], path: str, world: World) -> tuple[Callable[[], Any], Any]:
    """Put the case's working copy in Redis; return the call and the vCon it should name."""
    kind, given = case["kind"], case.get("input")
    if kind == "vcon":
        document = patched(case, world.uuid)
        world.put_working_copy(document)
        if path == "working_copy":
            return lambda: world.storage.save_working_copy(world.uuid), world.uuid
        named = document.get("uuid") if isinstance(document.get("uuid"), str) else None
        return lambda: world.storage.save_vcon(document), named
    if kind == "working_copy_text":
        text = built(case["build"], world.uuid) if "build" in case else given
        world.put_working_copy(text)
        if path == "working_copy":
            return lambda: world.storage.save_working_copy(world.uuid), world.uuid
        return lambda: world.storage.save_vcon(text), world.uuid
    world.put_working_copy(sample(vcon_uuid=world.uuid))
    if kind == "uuid":
        return lambda: getattr(world.storage, path)(given), given
    options = {**world.options, **given} if isinstance(given, dict) else given
    if path == "SupabaseStorage":
        return lambda: closing_later(SupabaseStorage(options)), None
    return lambda: conserver_supabase.save(world.uuid, options), None


def outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:  # any failure is checked below, typed or not
        return None, exc


def check_error(error: BaseException | None, result: Any, expect: dict[str, Any]) -> None:
    """Raise :class:`WrongError` unless ``error`` is what ``expect`` describes."""
    wanted = getattr(conserver_supabase, expect["error"])
    if type(error) is not wanted:
        got = "no error" if error is None else f"{type(error).__name__}: {error}"
        raise WrongError(f"expected {wanted.__name__}, got {got} (returned {result!r:.80})")
    problems = []
    for name in ("field", "option", "vcon_uuid"):
        if name in expect and getattr(error, name) != expect[name]:
            problems.append(f".{name} is {getattr(error, name)!r}, not {expect[name]!r}")
    for name in ("field", "option", "vcon_uuid"):
        if expect.get(name) and expect[name] not in str(error):
            problems.append(f"the message does not name the {name} {expect[name]!r}")
    if problems:
        raise WrongError(f"{type(error).__name__}: {error}: " + "; ".join(problems))


@pytest.mark.parametrize(("name", "path"), list(cases()))
def test_bad_input(name: str, path: str, world: World) -> None:
    case = substitute(load(name), {"uuid": world.uuid, "saved": world.saved})
    call, named = prepare(case, path, world)
    expect = {**case["expect"], **case.get("expect_by_path", {}).get(path, {})}
    if case["expect"]["error"] == "InvalidVconError":
        # the label is cut at 100 characters and control characters come back escaped:
        # an error message must not forge log lines
        printable = named
        if isinstance(named, str):
            printable = named[:100]
            if not printable.isprintable():
                printable = printable.encode("unicode_escape").decode("ascii")
        expect.setdefault("vcon_uuid", printable)

    before = world.snapshot()
    result, error = outcome(call)

    assert world.snapshot() == before, f"{path} changed the database or Redis: {error!r:.200}"
    for key in (*CHAIN_LISTS, JOURNAL):
        assert world.redis.exists(key) == 0, f"{key} exists"
    check_error(error, result, expect)
