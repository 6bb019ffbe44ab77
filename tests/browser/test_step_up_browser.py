"""Step-up in a real browser (headless Chromium): a person logged in with a password is asked only
for the OTP code when a client requests MFA, and the token then carries acr=mfa."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from playwright.sync_api import Browser, Page, Route

from tests.support.browser import enter_otp
from tests.support.form_login import REDIRECT_URI
from tests.support.stack import PASSWORD, Stack
from wmsgate.pkce import authorization_request


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class LoopbackClient:
    """The public client wms-cli in a browser: it sends the browser to Keycloak and catches the
    loopback redirect (RFC 8252) inside the page, then exchanges the code (PKCE, RFC 7636)."""

    def __init__(self, page: Page, issuer: str) -> None:
        self.page, self.issuer = page, issuer
        self.redirects: list[str] = []
        page.route(f"{REDIRECT_URI}**", self._catch)

    def _catch(self, route: Route) -> None:
        self.redirects.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p id=done>signed in</p>")

    def start(self, acr_values: str | None = None) -> tuple[str, str]:
        auth = authorization_request("wms-cli", REDIRECT_URI, acr_values)
        self.page.goto(f"{self.issuer}/protocol/openid-connect/auth?{urlencode(auth.params)}")
        return auth.verifier, auth.state

    def finish(self, verifier: str, state: str) -> dict[str, Any]:
        self.page.wait_for_selector("#done")
        query = parse_qs(urlsplit(self.redirects[-1]).query)
        assert query["state"] == [state]
        resp = httpx.post(f"{self.issuer}/protocol/openid-connect/token", data={
            "grant_type": "authorization_code", "client_id": "wms-cli", "code": query["code"][0],
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
        assert resp.status_code == 200, resp.text
        return resp.json()


def test_case_8_logged_in_user_is_stepped_up_with_otp_in_the_browser(stack: Stack, browser: Browser) -> None:
    """Issue "High-risk operations" case 8, in headless Chromium."""
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    client = LoopbackClient(page, stack.stack.issuer)

    verifier, state = client.start()
    page.fill("#username", "supervisor")
    page.fill("#password", PASSWORD)
    page.click("#kc-login")
    first = client.finish(verifier, state)
    assert _claims(first["access_token"])["acr"] == "pwd"

    verifier, state = client.start(acr_values="mfa")
    try:
        page.wait_for_selector("#otp", timeout=10000)
    except Exception:
        page.screenshot(path=str(stack.stack.logs / "step-up-failure.png"))
        (stack.stack.logs / "step-up-failure.html").write_text(page.content(), encoding="utf-8")
        raise
    assert page.locator("#password").count() == 0, "an already logged-in person must be asked only for the OTP"
    enter_otp(page, lambda: stack.tokens.next_code("supervisor"))
    stepped = client.finish(verifier, state)
    claims = _claims(stepped["access_token"])
    assert claims["acr"] == "mfa"
    assert claims["auth_time"] >= _claims(first["access_token"])["auth_time"]
    assert "wms-gateway" in claims["aud"]

    order = stack.order(warehouse="SZ", status="cancelled")
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {stepped['access_token']}"}) as c:
        held = c.delete(f"/api/orders/{order['order_no']}")
    assert held.status_code == 202, held.text
    with stack.client("supervisor", mfa=True) as supervisor:
        assert supervisor.post(f"{held.headers['Location']}/reject").status_code == 403  # own request
    with stack.client("keeper.sz", mfa=True) as keeper:
        assert keeper.post(f"{held.headers['Location']}/reject").json()["status"] == "rejected"
    context.close()
