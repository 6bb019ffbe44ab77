"""Ending a temporary grant early from the console's person page (headless Chromium)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext

from tests.support.browser import login_through_gateway, screenshot
from tests.support.grants import grant_now
from tests.support.stack import PASSWORD, Stack


def test_an_admin_revokes_a_temporary_grant_from_the_person_page(
        stack: Stack, context: BrowserContext, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = throwaway_user("console.grant")
    grant_id = grant_now(stack, username, "picker", "HF")
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, f"/_gateway/ui/people?username={username}",
                          "admin1", PASSWORD)
    form = page.locator(f"form[action$='/grants/{grant_id}/revoke']")
    assert form.count() == 1
    screenshot(page, "console-grants-01-person-with-grant")
    form.locator("input[name=reason]").fill("提前结束 / ended early")
    form.locator("button").click()  # without the confirmation tick the browser does not submit
    assert page.url.endswith(f"username={username}")
    form.locator("input[name=confirm]").check()
    form.locator("button").click()
    page.wait_for_selector("p.ok")
    assert "已收回" in page.inner_text("main") and "role removed: picker" in page.inner_text("main")
    screenshot(page, "console-grants-02-revoked")
    page.goto(f"{stack.proxy}/_gateway/ui/people?username={username}")
    assert page.locator(f"form[action$='/grants/{grant_id}/revoke']").count() == 0
    assert "picker" not in {r["name"] for r in stack.keycloak_admin().get_realm_roles_of_user(user_id)}
