"""TLS: rediss:// to Redis and https:// to Supabase, verified against a test CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conserver_supabase import CacheError, SupabaseStorage

from ..support.postgrest_standin import PostgrestStandIn
from ..support.services import redis_client
from ..support.tls_proxy import TlsProxy
from ..support.vcons import sample

pytestmark = pytest.mark.integration
KEY = "tls-test-key"


@pytest.fixture(scope="module")
def ca() -> object:
    import trustme

    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: object) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)  # type: ignore[attr-defined]
    return context


@pytest.fixture(scope="module")
def ca_file(ca: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))  # type: ignore[attr-defined]
    return path


@pytest.fixture
def rediss_url(redis_json_url: str, server_context: ssl.SSLContext, ca_file: Path) -> Iterator[str]:
    port = urlsplit(redis_json_url).port
    assert port is not None
    with TlsProxy(port, server_context) as proxy:
        yield f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={ca_file}"


def test_the_cache_works_over_rediss(
    rediss_url: str, redis_json_url: str, database_url: str
) -> None:
    document = sample()
    with SupabaseStorage({"database_url": database_url, "redis_url": rediss_url}) as store:
        store.save_vcon(document)
        assert store.get_vcon(document["uuid"]) == document
    plain = redis_client(redis_json_url)
    assert plain.type(f"vcon:{document['uuid']}") == b"ReJSON-RL"  # it went through TLS


def test_an_untrusted_redis_certificate_is_refused(rediss_url: str, database_url: str) -> None:
    untrusted = rediss_url.split("?")[0]  # the system CAs do not know the test CA
    options = {"database_url": database_url, "redis_url": untrusted, "cache_errors": "raise"}
    with SupabaseStorage(options) as store, pytest.raises(CacheError) as caught:
        store.get_vcon(sample()["uuid"])
    assert caught.value.unavailable is True
    assert "certificate" in str(caught.value).lower()


def test_supabase_over_https(
    database_url: str,
    redis_json_url: str,
    server_context: ssl.SSLContext,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PostgREST transport verifies the server certificate (here: via SSL_CERT_FILE,
    which httpx honours, pointing at the test CA)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    document = sample()
    with PostgrestStandIn(database_url, key=KEY) as stand_in:
        port = urlsplit(stand_in.url).port
        assert port is not None
        with TlsProxy(port, server_context) as proxy:
            options = {
                "url": f"https://127.0.0.1:{proxy.port}",
                "key": KEY,
                "redis_url": redis_json_url,
            }
            with SupabaseStorage(options) as store:
                assert store.save_vcon(document) == 1
                assert store.exists(document["uuid"]) is True
        assert any("conserver_vcon_save" in r["path"] for r in stand_in.requests)
