"""What the Redis connection layer sends (``_redis/_connect.py``)."""

from __future__ import annotations

import redis

from conserver_supabase._redis._connect import packed


def testpacked_commands_are_what_redis_py_would_send() -> None:
    """The cache hit's own RESP encoding (issue 18) is byte for byte redis-py's."""
    commands = [
        ("JSON.GET", "vcon:0192b3c4-1234-4abc-8def-0123456789ab"),
        ("MGET", "conserver_supabase:version:{vcon:ü✓}", b"raw\r\nbytes"),
        ("GET", ""),
        ("EVALSHA", "0" * 40, 3, 10**20, -1, 0.5),
    ]
    connection = redis.Redis().connection_pool.make_connection()
    assert packed(commands) == b"".join(connection.pack_commands(commands))
