"""A dict holding a value JSON cannot write (an object, bytes, a key that is no string)
is refused as an invalid vCon naming the field, though the JSON text is made before
validation runs, and nothing is written (real PostgreSQL and RedisJSON)."""

from __future__ import annotations

import pytest
import redis

from conserver_supabase import InvalidVconError, SupabaseStorage
from conserver_supabase.testing import make_vcon

pytestmark = pytest.mark.integration


def test_a_value_json_cannot_hold_is_refused_by_its_field(
    database_url: str, redis_json_url: str
) -> None:
    """save_vcon of a dict holding an object JSON cannot write (the text is made before
    validation runs) is refused naming the vCon and the field, and nothing is written to
    the database or Redis (real PostgreSQL and RedisJSON)."""
    document = make_vcon(seed=12)
    document["meta"] = {"when": object()}
    options = {"database_url": database_url, "redis_url": redis_json_url}
    with SupabaseStorage(options) as store:
        with pytest.raises(InvalidVconError) as caught:
            store.save_vcon(document)
        assert (caught.value.vcon_uuid, caught.value.field) == (document["uuid"], "meta.when")
        assert store.get_vcon(document["uuid"], use_cache=False) is None
    assert redis.Redis.from_url(redis_json_url).keys("*" + document["uuid"] + "*") == []
