"""The console's access review pages in headless Chromium against the real stack: an admin starts
a campaign, sees who holds what and when it was last used, revokes an unused role, closes the
campaign and downloads the signed result; a picker gets the friendly denial."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import BrowserContext

from tests.support.browser import login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack


def test_an_admin_runs_an_access_review_in_the_console(stack: Stack, context: BrowserContext,
                                                       throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = throwaway_user("console-review")
    admin = stack.keycloak_admin()
    admin.assign_realm_roles(user_id, [admin.get_realm_role("picker"), admin.get_realm_role("reviewer")])
    admin.update_user(user_id, {"attributes": {"wms_warehouse": ["SH"], "wms_channel": ["*"],
                                               "wms_order_type": ["*"]}})
    with stack.client(username) as staff:  # a list narrowed to SH: the warehouse counts as used
        listed = staff.get("/api/picking/tasks", params={"page_size": 1})
        assert listed.status_code == 200
        stack.audit_record(listed.headers["X-Decision-Id"])  # usage is read from the trail: wait for the record

    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/reviews", "admin1", PASSWORD)
    assert "访问复核" in page.inner_text("h1")
    page.fill("input[name=title]", "浏览器复核 / console review")
    page.select_option("select[name=target]", "warehouse")
    page.fill("input[name=value]", "SH")
    page.fill("input[name=days]", "1")
    page.select_option("select[name=unreviewed]", "keep")  # demo people in SH stay as they are
    screenshot(page, "console-reviews-01-start")
    page.click("form[action='/_gateway/ui/reviews'] button[type=submit]")
    page.wait_for_url("**/_gateway/ui/reviews/*?done=started")
    review_url = page.url.split("?")[0]
    row = page.locator("tr", has_text=username)
    assert row.count() == 1 and "warehouse=SH" in row.inner_text() and "窗口内未使用" not in row.inner_text()
    screenshot(page, "console-reviews-02-items")
    row.locator("form[action$='/revoke'] button").click()
    page.wait_for_url("**?done=decided")
    row = page.locator("tr", has_text=username)
    assert "revoke" in row.locator(".decision").inner_text() and "admin1" in row.inner_text()

    page.check("form[action$='/close'] input[name=confirm]")
    page.click("form[action$='/close'] button[type=submit]")
    page.wait_for_url("**?done=closed")
    assert page.inner_text("#review-status") == "closed"
    row = page.locator("tr", has_text=username)
    assert row.locator("td").last.inner_text() == "revoked"
    screenshot(page, "console-reviews-03-closed")
    assert admin.get_user(user_id)["attributes"].get("wms_warehouse", []) == []
    with page.expect_download() as download:
        page.click("#review-result")
    doc = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert doc["result"]["review_id"] == review_url.rsplit("/", 1)[1] and doc["signature"]
    assert doc["result"]["revoked"] == 1


def test_people_without_iam_view_get_the_friendly_denial(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/reviews", "picker.hf", PASSWORD)
    page.wait_for_selector("main")
    assert "没有权限" in page.inner_text("main") and "iam:view" in page.inner_text("main")
    screenshot(page, "console-reviews-04-denied")
