"""The conserver's ``save`` hook racing other saves of the same uuid, in a forced order.

The hook reads the working copy at ``vcon:{uuid}`` (our cache key), saves it, then
renews the key ("touch", ``lua/write.lua``). Between its read and that touch, other
saves, the conserver's links or reads may have changed the key: the touch must never
stamp its version on a body it did not save. Each test holds the saves at fixed points
(:class:`GatedDatabase`) so the interleaving is the same on every run; at the end the
cache holds the database's vCon or nothing, and a get returns the database's vCon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conserver_supabase import SupabaseStorage
from conserver_supabase._config import StorageConfig
from conserver_supabase._database import open_database

from ..support.vcons import sample

pytestmark = pytest.mark.integration

WAIT = 10.0  # seconds: a step that takes longer is a failure, never a hang


class Gate:
    """A point a save stops at: ``reached`` once it got there, then waits for ``open``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def stop_here(self) -> None:
        self.reached.set()
        assert self.opened.wait(WAIT), "the test never opened this gate"

    def wait_reached(self) -> None:
        assert self.reached.wait(WAIT), "the save never reached this gate"


class GatedDatabase:
    """A real database whose saves of a document with a given ``subject`` stop at a gate
    before their commit (``before``) or after it (``after``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.before: dict[str, Gate] = {}
        self.after: dict[str, Gate] = {}

    def save(
        self, documents: Any, tenants: Any, bases: Any = None, texts: Any = None
    ) -> dict[str, int]:
        subject = documents[0].get("subject")
        if subject in self.before:
            self.before[subject].stop_here()
        versions: dict[str, int] = self._inner.save(documents, tenants, bases, texts)
        if subject in self.after:
            self.after[subject].stop_here()
        return versions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Run:
    """A storage over the gated database, and threads that run its calls."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        options = {"database_url": database_url, "redis_url": redis_url}
        self.database = GatedDatabase(open_database(StorageConfig.from_options(options)))
        self.storage = SupabaseStorage(options, database=self.database)
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, call: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            try:
                call()
            except BaseException as exc:  # reported by join
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def join(self, thread: threading.Thread) -> None:
        thread.join(WAIT)
        assert not thread.is_alive(), "a save did not finish"
        assert self.errors == []

    def version(self, subject: str, gates: dict[str, Gate]) -> Gate:
        gates[subject] = Gate()
        return gates[subject]

    def in_database(self, vcon_uuid: str) -> Any:
        found = self.database.fetch([vcon_uuid]).get(vcon_uuid)
        return None if found is None else found[0]

    def cached(self, vcon_uuid: str) -> Any:
        cache = self.storage._redis._cache
        return cache.read(cache.key(vcon_uuid), vcon_uuid)

    def recorded(self, vcon_uuid: str) -> int:
        cache = self.storage._redis._cache
        return int(self.storage._redis._connection.client.get(cache.version_key(vcon_uuid)))


@pytest.fixture
def run(database_url: str, redis_url: str) -> Iterator[Run]:
    race = Run(database_url, redis_url)
    yield race
    for gates in (race.database.before, race.database.after):
        for gate in gates.values():
            gate.opened.set()  # a failed test lets its threads finish
    for thread in race.threads:
        thread.join(WAIT)
    race.storage.close()


def document(vcon_uuid: str, subject: str) -> dict[str, Any]:
    vcon = sample(vcon_uuid=vcon_uuid)
    vcon["subject"] = subject
    return vcon


def test_a_save_vcon_landing_between_the_hooks_read_and_its_touch(run: Run) -> None:
    """The issue's race: save_vcon(C) commits at 1, the hook's save of B at 2; C reaches
    the cache after the hook read B; the hook's touch must not stamp 2 on C."""
    vcon_uuid = sample()["uuid"]
    b, c = document(vcon_uuid, "B"), document(vcon_uuid, "C")
    run.storage._redis.conserver.put(b)  # the working copy the chain left
    c_committed = run.version("C", run.database.after)
    b_committed = run.version("B", run.database.after)
    saving_c = run.start(lambda: run.storage.save_vcon(c))
    c_committed.wait_reached()
    hook = run.start(lambda: run.storage.save_working_copy(vcon_uuid))
    b_committed.wait_reached()  # the hook read B and committed it at version 2
    c_committed.opened.set()
    run.join(saving_c)  # C is cached at version 1
    assert run.cached(vcon_uuid) == c
    b_committed.opened.set()
    run.join(hook)

    assert run.in_database(vcon_uuid) == b
    assert run.cached(vcon_uuid) in (b, None)
    assert run.storage.get_vcon(vcon_uuid) == b


