"""The change feed's consumer on the in-memory database and fakeredis: the round, the
cursor, the lease (the real services: tests/acceptance/feed/test_consumer.py)."""

from __future__ import annotations

import fakeredis

from conserver_supabase import SupabaseStorage, testing

OPTIONS = {"cache_key_prefix": "app:", "cache_ttl": 90, "redis_cooldown": 0}


def storage(db: testing.MemoryDatabase, server: fakeredis.FakeServer) -> SupabaseStorage:
    return SupabaseStorage(OPTIONS, database=db, redis_client=fakeredis.FakeRedis(server=server))


def test_a_save_elsewhere_reaches_this_redis_and_the_cursor_moves() -> None:
    db = testing.MemoryDatabase()
    with storage(db, fakeredis.FakeServer()) as here, storage(db, fakeredis.FakeServer()) as there:
        document = testing.make_vcon(seed=1)
        there.save_vcon(document)
        assert here.get_vcon(document["uuid"]) == document  # cached here
        feed = here.change_feed("here")
        assert feed.poll().changes == 1  # the save, known here already (the fill)
        there.save_vcon({**document, "subject": "saved elsewhere"})
        done = feed.poll()
        assert (done.changes, done.removed) == (1, 1)  # only what came since
        assert here.get_vcon(document["uuid"])["subject"] == "saved elsewhere"
        assert feed.poll().changes == 0
        there.delete_vcon(document["uuid"])
        feed.poll()
        assert here.get_vcon(document["uuid"]) is None
        assert not here.exists(document["uuid"])
