"""Redis through Sentinel: URL parsing, and a real master failover under load."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from conserver_supabase import ConfigurationError, SupabaseStorage
from conserver_supabase._errors import ChainPushError
from conserver_supabase._redis import _urls

from .sentinel_deployment import SentinelDeployment, save_through_failover
from .vcons import sample


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


@pytest.fixture
def deployment() -> Iterator[SentinelDeployment]:
    """A fresh deployment per test: the failover test leaves no replica behind."""
    with SentinelDeployment() as running:
        yield running


@pytest.mark.integration
def test_a_master_killed_under_load_fails_over_without_losing_a_save(
    deployment: SentinelDeployment, database_url: str
) -> None:
    """Saves run in two threads; the master is SIGKILLed. Calls in the failover wait
    for the promoted replica (redis_failover_timeout) instead of failing: every save
    succeeds, every uuid is in the database, cached and on the chain list of the new
    master, and the slowest save is bounded by the failover timeout."""
    options = {
        "database_url": database_url,
        "redis_url": deployment.url,
        "redis_timeout": 0.5,
        "redis_failover_timeout": 8.0,
        "redis_cooldown": 1.0,
        "chain_lists": ["sentinel_ingress"],
        "cache_errors": "raise",
    }
    run = save_through_failover(deployment, options)

    assert run.failures == [], [repr(f) for f in run.failures[:3]]
    assert run.saves_before_kill > 0
    assert len(run.saved) > run.saves_before_kill + 5, (run.saves_before_kill, len(run.saved))
    assert run.slowest_save < options["redis_failover_timeout"], run
    assert deployment.master_port() == deployment.ports["replica"]
    missing = [u for u in run.saved if u not in run.pushed]
    assert missing == [], f"{len(missing)} of {len(run.saved)} saved uuids not on the list"
    assert run.cached == set(run.saved)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM conserver_vcon_documents WHERE uuid = ANY(%s::uuid[])",
            [run.saved],
        ).fetchone()
    assert stored == (len(run.saved),)
    # A save after the failover goes to the new master as usual.
    with SupabaseStorage(options) as storage:
        after = sample()
        storage.save_vcon(after)
    assert deployment.client("replica").exists(f"vcon:{after['uuid']}")


@pytest.mark.integration
def test_a_sentinel_url_without_a_reachable_master_is_reported(database_url: str) -> None:
    """No sentinel answers: the save is kept in the database and the push is reported,
    naming where Redis was looked for."""
    options = {
        "database_url": database_url,
        "redis_url": "redis+sentinel://127.0.0.1:1/nowhere",
        "redis_timeout": 0.2,
        "redis_failover_timeout": 0.5,
        "chain_lists": ["x"],
    }
    with SupabaseStorage(options) as storage:
        vcon = sample()
        with pytest.raises(ChainPushError) as caught:
            storage.save_vcon(vcon)
        assert "'nowhere'" in str(caught.value)
        assert "127.0.0.1:1" in str(caught.value)
        assert storage.get_vcon(vcon["uuid"]) == vcon  # from the database
