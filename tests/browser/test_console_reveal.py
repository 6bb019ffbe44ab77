"""The console's reveal page in headless Chromium: a supervisor reveals one customer's phone on
one order with a reason, follows the link and reads it in plaintext; someone without
orders:reveal gets the friendly denial."""

from __future__ import annotations

import json

from playwright.sync_api import BrowserContext

from tests.support.browser import login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack


def test_a_supervisor_reveals_a_phone_in_the_console_and_reads_it(stack: Stack, context: BrowserContext) -> None:
    with stack.wms() as wms:
        order = wms.get("/api/orders", params={"warehouse": "GZ", "page_size": 3}).json()["items"][2]
    path = f"/api/orders/{order['order_no']}"
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url,
                          f"/_gateway/ui/reveal?path={path}&field=customer_phone", "supervisor", PASSWORD)
    page.fill("input[name=reason]", "客户投诉,回电核实 / customer complaint")
    screenshot(page, "console-reveal-01-form")
    page.click("form[action='/_gateway/ui/reveal'] button")
    page.wait_for_selector("p.ok")
    assert "已开放查看" in page.inner_text("p.ok") and "customer_phone" in page.inner_text("p.ok")
    screenshot(page, "console-reveal-02-revealed")
    page.click("p.ok a")
    page.wait_for_url(f"{stack.proxy}{path}")
    shown = json.loads(page.inner_text("body"))
    assert shown["customer_phone"] == order["customer_phone"] and shown["customer_name"] == "***"


def test_someone_without_the_reveal_permission_gets_the_friendly_denial(stack: Stack,
                                                                        context: BrowserContext) -> None:
    with stack.wms() as wms:
        order = wms.get("/api/orders", params={"page_size": 1}).json()["items"][0]
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url,
                          f"/_gateway/ui/reveal?path=/api/orders/{order['order_no']}&field=customer_phone",
                          "finance", PASSWORD)
    page.fill("input[name=reason]", "想看看 / curious")
    page.click("form[action='/_gateway/ui/reveal'] button")
    page.wait_for_selector("main")
    assert "orders:reveal" in page.inner_text("main")
    screenshot(page, "console-reveal-03-denied")
