"""Redis Cluster URLs: parsed, checked, their passwords never shown."""

from __future__ import annotations

import pytest

from conserver_supabase import (
    ConfigurationError,
    StorageConfig,
)
from conserver_supabase._redis import _urls as redis_urls


class TestUrls:
    def test_nodes_user_password_and_tls(self) -> None:
        target = redis_urls.parse_cluster(
            "rediss+cluster://app:s3cret@10.0.0.1:7000,node-b,[::1]:7002/0"
        )
        assert target.nodes == (("10.0.0.1", 7000), ("node-b", 6379), ("::1", 7002))
        assert (target.ssl, target.username, target.password) == (True, "app", "s3cret")
        assert "s3cret" not in repr(target)
        assert target.describe() == "Redis Cluster via 10.0.0.1:7000,node-b:6379,[::1]:7002"

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("redis+cluster:///0", "no node host"),
            ("redis+cluster://h1:1,h2:x", "'h2:x' has an invalid port"),
            ("redis+cluster://h1:1/2", "only database 0"),
            ("redis+cluster://h1:1?read_from_replicas=1", "unknown option 'read_from_replicas'"),
        ],
    )
    def test_bad_urls_say_what_is_wrong(self, url: str, says: str) -> None:
        with pytest.raises(ConfigurationError) as caught:
            redis_urls.parse_cluster(url)
        assert caught.value.option == "redis_url"
        assert says in str(caught.value)
        assert "redis+cluster://[[user]:password@]host1:port1" in str(caught.value)

    def test_the_configuration_accepts_and_checks_them(self) -> None:
        options = {"database_url": "postgresql://db/x", "redis_url": "redis+cluster://h:1,h:2"}
        assert StorageConfig.from_options(options).redis_url.reveal() == "redis+cluster://h:1,h:2"
        with pytest.raises(ConfigurationError, match="only database 0"):
            StorageConfig.from_options({**options, "redis_url": "redis+cluster://h:1/3"})
        # A brace would make the prefix a hash tag: the cache key would leave the
        # slot of its version key.
        with pytest.raises(ConfigurationError) as caught:
            StorageConfig.from_options({**options, "cache_key_prefix": "{tenant}:vcon:"})
        assert caught.value.option == "cache_key_prefix"
        single = {**options, "redis_url": "redis://h:1/0", "cache_key_prefix": "{t}:"}
        assert StorageConfig.from_options(single).cache_key_prefix == "{t}:"
