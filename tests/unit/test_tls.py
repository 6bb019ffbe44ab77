"""TLS settings: the server context's floor, outbound verification with an organisation's CA
(a CA made here, a local HTTPS JWKS endpoint), and production mode refusing plain HTTP to Keycloak."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from authorizer.authn.identity import IssuerUnavailable, JwksCache
from authorizer.config import ConfigError, load_config
from authorizer.tls import TlsSettings, client_context, is_loopback_url, server_context
from tests.support.tlsca import TestCa

pytestmark = pytest.mark.usefixtures("config_secrets")  # the shipped configs name their secrets

REPO = Path(__file__).resolve().parents[2]


def test_the_listener_accepts_tls_1_2_and_newer_only(tmp_path: Path) -> None:
    cert = TestCa(tmp_path).server("gateway")
    context = server_context(TlsSettings(cert.cert_file, cert.key_file))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_context().minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_context().verify_mode == ssl.CERT_REQUIRED and client_context().check_hostname


def test_keys_are_fetched_over_https_only_from_a_trusted_issuer(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    cert = ca.server("keycloak")

    async def scenario() -> tuple[int, str]:
        app = web.Application()
        base: dict[str, str] = {}

        async def discovery(_request: web.Request) -> web.Response:
            return web.json_response({"issuer": base["issuer"], "jwks_uri": base["issuer"] + "/certs"})

        async def certs(_request: web.Request) -> web.Response:
            return web.json_response(
                {"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI", "kid": "k1"}]})

        app.router.add_get("/realms/wms/.well-known/openid-configuration", discovery)
        app.router.add_get("/realms/wms/certs", certs)
        runner = web.AppRunner(app)
        await runner.setup()
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert.cert_file, cert.key_file)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
        base["issuer"] = f"https://127.0.0.1:{runner.addresses[0][1]}/realms/wms"
        try:
            trusting = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(ca.ca_file)))
            async with trusting:
                keys = await JwksCache(trusting, base["issuer"], 10).fetch()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context())) as default:
                try:
                    await JwksCache(default, base["issuer"], 10).fetch()
                    refused = "fetched"
                except IssuerUnavailable as exc:
                    refused = str(exc)
        finally:
            await runner.cleanup()
        return len(keys.keys), refused

    count, refused = asyncio.run(scenario())
    assert count == 1
    assert refused != "fetched"  # without the organisation's CA the issuer cannot prove itself


def test_production_mode_refuses_plain_http_to_keycloak_across_the_network() -> None:
    with pytest.raises(ConfigError, match="must be https in production mode"):
        load_config(REPO / "config" / "gateway.yaml", {"oidc.issuer": "http://sso.example.com/realms/wms"})
    dev = load_config(REPO / "config" / "gateway.yaml", {"oidc.issuer": "http://sso.example.com/realms/wms",
                                                         "mode": "development"})
    assert dev.mode == "development"
    assert load_config(REPO / "config" / "gateway.yaml").oidc.issuer.startswith("http://127.0.0.1")  # loopback: fine
    assert is_loopback_url("http://localhost:8180") and is_loopback_url("http://127.0.0.2:1")
    assert not is_loopback_url("http://10.0.0.1") and not is_loopback_url("https://sso.example.com")


def test_tls_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="listen.tls.key_file: Field required"):
        load_config(REPO / "config" / "gateway.yaml", {"listen.tls": {"cert_file": "x.pem"}})
