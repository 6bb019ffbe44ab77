"""The one audited-request path, in process: the real gateway app (aiohttp test server) with a
fake PDP that validates every input against ``rego/base/schemas/input.json``, a static JWKS and
a small WMS (``tests/support/inprocess.py``). The same behaviours run against Keycloak, OPA
and the demo WMS in ``tests/integration``."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from authorizer.audit.store import audit_records
from authorizer.db import make_engine
from proxy import pipeline
from proxy.app import JWKS, MANAGEMENT_PORT
from proxy.gateway import GATEWAY
from proxy.lifecycle import PREFIX, RequestContext
from proxy.management import auth as auth_api
from proxy.management import console
from proxy.responses import Refusal
from proxy.sso import SESSION_COOKIE, SSO
from tests.support.inprocess import FakePdp, InProcessGateway, allow, start

HEX_ID = "0123456789abcdef0123456789abcdef"


class Boom:
    """A collaborator that fails unexpectedly on any use (a bug, a dependency's odd failure)."""

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"boom: {name}")


async def _records(gw: InProcessGateway) -> list[dict[str, Any]]:
    """The audit records of requests the gateway wrote (after it stopped: the writer flushed);
    not the record of the first start's enforcement modes."""
    engine = make_engine(f"sqlite+aiosqlite:///{gw.config_path.parent / 'audit.db'}")
    try:
        async with engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(select(audit_records))]
    finally:
        await engine.dispose()
    return [r for r in rows if r["reason_code"] != "enforcement_mode_changed"]


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run ``test`` on a fresh loop; tasks the fakes leave behind are cancelled with a bounded
    wait (asyncio.run waits for them without limit, and a CI run once hung there)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(test())
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=10))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _gateway_routes(app: web.Application) -> list[tuple[str, str]]:
    """``(method, concrete path)`` of every endpoint on the ``/_gateway`` sub-application."""
    sub = next(r for r in app.router.resources() if r.canonical == PREFIX)
    found = []
    for resource in sub._app.router.resources():  # type: ignore[attr-defined]
        path = re.sub(r"\{[^}]+\}", HEX_ID, resource.canonical)
        for route in resource:
            if route.method != "HEAD":
                found.append((route.method, path))
    return sorted(set(found))


def _fail_inside(app: web.Application, handler: Callable[..., Any]) -> None:
    """Make ``handler`` fail after it started (for handlers that use no collaborator to break)."""
    sub = next(r for r in app.router.resources() if r.canonical == PREFIX)
    for resource in sub._app.router.resources():  # type: ignore[attr-defined]
        for route in resource:
            if route.handler is handler:
                async def failing(request: web.Request, original: Any = handler) -> web.StreamResponse:
                    await original(request)
                    raise RuntimeError("boom after the handler ran")

                failing.__wmsgate_endpoint__ = handler.__wmsgate_endpoint__  # type: ignore[attr-defined]
                route._handler = failing  # type: ignore[attr-defined]


