"""The module-level hooks, driven the way vcon-server drives a storage.

The conserver imports ``module:`` with importlib (lazily, maybe in a worker thread),
builds a new Storage per call that passes ``opts`` as the raw ``options:`` mapping,
the module's ``default_options`` object, or ``None``; ``${VAR}`` arrive unexpanded.
Before ``save`` the vCon sits at ``vcon:{uuid}`` as RedisJSON and the conserver
reads it back with ``JSON.GET``. On a Redis miss it calls ``get`` and re-caches.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from conserver_supabase import (
    CacheError,
    InvalidVconError,
    SupabaseStorage,
    VconNotFoundError,
)

from ..support.services import redis_client
from ..support.vcons import sample

pytestmark = pytest.mark.integration


@pytest.fixture
def conserver_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_json_url: str
) -> dict[str, str]:
    """The environment of a conserver container."""
    for name in list(os.environ):
        if name.startswith(("SUPABASE_", "REDIS_", "VCON_")):
            monkeypatch.delenv(name)
    env = {"SUPABASE_DB_URL": database_url, "REDIS_URL": redis_json_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def put_working_copy(url: str, document: dict[str, Any]) -> Any:
    """What the conserver's VconRedis.store_vcon does."""
    client = redis_client(url)
    client.json().set(f"vcon:{document['uuid']}", "$", document)
    return client


def in_database(database_url: str, vcon_uuid: str) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT conserver_vcon_load(%s)", [vcon_uuid]).fetchone()
    return None if row is None else row[0]


def import_like_the_conserver() -> Any:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(importlib.import_module, "conserver_supabase").result()


@pytest.mark.parametrize("opts_kind", ["default_options", "none", "raw mapping"])
def test_save_get_delete_through_the_hooks(
    opts_kind: str, conserver_env: dict[str, str], database_url: str
) -> None:
    """The conserver's sequence, step by step."""
    module = import_like_the_conserver()
    pristine = copy.deepcopy(module.default_options)
    lists = ["egress_a", "egress_b"]
    opts = {
        "default_options": module.default_options,
        "none": None,
        "raw mapping": {
            "redis_url": "${REDIS_URL}",
            "database_url": "${SUPABASE_DB_URL}",
            "chain_lists": lists,
        },
    }[opts_kind]
    document = sample()
    vcon_uuid = document["uuid"]
    key = f"vcon:{vcon_uuid}"
    client = put_working_copy(conserver_env["REDIS_URL"], document)
    client.expire(key, 30)  # the working copy's own TTL

    assert module.save(vcon_uuid, opts) is None
    assert in_database(database_url, vcon_uuid) == document
    with psycopg.connect(database_url) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {table} WHERE vcon_id = %s", [vcon_uuid]).fetchone()
            for table in ("parties", "dialog", "analysis", "attachments")
        ]
    assert counts == [
        (len(document.get(name) or []),)
        for name in ("parties", "dialog", "analysis", "attachments")
    ]
    assert client.type(key) == b"ReJSON-RL"  # still what VconRedis can read
    assert client.json().get(key) == document
    assert 3590 <= client.ttl(key) <= 3600  # refreshed to cache_ttl
    for name in lists:
        pushed = [vcon_uuid.encode()] if opts_kind == "raw mapping" else []
        assert client.lrange(name, 0, -1) == pushed

    client.delete(key)  # evicted: the conserver asks every storage
    assert module.get(vcon_uuid, opts) == document
    assert client.type(key) == b"ReJSON-RL"  # and the key is back
    assert client.json().get(key) == document
    assert module.delete(vcon_uuid, opts) is True
    assert client.exists(key) == 0
    assert module.get(vcon_uuid, opts) is None
    assert module.delete(vcon_uuid, opts) is False
    assert module.default_options == pristine


def test_save_renews_the_ttl_without_rewriting_the_working_copy(
    conserver_env: dict[str, str], database_url: str
) -> None:
    """A link that changes the working copy while save runs keeps its change."""
    from conserver_supabase._config import StorageConfig
    from conserver_supabase._database._postgres import PostgresDatabase

    document = sample()
    client = put_working_copy(conserver_env["REDIS_URL"], document)
    key = f"vcon:{document['uuid']}"
    database = PostgresDatabase(StorageConfig.from_options({"database_url": database_url}))

    class LinkWritesMeanwhile:
        def __getattr__(self, name: str) -> Any:
            return getattr(database, name)

        def save(
            self, documents: Any, tenants: Any, bases: Any = None, texts: Any = None
        ) -> dict[str, int]:
            versions = database.save(documents, tenants, bases, texts)
            client.json().set(key, "$.subject", "changed by a link meanwhile")
            return versions

    options = {
        "cache_ttl": 77,
        "redis_url": conserver_env["REDIS_URL"],
        "database_url": database_url,
    }
    with SupabaseStorage(options, database=LinkWritesMeanwhile()) as storage:
        storage.save_working_copy(document["uuid"])
    assert 70 <= client.ttl(key) <= 77
    assert client.json().get(key)["subject"] == "changed by a link meanwhile"
    assert in_database(database_url, document["uuid"]) == document


