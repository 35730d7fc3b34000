"""StorageConfig: every opts shape the conserver passes, env fallbacks, ${VAR}, secrets."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest

import conserver_supabase
from conserver_supabase import ConfigurationError, StorageConfig
from conserver_supabase._config import redact_url

KEY = "sb-secret-service-role-key-0123456789"
ENV = {"SUPABASE_URL": "https://proj.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": KEY}


def build(opts: Any = None, **env: str) -> StorageConfig:
    return StorageConfig.from_options(opts, environ=env)


class TestOptsShapes:
    """The conserver passes options:, default_options itself, or None."""

    def test_none_default_options_and_empty_mapping_agree(self) -> None:
        assert (
            build(None, **ENV)
            == build({}, **ENV)
            == build(conserver_supabase.default_options, **ENV)
        )

    def test_default_options_is_never_modified(self) -> None:
        before = copy.deepcopy(conserver_supabase.default_options)
        build(conserver_supabase.default_options, **ENV)
        build(
            conserver_supabase.default_options,
            SUPABASE_URL="https://x.supabase.co",
            SUPABASE_KEY="k",
            VCON_REDIS_EXPIRY="5",
            REDIS_URL="redis://r:1",
        )
        assert conserver_supabase.default_options == before

    def test_given_mapping_is_never_modified(self) -> None:
        opts = {"url": "${SUPABASE_URL}", "service_role_key": "k", "chain_lists": "a,b"}
        snapshot = copy.deepcopy(opts)
        build(opts, **ENV)
        assert opts == snapshot

    def test_defaults(self) -> None:
        config = build()
        assert config.schema == "public"
        assert config.cache_key_prefix == "vcon:"
        assert config.cache_ttl == 3600
        assert config.chain_lists == ()
        assert config.redis_url.reveal() == "redis://localhost:6379/0"
        assert config.timeout == 10.0
        assert config.url is None
        assert config.key is None
        assert config.database_url is None

    def test_not_a_mapping(self) -> None:
        with pytest.raises(ConfigurationError, match="must be a mapping"):
            build(["url"])


class TestEnvironment:
    def test_fallbacks(self) -> None:
        config = build(
            None,
            SUPABASE_URL="https://a.supabase.co/",
            SUPABASE_SERVICE_ROLE_KEY="s",
            REDIS_URL="redis://cache:6380/2",
            VCON_REDIS_EXPIRY="120",
            SUPABASE_DB_URL="postgresql://u:p@db:5432/postgres",
        )
        assert config.url == "https://a.supabase.co"
        assert config.key is not None
        assert config.key.reveal() == "s"
        assert config.redis_url.reveal() == "redis://cache:6380/2"
        assert config.cache_ttl == 120
        assert config.database_url is not None
        assert config.transport == "postgres"

    def test_service_role_key_wins_over_supabase_key(self) -> None:
        config = build(None, SUPABASE_SERVICE_ROLE_KEY="service", SUPABASE_KEY="plain")
        assert config.key is not None
        assert config.key.reveal() == "service"
        config = build(None, SUPABASE_KEY="plain")
        assert config.key is not None
        assert config.key.reveal() == "plain"

    def test_anon_key_variable_is_deprecated(self) -> None:
        with pytest.warns(DeprecationWarning, match="SUPABASE_ANON_KEY"):
            config = build(None, SUPABASE_ANON_KEY="anon")
        assert config.key is not None
        assert config.key.reveal() == "anon"

    def test_option_beats_environment(self) -> None:
        config = build(
            {"cache_ttl": 60, "url": "https://opt.supabase.co"},
            VCON_REDIS_EXPIRY="120",
            SUPABASE_URL="https://env.supabase.co",
        )
        assert config.cache_ttl == 60
        assert config.url == "https://opt.supabase.co"

    def test_empty_option_falls_back_to_environment(self) -> None:
        config = build({"url": ""}, SUPABASE_URL="https://env.supabase.co")
        assert config.url == "https://env.supabase.co"


class TestExpansion:
    def test_braced_variables_are_expanded(self) -> None:
        config = build(
            {
                "url": "${SUPABASE_URL}",
                "key": "${SUPABASE_SERVICE_ROLE_KEY}",
                "chain_lists": ["${LIST}_ingress", "audit"],
            },
            LIST="main",
            **ENV,
        )
        assert config.url == "https://proj.supabase.co"
        assert config.key is not None
        assert config.key.reveal() == KEY
        assert config.chain_lists == ("main_ingress", "audit")

    def test_default_applies_when_unset_or_empty(self) -> None:
        assert build({"cache_ttl": "${TTL:-90}"}).cache_ttl == 90
        assert build({"cache_ttl": "${TTL:-90}"}, TTL="").cache_ttl == 90
        assert build({"cache_ttl": "${TTL:-90}"}, TTL="30").cache_ttl == 30

    def test_unset_variable_without_default_names_option_and_variable(self) -> None:
        with pytest.raises(ConfigurationError) as caught:
            build({"redis_url": "${MY_REDIS}"})
        assert caught.value.option == "redis_url"
        assert "MY_REDIS" in str(caught.value)
        assert "redis_url" in str(caught.value)

    def test_blank_value_means_not_given(self) -> None:
        assert build({"cache_key_prefix": "  "}).cache_key_prefix == "vcon:"

    def test_empty_expansion_means_not_given(self) -> None:
        config = build({"url": "${NOPE:-}"}, SUPABASE_URL="https://env.supabase.co")
        assert config.url == "https://env.supabase.co"


class TestAliases:
    @pytest.mark.parametrize("alias", ["key", "service_role_key", "anon_key"])
    def test_key_aliases(self, alias: str) -> None:
        config = build({alias: "k1"})
        assert config.key is not None
        assert config.key.reveal() == "k1"

    def test_conflicting_aliases(self) -> None:
        with pytest.raises(ConfigurationError, match="same setting"):
            build({"key": "a", "service_role_key": "b"})

    def test_same_value_under_two_names_is_fine(self) -> None:
        assert build({"key": "a", "service_role_key": "a"}).key == build({"key": "a"}).key


class TestCoercionAndValidation:
    def test_strings_from_yaml_are_coerced(self) -> None:
        config = build(
            {
                "cache_ttl": "600",
                "timeout": "2.5",
                "pool_size": "4",
                "chain_lists": "ingress, audit,ingress",
            }
        )
        assert (config.cache_ttl, config.timeout, config.pool_size) == (600, 2.5, 4)
        assert config.chain_lists == ("ingress", "audit")

    def test_cache_choices_are_case_insensitive(self) -> None:
        config = build({"cache_format": "JSON", "cache_errors": " Raise ", "redis_timeout": "0.5"})
        assert (config.cache_format, config.cache_errors, config.redis_timeout) == (
            "json",
            "raise",
            0.5,
        )
        assert (build().cache_format, build().cache_errors) == ("auto", "log")
        assert build({"cache_format": "string", "cache_key_prefix": "app:"}).cache_format == (
            "string"
        )

    def test_unknown_option_lists_valid_ones(self) -> None:
        with pytest.raises(ConfigurationError) as caught:
            build({"urll": "https://x.supabase.co"})
        message = str(caught.value)
        assert "'urll'" in message
        for name in ("url", "key", "database_url", "redis_url", "cache_ttl", "chain_lists"):
            assert name in message

    @pytest.mark.parametrize(
        ("opts", "option"),
        [
            ({"cache_ttl": "soon"}, "cache_ttl"),
            ({"cache_ttl": 0}, "cache_ttl"),
            ({"cache_ttl": True}, "cache_ttl"),
            ({"timeout": "-1"}, "timeout"),
            ({"timeout": "nan"}, "timeout"),
            ({"pool_size": 0}, "pool_size"),
            ({"url": "proj.supabase.co"}, "url"),
            ({"url": 42}, "url"),
            ({"database_url": "mysql://x"}, "database_url"),
            ({"redis_url": "redis+cluster://h:6379/1"}, "redis_url"),  # only db 0
            (
                {"redis_url": "redis+cluster://h:6379", "cache_key_prefix": "{a}:"},
                "cache_key_prefix",
            ),
            ({"redis_url": "redis+sharded://h:6379"}, "redis_url"),
            ({"schema": "public; drop table vcons"}, "schema"),
            ({"cache_key_prefix": 5}, "cache_key_prefix"),
            ({"chain_lists": [""]}, "chain_lists"),
            ({"chain_lists": {"a": 1}}, "chain_lists"),
            ({"cache_format": "xml"}, "cache_format"),
            ({"cache_errors": "ignore"}, "cache_errors"),
            ({"redis_timeout": 0}, "redis_timeout"),
            ({"cache_format": "string"}, "cache_format"),  # would break vcon:{uuid}
            ({"redis_url": "redis://cache:notaport/0"}, "redis_url"),
            ({"database_url": "postgresql://db:99999/x"}, "database_url"),
        ],
    )
    def test_bad_values_name_the_option(self, opts: dict[str, Any], option: str) -> None:
        with pytest.raises(ConfigurationError) as caught:
            build(opts)
        assert caught.value.option == option
        assert option in str(caught.value)

    def test_is_hashable_and_frozen(self) -> None:
        config = build({"chain_lists": ["a"]}, **ENV)
        assert hash(config) == hash(build({"chain_lists": ["a"]}, **ENV))
        with pytest.raises(AttributeError):
            config.url = "https://other"  # type: ignore[misc]

    def test_require_database(self) -> None:
        with pytest.raises(ConfigurationError, match="no database configured"):
            build().require_database()
        with pytest.raises(ConfigurationError, match="'key' is not"):
            build({"url": "https://x.supabase.co"}).require_database()
        build(None, **ENV).require_database()
        build({"database_url": "postgresql://localhost/x"}).require_database()


class TestSecrets:
    def test_key_and_passwords_never_in_repr_or_str(self) -> None:
        config = build(
            {
                "database_url": f"postgresql://postgres:{KEY}@db:5432/postgres",
                "redis_url": f"rediss://default:{KEY}@cache:6380/0",
            },
            **ENV,
        )
        for text in (repr(config), str(config), f"{config}", str(config.describe())):
            assert KEY not in text
            assert "***" in text
        assert "db:5432" in repr(config)

    def test_passwords_in_url_queries_are_redacted(self) -> None:
        config = build({"redis_url": f"redis://cache:6379/0?password={KEY}&db=2"}, **ENV)
        assert KEY not in str(config.describe())
        assert "password=***&db=2" in str(config.describe())
        assert redact_url("unix:///run/redis.sock") == "unix:///run/redis.sock"

    def test_secret_errors_do_not_echo_the_value(self) -> None:
        with pytest.raises(ConfigurationError) as caught:
            build({"database_url": f"mysql://root:{KEY}@db/x"})
        assert KEY not in str(caught.value)

    def test_no_warning_for_service_role_key(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            build(None, **ENV)


class TestReadReplica:
    """``read_database_url`` / ``read_url``: the replica of the transport in use."""

    PRIMARY = "postgresql://postgres:pw@db:5432/postgres"
    REPLICA = f"postgresql://postgres:{KEY}@replica:5432/postgres"

    def test_psycopg_replica(self) -> None:
        config = build({"database_url": self.PRIMARY, "read_database_url": self.REPLICA})
        assert config.replica
        assert config.read_database_url is not None
        assert config.read_database_url.reveal() == self.REPLICA
        assert config.read_url is None

    def test_postgrest_replica_uses_the_same_key(self) -> None:
        config = build({"read_url": "https://proj-rr-eu-west-1-abcde.supabase.co/"}, **ENV)
        assert config.replica
        assert config.read_url == "https://proj-rr-eu-west-1-abcde.supabase.co"
        assert config.transport == "postgrest"

    def test_no_replica_by_default(self) -> None:
        assert not build(None, **ENV).replica
        assert not build({"database_url": self.PRIMARY}).replica

    def test_environment(self) -> None:
        config = build(
            None,
            SUPABASE_DB_URL=self.PRIMARY,
            SUPABASE_READ_DB_URL=self.REPLICA,
            SUPABASE_READ_URL="https://r.supabase.co",
        )
        assert config.read_database_url is not None
        assert config.read_database_url.reveal() == self.REPLICA
        assert build(None, SUPABASE_READ_URL="https://r.supabase.co", **ENV).read_url == (
            "https://r.supabase.co"
        )

    def test_the_postgrest_replica_is_ignored_with_both_replicas(self) -> None:
        """As ``url`` is when ``database_url`` is set: the psycopg transport is used."""
        config = build(
            {
                "database_url": self.PRIMARY,
                "read_database_url": self.REPLICA,
                "read_url": "https://r.supabase.co",
            },
            **ENV,
        )
        assert config.transport == "postgres"
        assert config.replica

    @pytest.mark.parametrize(
        ("opts", "option", "says"),
        [
            ({"read_database_url": REPLICA}, "read_database_url", "'database_url' is not"),
            (
                {"read_database_url": REPLICA, "url": "https://x.supabase.co", "key": "k"},
                "read_database_url",
                "'database_url' is not",
            ),
            ({"read_url": "https://r.supabase.co"}, "read_url", "'url' is not"),
            (
                {"read_url": "https://r.supabase.co", "database_url": PRIMARY},
                "read_url",
                "set 'read_database_url'",
            ),
            ({"read_url": "r.supabase.co", "url": "https://x.co"}, "read_url", "https://"),
            ({"read_url": 5, "url": "https://x.co"}, "read_url", "string"),
            (
                {"read_database_url": "mysql://replica/x", "database_url": PRIMARY},
                "read_database_url",
                "postgresql://",
            ),
            (
                {"read_database_url": "postgresql://replica:99999/x", "database_url": PRIMARY},
                "read_database_url",
                "invalid port",
            ),
        ],
    )
    def test_bad_replica_options_name_the_option(
        self, opts: dict[str, Any], option: str, says: str
    ) -> None:
        with pytest.raises(ConfigurationError) as caught:
            build(opts)
        assert caught.value.option == option
        assert says in str(caught.value)

    def test_replica_password_never_shown(self) -> None:
        config = build({"database_url": self.PRIMARY, "read_database_url": self.REPLICA})
        for text in (repr(config), str(config), str(config.describe())):
            assert KEY not in text
        assert "replica:5432" in repr(config)
        with pytest.raises(ConfigurationError) as caught:
            build({"database_url": self.PRIMARY, "read_database_url": f"mysql://u:{KEY}@r/x"})
        assert KEY not in str(caught.value)

    def test_opening_a_replica_that_is_not_configured(self) -> None:
        from conserver_supabase._database import open_database

        with pytest.raises(ConfigurationError) as caught:
            open_database(build({"database_url": self.PRIMARY}), replica=True)
        assert caught.value.option == "read_database_url"
