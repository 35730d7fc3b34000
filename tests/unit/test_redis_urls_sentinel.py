"""Redis Sentinel URLs: parsed, checked, their passwords never shown."""

from __future__ import annotations

import pytest

from conserver_supabase import ConfigurationError
from conserver_supabase._redis import _urls


class TestUrls:
    def test_hosts_service_db_and_passwords(self) -> None:
        target = _urls.parse_sentinel(
            "redis+sentinel://:s3cret@10.0.0.1:26380,sentinel-b,[::1]:5000/mymaster/2"
            "?sentinel_password=sp"
        )
        assert target.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 5000))
        assert (target.service, target.db, target.ssl) == ("mymaster", 2, False)
        secrets = (target.username, target.password, target.sentinel_password)
        assert secrets == (None, "s3cret", "sp")
        assert "s3cret" not in repr(target)
        assert "sp'" not in repr(target)
        assert "s3cret" not in target.describe()

    def test_tls_user_and_default_db(self) -> None:
        target = _urls.parse_sentinel("rediss+sentinel://app:pw@h1:1,h2:2/svc")
        assert (target.ssl, target.username, target.password, target.db) == (True, "app", "pw", 0)

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("redis+sentinel:///svc", "no sentinel host"),
            ("redis+sentinel://h1:1,h2:x/svc", "'h2:x' has an invalid port"),
            ("redis+sentinel://h1:1", "service name"),
            ("redis+sentinel://h1:1/svc/zero", "'zero' is not a number"),
            ("redis+sentinel://h1:1/s%20v", "characters other than"),
            ("redis+sentinel://h1:1/svc?ssl_cert_reqs=none", "unknown option 'ssl_cert_reqs'"),
        ],
    )
    def test_bad_urls_say_what_is_wrong(self, url: str, says: str) -> None:
        with pytest.raises(ConfigurationError) as caught:
            _urls.parse_sentinel(url)
        assert caught.value.option == "redis_url"
        assert says in str(caught.value)
        assert "redis+sentinel://[:password@]host1:port1" in str(caught.value)

    @pytest.mark.parametrize(
        "url",
        [
            "redis+sentinel://:s3cr/et@h1:26379,h2:26379/mymaster",
            "redis+sentinel://:s3cr?et@h1:26379/mymaster",
            "redis+sentinel://:s3cr#et@h1:26379/mymaster",
            "redis+cluster://user:s3cr#et@h1:7000,h2:7001",
            "redis+cluster://:s3cr/et@h1:7000,h2:7001",
            "redis+sentinel://h1:26379/mymaster?sentinel_password=s3cret",
        ],
    )
    def test_a_password_never_shows(self, url: str) -> None:
        """Raw / ? # in a password (which must be percent-encoded) move where a parser
        splits the URL: the error or the configuration's repr must still hide it."""
        from conserver_supabase import StorageConfig

        options = {"database_url": "postgresql://db/x", "redis_url": url}
        try:
            shown = repr(StorageConfig.from_options(options))
        except ConfigurationError as exc:
            shown = str(exc)
            assert "percent-encoded" in shown
        assert "s3cr" not in shown

    def test_the_configuration_accepts_and_checks_them(self) -> None:
        from conserver_supabase import StorageConfig

        options = {"database_url": "postgresql://db/x", "redis_url": "redis+sentinel://h:1/svc"}
        config = StorageConfig.from_options(options)
        assert config.redis_url.reveal() == "redis+sentinel://h:1/svc"
        with pytest.raises(ConfigurationError, match="service name"):
            StorageConfig.from_options({**options, "redis_url": "redis+sentinel://h:1"})