def test_two_hook_saves_with_a_link_write_between_them_commit_out_of_order(run: Run) -> None:
    """Save A read W; a link wrote W2; save B read W2 and committed first (1), A second
    (2). A's touch finds W2, not what it read: it keeps W2 (it may be a link's work not
    saved yet) but records version 2, so B's touch cannot stamp 1 on it and removes it."""
    vcon_uuid = sample()["uuid"]
    w, w2 = document(vcon_uuid, "W"), document(vcon_uuid, "W2")
    run.storage._redis.conserver.put(w)
    a_reads = run.version("W", run.database.before)
    b_committed = run.version("W2", run.database.after)
    save_a = run.start(lambda: run.storage.save_working_copy(vcon_uuid))
    a_reads.wait_reached()  # A read W
    run.storage._redis.conserver.put(w2)  # a link of another chain
    save_b = run.start(lambda: run.storage.save_working_copy(vcon_uuid))
    b_committed.wait_reached()  # B read W2 and committed it at version 1
    a_reads.opened.set()
    run.join(save_a)  # A committed W at version 2; the key holds W2
    assert run.cached(vcon_uuid) == w2
    assert run.recorded(vcon_uuid) == -2
    b_committed.opened.set()
    run.join(save_b)

    assert run.in_database(vcon_uuid) == w
    assert run.cached(vcon_uuid) in (w, None)
    assert run.storage.get_vcon(vcon_uuid) == w


def test_a_links_newer_working_copy_is_kept_until_its_own_save(run: Run) -> None:
    """A link writes W2 after the hook read W: the touch keeps W2 (the database does not
    have it yet), and the link's own save then caches it at its version."""
    vcon_uuid = sample()["uuid"]
    w, w2 = document(vcon_uuid, "W"), document(vcon_uuid, "W2")
    run.storage._redis.conserver.put(w)
    w_committed = run.version("W", run.database.after)
    save = run.start(lambda: run.storage.save_working_copy(vcon_uuid))
    w_committed.wait_reached()
    run.storage._redis.conserver.put(w2)
    w_committed.opened.set()
    run.join(save)
    assert run.in_database(vcon_uuid) == w
    assert run.cached(vcon_uuid) == w2  # kept: nothing the database lacks is lost
    assert run.recorded(vcon_uuid) == -1  # but not stamped as version 1

    assert run.storage.save_working_copy(vcon_uuid) == 2  # the link's chain ends
    assert run.in_database(vcon_uuid) == w2
    assert run.cached(vcon_uuid) == w2
    assert run.recorded(vcon_uuid) == 2


def test_a_hook_save_committed_after_a_delete_that_removed_its_key(run: Run) -> None:
    """A delete removes the key between the hook's read and its commit: the save,
    committed after the delete, recreates the vCon and the touch writes what it saved."""
    vcon_uuid = sample()["uuid"]
    first, w = document(vcon_uuid, "first"), document(vcon_uuid, "W")
    run.storage.save_vcon(first)  # version 1
    run.storage._redis.conserver.put(w)
    w_reads = run.version("W", run.database.before)
    save = run.start(lambda: run.storage.save_working_copy(vcon_uuid))
    w_reads.wait_reached()
    assert run.storage.delete_vcon(vcon_uuid) is True  # version 2; the key goes
    w_reads.opened.set()
    run.join(save)  # W committed at 3, after the delete
    assert run.in_database(vcon_uuid) == w
    assert run.cached(vcon_uuid) == w
    assert run.recorded(vcon_uuid) == 3
