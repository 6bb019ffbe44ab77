"""TLS (issue "Scale out and deploy"): the proxy terminates TLS 1.2+ with a certificate from
its config, and verifies the WMS's certificate when the WMS speaks HTTPS. The CAs are made
inside the test; the HTTPS WMS is a TLS front (on 127.0.0.1) for the demo WMS."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from tests.support.stack import Stack, assert_refused
from tests.support.tlsca import ServerCert, TestCa

TLS_PROXY_OFFSET, UNTRUSTED_PROXY_OFFSET = 7, 8
WMS_FRONT_OFFSET, ROGUE_FRONT_OFFSET = 20, 21


def _trusting(ca: TestCa) -> ssl.SSLContext:
    """A client context trusting the test's CA."""
    return ssl.create_default_context(cafile=str(ca.ca_file))


class TlsFront:
    """An HTTPS reverse proxy on 127.0.0.1 in front of ``target`` (runs in its own thread)."""

    def __init__(self, port: int, cert: ServerCert, target: str) -> None:
        self.port, self.cert, self.target = port, cert, target
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._run, daemon=True).start()
        assert self._ready.wait(10), "TLS front did not start"

    async def _forward(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with session.request(request.method, self.target + request.path_qs, headers=headers,
                                       data=await request.read()) as resp:
                body = await resp.read()
                keep = {k: v for k, v in resp.headers.items()
                        if k.lower() in ("content-type", "x-wms-total", "location", "cache-control")}
                return web.Response(status=resp.status, body=body, headers=keep)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert.cert_file, self.cert.key_file)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def tls_setup(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestCa, str, str]]:
    """(our CA, the TLS proxy's URL, the URL of a proxy whose WMS shows a certificate of another CA)."""
    folder = tmp_path_factory.mktemp("tls")
    ca, rogue_ca = TestCa(folder / "ca"), TestCa(folder / "rogue", "rogue CA")
    ports = stack.stack.settings.ports
    wms_front = TlsFront(ports.wms + WMS_FRONT_OFFSET, ca.server("wms"), stack.stack.wms_url)
    rogue_front = TlsFront(ports.wms + ROGUE_FRONT_OFFSET, rogue_ca.server("rogue-wms"), stack.stack.wms_url)
    proxy_cert = ca.server("gateway")
    common = {"listen.tls": {"cert_file": str(proxy_cert.cert_file), "key_file": str(proxy_cert.key_file)},
              "trust.ca_file": str(ca.ca_file)}
    trusted = stack.stack.write_gateway_config(folder / "gateway-tls.yaml", {
        **common, "upstream.url": f"https://127.0.0.1:{ports.wms + WMS_FRONT_OFFSET}"})
    untrusted = stack.stack.write_gateway_config(folder / "gateway-rogue.yaml", {
        **common, "upstream.url": f"https://127.0.0.1:{ports.wms + ROGUE_FRONT_OFFSET}"})
    try:
        url = stack.stack.start_extra_proxy("proxy-tls", ports.proxy + TLS_PROXY_OFFSET, ["--worker-index", "7"],
                                            config=trusted, scheme="https", verify=ca.ca_file)
        yield ca, url, str(untrusted)
    finally:
        stack.stack.stop_service("proxy-tls")
        stack.stack.stop_service("proxy-rogue")
        wms_front.close()
        rogue_front.close()


def test_the_proxy_serves_tls_and_talks_https_to_the_wms(stack: Stack, tls_setup: tuple[TestCa, str, str]) -> None:
    ca, url, _ = tls_setup
    health = httpx.get(f"{url}/_gateway/health", verify=_trusting(ca), timeout=10)
    assert health.status_code == 200 and health.json()["checks"]["wms"]["ok"]  # the WMS over verified HTTPS
    token = stack.tokens.get("picker.hf")
    with httpx.Client(base_url=url, verify=_trusting(ca), timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as picker:
        tasks = picker.get("/api/picking/tasks", params={"page_size": 2})
        assert tasks.status_code == 200 and tasks.json()["items"]
        assert_refused(picker.get("/api/reports/finance"), 403, "missing_permission")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_old_tls_versions_and_plain_http_are_refused(tls_setup: tuple[TestCa, str, str]) -> None:
    ca, url, _ = tls_setup
    old = ssl.create_default_context(cafile=str(ca.ca_file))
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_gateway/health", verify=old, timeout=10)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/_gateway/health", timeout=10)
    with pytest.raises(httpx.ConnectError):  # a client that does not trust our CA refuses the proxy
        httpx.get(f"{url}/_gateway/health", timeout=10)


def test_a_wms_certificate_from_an_untrusted_ca_is_refused(stack: Stack, tls_setup: tuple[TestCa, str, str]) -> None:
    ca, _, untrusted_config = tls_setup
    port = stack.stack.settings.ports.proxy + UNTRUSTED_PROXY_OFFSET
    url = stack.stack.start_extra_proxy("proxy-rogue", port, ["--worker-index", "8"], config=Path(untrusted_config),
                                        scheme="https", verify=ca.ca_file, require_healthy=False)
    health = httpx.get(f"{url}/_gateway/health", verify=_trusting(ca), timeout=10)
    assert health.status_code == 503 and "wms" in health.json()["failing"]
    with httpx.Client(base_url=url, verify=_trusting(ca), timeout=30,
                      headers={"Authorization": f"Bearer {stack.tokens.get('picker.hf')}"}) as picker:
        refused = picker.get("/api/picking/tasks", params={"page_size": 1})
    assert refused.status_code == 502, refused.text  # nothing was sent to a WMS that could not prove itself
