"""Browser SSO through the proxy in headless Chromium (issue "Browser SSO and the admin console", cases 1, 5, 6).

Staff open the WMS's pages through the gateway, are sent to Keycloak's login page,
come back logged in (a server-side session behind an HttpOnly, SameSite=Lax cookie),
and get friendly pages instead of JSON when something is refused.
"""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import BrowserContext, Page

from tests.support.browser import login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack

SESSION_COOKIE = "wmsgate_session"


def _login_at_keycloak(page: Page, stack: Stack, username: str) -> None:
    page.wait_for_selector("#username")
    assert page.url.startswith(stack.stack.keycloak_url), page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#kc-login")


def _session_cookie(context: BrowserContext) -> dict[str, object] | None:
    return next((c for c in context.cookies() if c["name"] == SESSION_COOKIE), None)


def test_case_1_picker_logs_in_once_and_works_in_the_wms_pages(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(stack.proxy + "/")
    screenshot(page, "sso-01-keycloak-login")
    _login_at_keycloak(page, stack, "picker.hf")
    page.wait_for_url(stack.proxy + "/")
    assert "仓库管理系统" in page.content()
    screenshot(page, "sso-02-wms-home")
    cookie = _session_cookie(context)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    home = page.goto(stack.proxy + "/")  # no new login: the session carries on
    assert home is not None and home.status == 200 and page.url == stack.proxy + "/"
    record = stack.audit_record(home.headers["x-decision-id"])
    assert (record["username"], record["module"], record["decision"]) == ("picker.hf", "portal", "allow")

    orders = page.goto(stack.proxy + "/ui/orders")  # the old list page: narrowed to HF, contact data masked
    assert orders is not None and orders.status == 200
    rows = page.locator("tbody tr")
    assert rows.count() > 0
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[1] == "HF" and cells[5] == "***", cells  # warehouse, customer_name
    screenshot(page, "sso-02b-orders-narrowed-and-masked")

    denied = page.goto(stack.proxy + "/ui/inventory")
    assert denied is not None and denied.status == 403
    text = page.inner_text("main")
    assert "没有权限" in text and "Not allowed" in text and "主管或系统管理员" in text
    assert denied.headers["x-decision-id"] in text
    assert denied.headers["content-type"].startswith("text/html")
    screenshot(page, "sso-03-friendly-denial")


def test_case_6_open_redirect_attempts_after_login_land_on_the_home_page(stack: Stack,
                                                                         context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(stack.proxy + "/_gateway/auth/login?return_to=" + quote("/ui/inventory?warehouse=HF"))
    _login_at_keycloak(page, stack, "keeper.hf")
    page.wait_for_url(stack.proxy + "/ui/inventory?warehouse=HF")  # a same-origin path is honoured
    for trick in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/%2F%2Fevil.example",
                  "/%09/evil.example", "%2F%2Fevil.example", "http:evil.example", "/%5Cevil.example"):
        page.goto(stack.proxy + "/_gateway/auth/login?return_to=" + quote(trick, safe=""))
        page.wait_for_url(f"{stack.proxy}/**")  # Keycloak's session logs the browser straight back in
        assert page.url == stack.proxy + "/", f"{trick!r} led to {page.url}"
    screenshot(page, "sso-06-open-redirect-home")


def test_case_5_logout_at_keycloak_ends_the_proxy_session(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/", "reviewer.hf", PASSWORD)
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("reviewer.hf")
    admin.user_logout(user_id)  # an admin ends the person's Keycloak sessions: back-channel logout
    page.goto(stack.proxy + "/")
    page.wait_for_selector("#username")  # the proxy session is gone: back to Keycloak's login
    assert page.url.startswith(stack.stack.keycloak_url)
    screenshot(page, "sso-05-after-keycloak-logout")
    records = stack.audit.sql("SELECT reason_code FROM audit_records WHERE module = 'auth' AND user_id = :u "
                              "AND reason_code = 'backchannel_logout'", {"u": user_id})
    assert records, "no back-channel logout was recorded"


def test_logging_out_at_the_gateway_ends_both_sessions(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/", "packer.hf", PASSWORD)
    page.goto(stack.proxy + "/_gateway/auth/logout")
    screenshot(page, "sso-07-logout-confirm")
    page.click("button[type=submit]")
    try:
        page.wait_for_url(f"{stack.proxy}/_gateway/auth/logged-out")
    finally:
        screenshot(page, "sso-08-logged-out")
    assert "您已退出登录" in page.content()
    assert _session_cookie(context) is None
    page.goto(stack.proxy + "/")
    page.wait_for_selector("#username")  # Keycloak's session ended too: the password is asked again


def test_a_cross_site_form_post_with_the_session_cookie_is_refused(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/", "picker.hf", PASSWORD)
    cookie = _session_cookie(context)
    assert cookie is not None
    order = stack.order(warehouse="HF", status="pending_pick")
    import httpx

    with httpx.Client(base_url=stack.proxy, cookies={SESSION_COOKIE: str(cookie["value"])}) as forged:
        resp = forged.post(f"/api/picking/{order['order_no']}/confirm",
                           headers={"Origin": "https://evil.example", "Accept": "application/json"})
        assert resp.status_code == 403 and resp.json()["error"] == "csrf_check_failed"
        same = forged.post(f"/api/picking/{order['order_no']}/confirm",
                           headers={"Origin": stack.proxy, "Accept": "application/json"})
        assert same.status_code == 200, same.text


def test_tokens_are_refreshed_silently_and_the_session_id_rotates(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/", "ops.taobao", PASSWORD)
    before = _session_cookie(context)
    assert before is not None
    stack.audit.sql("UPDATE browser_sessions SET access_expires_ms = 0 WHERE username = 'ops.taobao'")
    page.goto(stack.proxy + "/ui/orders")  # the access token counts as expired: refreshed, no login page
    assert page.url == stack.proxy + "/ui/orders"
    after = _session_cookie(context)
    assert after is not None and after["value"] != before["value"]
    channels = set(page.locator("tbody tr td:nth-child(3)").all_inner_texts())
    assert channels == {"taobao"}  # a channel operator's rows, by the safety net (the page has no channel filter)