def test_every_gateway_endpoint_answers_an_unexpected_error_with_the_bilingual_500_and_one_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        gw = await start(tmp_path, sso=True)
        try:
            routes = _gateway_routes(gw.app)
            assert len(routes) >= 25, routes  # the API, the console and the logins are all on the router
            gateway = gw.app[GATEWAY]
            gateway.verifier = Boom()  # type: ignore[assignment]  # every authenticated endpoint
            sso = gw.app[SSO]
            sso.sessions = Boom()  # type: ignore[assignment]  # the logins and logouts
            sso.rp = Boom()  # type: ignore[assignment]
            gateway.not_me = Boom()  # type: ignore[assignment]  # the "not me" link's check
            monkeypatch.setattr(gw.app[JWKS], "fetch", _boom)  # the health probe
            monkeypatch.setattr(auth_api, "logged_out_page", _sync_boom)
            _fail_inside(gw.app, console.home)  # a redirect that uses no collaborator
            answers = {}
            for method, path in routes:
                resp = await gw.client.request(
                    method, path + "?state=x", headers={"Authorization": "Bearer x", "Accept": "application/json"},
                    cookies={SESSION_COOKIE: "x"}, data={"logout_token": "x"} if method == "POST" else None,
                    allow_redirects=False)
                text = await resp.text()
                assert resp.status == 500, (method, path, resp.status, text)
                assert "网关内部错误" in text and "the gateway failed internally" in text, (method, path, text)
                answers[resp.headers["X-Decision-Id"]] = (method, path)
        finally:
            await gw.close()
        records = [r for r in await _records(gw) if r["reason_code"] == "gateway_error"]
        by_id = {r["decision_id"]: r for r in records}
        assert len(records) == len(answers) == len(routes)
        for decision_id, (method, path) in answers.items():
            record = by_id[decision_id]
            assert (record["method"], record["path"], record["http_status"]) == (method, path, 500)
            assert record["decision"] == "deny"
        assert gw.pdp.invalid == []

    run(scenario)


async def _boom(*_: Any, **__: Any) -> NoReturn:
    raise RuntimeError("boom")


def _sync_boom(*_: Any, **__: Any) -> NoReturn:
    raise RuntimeError("boom")