def test_the_hooks_take_uuid_objects(conserver_env: dict[str, str]) -> None:
    """The conserver's HTTP API passes uuid.UUID to get and delete."""
    import uuid

    module = import_like_the_conserver()
    document = sample()
    put_working_copy(conserver_env["REDIS_URL"], document)
    as_object = uuid.UUID(document["uuid"])
    module.save(as_object, None)
    assert module.get(as_object, None) == document
    assert module.delete(as_object, None) is True


def test_save_pushes_onto_chain_lists(conserver_env: dict[str, str]) -> None:
    module = import_like_the_conserver()
    documents = [sample() for _ in range(3)]
    client = put_working_copy(conserver_env["REDIS_URL"], documents[0])
    for document in documents[1:]:
        client.json().set(f"vcon:{document['uuid']}", "$", document)
    for document in documents:
        module.save(document["uuid"], {"chain_lists": ["egress"]})
    assert [client.lpop("egress").decode() for _ in documents] == [d["uuid"] for d in documents]


def test_a_string_working_copy_is_saved_too(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_plain_url: str
) -> None:
    module = import_like_the_conserver()
    document = sample()
    client = redis_client(redis_plain_url)
    client.set(f"vcon:{document['uuid']}", json.dumps(document))
    opts = {"database_url": database_url, "redis_url": redis_plain_url}
    try:
        module.save(document["uuid"], opts)
        assert in_database(database_url, document["uuid"]) == document
        assert client.type(f"vcon:{document['uuid']}") == b"string"
    finally:
        SupabaseStorage.for_options(opts).close()


def test_a_missing_working_copy_names_the_key(conserver_env: dict[str, str]) -> None:
    module = import_like_the_conserver()
    vcon_uuid = sample()["uuid"]
    with pytest.raises(VconNotFoundError, match=f"vcon:{vcon_uuid}"):
        module.save(vcon_uuid, None)


def test_an_invalid_working_copy_is_written_nowhere(
    conserver_env: dict[str, str], database_url: str
) -> None:
    module = import_like_the_conserver()
    document = sample()
    document["parties"][0]["tel"] = 5551234
    client = put_working_copy(conserver_env["REDIS_URL"], document)
    with pytest.raises(InvalidVconError) as caught:
        module.save(document["uuid"], {"chain_lists": ["egress"]})
    assert caught.value.vcon_uuid == document["uuid"]
    assert caught.value.field == "parties[0].tel"
    assert in_database(database_url, document["uuid"]) is None
    assert client.exists("egress") == 0
    assert client.ttl(f"vcon:{document['uuid']}") == -1  # untouched


def test_a_working_copy_under_another_uuid_is_refused(conserver_env: dict[str, str]) -> None:
    module = import_like_the_conserver()
    document = sample()
    other = sample()["uuid"]
    client = put_working_copy(conserver_env["REDIS_URL"], document)
    client.json().set(f"vcon:{other}", "$", document)
    with pytest.raises(InvalidVconError) as caught:
        module.save(other, None)
    assert caught.value.field == "uuid"


def test_save_without_redis_is_a_cache_error_naming_the_working_copy(
    monkeypatch: pytest.MonkeyPatch, conserver_env: dict[str, str], unreachable_redis_url: str
) -> None:
    module = import_like_the_conserver()
    monkeypatch.setenv("REDIS_URL", unreachable_redis_url)
    vcon_uuid = sample()["uuid"]
    try:
        with pytest.raises(CacheError, match="working copy read") as caught:
            module.save(vcon_uuid, None)
        assert caught.value.vcon_uuid == vcon_uuid
    finally:
        SupabaseStorage.for_options(None).close()


def test_parallel_saves_of_one_vcon(conserver_env: dict[str, str], database_url: str) -> None:
    """Several workers (or parallel storages) save the same uuid at once."""
    module = import_like_the_conserver()
    document = sample()
    put_working_copy(conserver_env["REDIS_URL"], document)
    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(module.save, document["uuid"], None) for _ in range(12)]:
            future.result()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT version FROM conserver_vcon_documents WHERE uuid = %s", [document["uuid"]]
        ).fetchone()
        assert row is not None
        (version,) = row
    assert version == 12


HOOK_PROBE = """
import json, logging, os, sys
root = logging.getLogger()
handler = logging.StreamHandler(sys.stderr)
root.addHandler(handler)
root.setLevel(logging.ERROR)
state = lambda: (root.level, list(root.handlers), logging.root.manager.disable,
                 logging.getLogger("conserver_supabase").handlers)
before = state()
import conserver_supabase
document = json.loads(sys.stdin.read())
import redis
redis.Redis.from_url(os.environ["REDIS_URL"]).json().set("vcon:" + document["uuid"], "$", document)
conserver_supabase.save(document["uuid"], None)
assert conserver_supabase.get(document["uuid"], None) == document
assert state() == before, (state(), before)
conserver_modules = {"vcon", "lib", "common", "storage", "redis_mgr", "settings", "links"}
assert not conserver_modules & set(sys.modules), conserver_modules & set(sys.modules)
print("ok")
"""


def test_hooks_leave_logging_alone_and_import_nothing_of_the_conserver(
    conserver_env: dict[str, str],
) -> None:
    environ = {**os.environ, **conserver_env}
    result = subprocess.run(
        [sys.executable, "-c", HOOK_PROBE],
        input=json.dumps(sample()),
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
