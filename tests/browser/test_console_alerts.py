"""The console's alerts page in headless Chromium: an admin acknowledges and resolves a real
alert (raised by the real Keycloak through the alerting service); others are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext

from tests.support.alerting import login_from, wait_alert
from tests.support.browser import login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack


def test_an_admin_acknowledges_then_resolves_an_alert_in_the_console(
        stack: Stack, context: BrowserContext, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    disabled, _ = throwaway_user("console", enabled=False)
    login_from(stack, disabled, "127.0.0.9", "curl/8.5")
    alert: dict[str, Any] = wait_alert(stack, lambda a: a["subject"] == disabled)
    row_of = f"tr:has(form[action^='/_gateway/ui/alerts/{alert['alert_id']}/'])"

    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/alerts", "admin1", PASSWORD)
    row = page.locator(row_of)
    assert row.count() == 1 and disabled in row.inner_text() and "已停用、已离职或授权已到期的账号" in row.inner_text()
    screenshot(page, "console-alerts-01-open")
    row.locator("form[action*='/acknowledge'] input[name=note]").fill("人事核实中 / HR checking")
    row.locator("form[action*='/acknowledge'] button").click()
    page.wait_for_url(f"{stack.proxy}/_gateway/ui/alerts?done=acknowledge")
    assert "已确认" in page.inner_text("main") and page.locator(row_of).count() == 0  # no longer open

    page.goto(f"{stack.proxy}/_gateway/ui/alerts?status=acknowledged")
    row = page.locator(row_of)
    assert "admin1" in row.inner_text() and "HR checking" in row.inner_text()
    assert row.locator("form[action*='/acknowledge']").count() == 0  # only resolve is left
    screenshot(page, "console-alerts-02-acknowledged")
    row.locator("form[action*='/resolve'] button").click()
    page.wait_for_url(f"{stack.proxy}/_gateway/ui/alerts?done=resolve")
    with stack.client("admin1") as admin:
        doc = admin.get(f"/_gateway/alerts/{alert['alert_id']}").json()
    assert doc["status"] == "resolved" and doc["resolved_by"] == "admin1" and doc["acknowledged_by"] == "admin1"
    page.goto(f"{stack.proxy}/_gateway/ui/alerts?status=resolved&lang=en")
    assert page.locator(row_of).count() == 0 and disabled in page.inner_text("main")
    screenshot(page, "console-alerts-03-resolved-en")


def test_people_without_alerts_view_get_the_friendly_denial(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/alerts", "packer.hf", PASSWORD)
    page.wait_for_selector("main")
    assert "没有权限" in page.inner_text("main") and "alerts:view" in page.inner_text("main")
    screenshot(page, "console-alerts-04-denied")