def test_an_unknown_gateway_path_and_a_wrong_method_are_bilingual_refusals_and_audited(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw = await start(tmp_path)
        try:
            missing = await gw.client.get("/_gateway/nothing-here", headers=gw.bearer())
            assert missing.status == 404
            doc = await missing.json()
            assert doc["error"] == "gateway_endpoint_not_found" and doc["reason_zh"] and doc["reason_en"]
            wrong = await gw.client.delete("/_gateway/approvals", headers=gw.bearer())
            assert wrong.status == 405 and (await wrong.json())["error"] == "method_not_allowed"
            assert "GET" in wrong.headers["Allow"]
        finally:
            await gw.close()
        codes = sorted(r["reason_code"] for r in await _records(gw))
        assert codes == ["gateway_endpoint_not_found", "method_not_allowed"]

    run(scenario)


def test_the_pep_path_asks_the_pdp_with_a_schema_valid_input_and_records_the_decision(tmp_path: Path) -> None:
    async def scenario() -> None:
        pdp = FakePdp()
        gw = await start(tmp_path, pdp)
        try:
            listed = await gw.client.get("/api/orders", headers=gw.bearer(username="clerk.hf"))
            assert listed.status == 200 and (await listed.json())["rows"][0]["order_no"] == "SO1"
            one = await gw.client.get("/api/orders/SO1?warehouse=HF", headers=gw.bearer(username="clerk.hf"))
            assert one.status == 200
            approvals = await gw.client.get("/_gateway/approvals", headers=gw.bearer(username="clerk.hf"))
            assert approvals.status == 200
        finally:
            await gw.close()
        assert pdp.invalid == [] and len(pdp.inputs) >= 2
        assert {i["action"]["module"] for i in pdp.inputs} == {"orders"}
        records = await _records(gw)
        pep = [r for r in records if r["module"] == "orders"]
        assert [(r["decision"], r["http_status"], r["username"]) for r in pep] == [("allow", 200, "clerk.hf")] * 2
        assert [r["resource_id"] for r in pep] == ["", "SO1"]
        assert any(r["path"] == "/_gateway/approvals" and r["decision"] == "allow" for r in records)

    run(scenario)


def test_a_policy_deny_is_refused_and_recorded_once_with_its_reason(tmp_path: Path) -> None:
    def deny(_: dict[str, Any]) -> dict[str, Any]:
        return {"allow": False, "status": 403, "policy_revision": "test",
                "reasons": [{"code": "out_of_scope", "zh-CN": "超出数据范围", "en": "outside your data scope"}]}

    async def scenario() -> None:
        gw = await start(tmp_path, FakePdp(decide=deny))
        try:
            refused = await gw.client.get("/api/orders/SO1?warehouse=SH", headers=gw.bearer())
            assert refused.status == 403
            doc = await refused.json()
            assert (doc["error"], doc["reason_zh"], doc["reason_en"]) == (
                "out_of_scope", "超出数据范围", "outside your data scope")
        finally:
            await gw.close()
        assert gw.pdp.invalid == []
        assert gw.pdp.inputs[0]["resource"]["attributes"]["warehouse"] == ["SH"]
        [record] = await _records(gw)
        assert (record["decision"], record["reason_code"], record["warehouse"]) == ("deny", "out_of_scope", "SH")

    run(scenario)


def test_no_request_is_left_for_the_garbage_collector(tmp_path: Path) -> None:
    """Allowed, denied, unauthenticated and gateway-endpoint requests leave no reference cycle
    behind: their objects are freed as the answer goes out, not at the collector's next pass
    (cycles made every request cost the collector's time and raise the peak of memory)."""
    def in_hf_only(policy_input: dict[str, Any]) -> dict[str, Any]:
        if policy_input["resource"]["attributes"].get("warehouse") == ["SH"]:
            return {"allow": False, "status": 403, "policy_revision": "test",
                    "reasons": [{"code": "out_of_scope", "zh-CN": "超出数据范围", "en": "outside your data scope"}]}
        return allow(policy_input)

    async def scenario() -> None:
        gw = await start(tmp_path, FakePdp(decide=in_hf_only))
        try:
            await gw.client.get("/api/orders/SO1?warehouse=HF", headers=gw.bearer())  # warm up: imports, caches
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept, to be looked at
            try:
                answers = [await gw.client.get("/api/orders/SO1?warehouse=HF", headers=gw.bearer()),
                           await gw.client.get("/api/orders/SO1?warehouse=SH", headers=gw.bearer()),
                           await gw.client.get("/api/orders/SO1?warehouse=HF"),
                           await gw.client.get("/_gateway/approvals", headers=gw.bearer())]
                for answer in answers:
                    await answer.read()
                # aiohttp's connection handler keeps the last request of a keep-alive connection
                # until the next one arrives: one more request, not looked at, releases the fourth
                await (await gw.client.get("/_gateway/approvals", headers=gw.bearer())).read()
                gc.collect()
                left = [type(o).__name__ for o in gc.garbage if isinstance(o, web.Request | RequestContext | Refusal)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
        finally:
            await gw.close()
        assert [a.status for a in answers] == [200, 403, 401, 200]
        assert left == []

    run(scenario)


def test_a_pdp_input_that_breaks_the_schema_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake PDP's validation is real: an input outside the schema is refused (503, never forwarded)."""
    build = pipeline.build_policy_input

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        doc = build(*args, **kwargs)
        doc["action"]["verb"] = 42
        return doc

    monkeypatch.setattr(pipeline, "build_policy_input", broken)

    async def scenario() -> None:
        gw = await start(tmp_path)
        try:
            answer = await gw.client.get("/api/orders", headers=gw.bearer())
            assert answer.status == 503 and (await answer.json())["error"] == "pdp_unavailable"
        finally:
            await gw.close()
        assert len(gw.pdp.invalid) == 1 and "verb" in gw.pdp.invalid[0]
        [record] = await _records(gw)
        assert (record["decision"], record["http_status"]) == ("deny", 503)

    run(scenario)


def test_metrics_are_on_the_management_listener_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw = await start(tmp_path)
        try:
            assert (await gw.client.get("/api/orders", headers=gw.bearer())).status == 200
            public = await gw.client.get("/metrics", headers=gw.bearer())
            assert public.status == 403 and (await public.json())["error"] == "route_not_mapped"
            assert "wmsgate_requests_total" not in await public.text()
            port = gw.app[MANAGEMENT_PORT]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
                    text = await resp.text()
        finally:
            await gw.close()
        assert 'wmsgate_requests_total{decision="allow",module="orders",status="200",verb="view"} 1.0' in text
        assert 'wmsgate_requests_total{decision="deny",module="-",status="403",verb="-"} 1.0' in text
        assert "wmsgate_decision_seconds_count 1.0" in text and "wmsgate_upstream_seconds_count 1.0" in text
        assert 'wmsgate_policy_bundle_info{revision="test"} 1.0' in text
        for gauge in ("wmsgate_audit_queue_records", "wmsgate_audit_spool_bytes",
                      "wmsgate_revocation_refresh_age_seconds"):
            assert re.search(rf"^{gauge} [0-9.e+-]+$", text, re.M), gauge

    run(scenario)



def test_a_login_code_in_the_query_is_never_stored_even_on_a_wrong_method_or_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw = await start(tmp_path, sso=True)
        try:
            wrong_method = await gw.client.post("/_gateway/auth/callback?code=SECRETCODE&state=SECRETSTATE")
            wrong_path = await gw.client.get("/_gateway/auth/callback/?code=SECRETCODE&state=SECRETSTATE")
            assert (wrong_method.status, wrong_path.status) == (405, 404)
        finally:
            await gw.close()
        records = await _records(gw)
        assert len(records) == 2 and all(r["query"] == "" for r in records)
        assert not any("SECRET" in str(value) for r in records for value in r.values())

    run(scenario)


def test_the_health_probe_answers_while_the_audit_trail_refuses_records(tmp_path: Path) -> None:
    from authorizer.audit import AuditBackpressure

    async def scenario() -> None:
        gw = await start(tmp_path)
        try:
            writer = gw.app[GATEWAY].audit

            def full() -> None:
                raise AuditBackpressure("full")

            writer.check_capacity = full  # type: ignore[method-assign]
            refused = await gw.client.get("/api/orders", headers=gw.bearer())
            refusal_doc = await refused.json()
            health = await gw.client.get("/_gateway/health")
            doc = await health.json()
        finally:
            await gw.close()
        assert refused.status == 503 and refusal_doc["error"] == "audit_unavailable"
        assert health.status == 503 and doc["checks"]["audit"]["ok"] is False and "audit" in doc["failing"]

    run(scenario)


class _RefreshingRp:
    """The relying party's refresh, answering with a new access token from the fake issuer."""

    def __init__(self, gw: InProcessGateway, settings: Any) -> None:
        self._gw = gw
        self.settings = settings
        self.refreshed = 0

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.refreshed += 1
        return {"access_token": self._gw.issuer.token(username="admin1", roles=("sysadmin",)),
                "refresh_token": f"{refresh_token}-next", "expires_in": 300, "refresh_expires_in": 1800}


@pytest.mark.parametrize("path", ["/_gateway/ui/approvals", "/api/orders"], ids=["console", "pep"])
def test_a_rotated_session_id_reaches_the_browser_on_gateway_pages_and_wms_pages_alike(tmp_path: Path,
                                                                                     path: str) -> None:
    """A session whose tokens are refreshed gets a new id, and the answer carries it (Set-Cookie):
    on the console's pages (the /_gateway sub-application) as on the WMS's (the cookie hook runs
    for both). The old id then no longer opens the session."""
    from authorizer.authn.sessions import Tokens

    async def scenario() -> None:
        gw = await start(tmp_path, sso=True)
        try:
            sso = gw.app[SSO]
            rp = _RefreshingRp(gw, sso.rp.settings)
            sso.rp = rp  # type: ignore[assignment]
            almost_expired = Tokens.from_response(
                {"access_token": gw.issuer.token(username="admin1", roles=("sysadmin",)), "refresh_token": "r1",
                 "expires_in": 5, "refresh_expires_in": 1800})
            _, cookie = await sso.sessions.create("id-admin1", "admin1", "sid-1", almost_expired)
            gw.client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
            resp = await gw.client.get(path, headers={"Accept": "text/html"}, allow_redirects=False)
            set_cookie = resp.headers.getall("Set-Cookie", [])
            rotated = [c for c in set_cookie if c.startswith(f"{SESSION_COOKIE}=")]
            assert resp.status < 400 and rp.refreshed == 1, (resp.status, await resp.text())
            assert rotated and f"{SESSION_COOKIE}={cookie};" not in rotated[0] and "HttpOnly" in rotated[0]
            new_cookie = rotated[0].split(";", 1)[0].split("=", 1)[1]
            assert await sso.sessions.get(new_cookie) is not None
        finally:
            await gw.close()

    run(scenario)


def test_exports_are_counted_whole_held_above_the_approval_threshold_and_never_shadow_forwarded(
        tmp_path: Path) -> None:
    limits = {"approve_over_rows": 2}

    def export(_: dict[str, Any]) -> dict[str, Any]:
        control = {"reason_over_rows": 100, "approve_over_rows": limits["approve_over_rows"],
                   "refuse_over_rows": 1000, "unmasked_pii": [],
                   "approval": {"operation": "large_export", "approvals": 1, "expires_seconds": 3600}}
        return {"allow": True, "reasons": [{"code": "allowed", "zh-CN": "允许", "en": "allowed"}],
                "obligations": {"export": control}, "policy_revision": "test"}

    async def scenario() -> None:
        gw = await start(tmp_path, FakePdp(decide=export))
        try:
            uncountable = await gw.client.get("/api/report.json", headers=gw.bearer())
            assert uncountable.status == 502  # a JSON export that is not a list of rows: refused, not relayed
            assert (await uncountable.json())["error"] == "response_not_enforceable"
            held = await gw.client.get("/api/export.json", headers={**gw.bearer(), "Range": "items=0-0"})
            assert held.status == 202 and (await held.json())["export"]["rows"] == 3
            shadowed = await gw.client.get("/api/export.json?other=1", headers=gw.bearer())
            assert shadowed.status == 400  # report mode forwards refused requests, but never an export
            assert "X-Gateway-Shadow" not in shadowed.headers
            limits["approve_over_rows"] = 10
            whole = await gw.client.get("/api/export.json", headers={**gw.bearer(), "Range": "items=0-0"})
            assert whole.status == 200 and [r["range"] for r in await whole.json()] == [None] * 3  # no slice
        finally:
            await gw.close()
        assert gw.pdp.invalid == []

    run(scenario)


def test_a_held_list_export_names_the_scope_its_rows_span_so_approvers_must_cover_all_of_it(tmp_path: Path) -> None:
    def export(policy_input: dict[str, Any]) -> dict[str, Any]:
        control = {"reason_over_rows": 100, "approve_over_rows": 1, "refuse_over_rows": 1000, "unmasked_pii": [],
                   "approval": {"operation": "large_export", "approvals": 1, "expires_seconds": 3600}}
        return {"allow": True, "reasons": [{"code": "allowed", "zh-CN": "允许", "en": "allowed"}],
                "obligations": {"export": control, "row_filter": {"warehouse": ["SH", "HF"]}},
                "policy_revision": "test"}

    async def scenario() -> None:
        gw = await start(tmp_path, FakePdp(decide=export))
        try:
            held = await gw.client.get("/api/orders.json", headers=gw.bearer())
            assert held.status == 202
            approval_id = (await held.json())["approval_id"]
            doc = await (await gw.client.get(f"/_gateway/approvals/{approval_id}", headers=gw.bearer())).json()
        finally:
            await gw.close()
        assert doc["resource"]["kind"] == "aggregate" and doc["resource"]["attributes"] == {"warehouse": ["HF", "SH"]}
        assert doc["export"]["rows"] == 3

    run(scenario)
