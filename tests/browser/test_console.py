"""The admin console in headless Chromium (issue "Browser SSO and the admin console", cases 2, 3, 4)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.browser import enter_otp, login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack


def _login(page: Page, stack: Stack, path: str, username: str) -> None:
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, path, username, PASSWORD)


def test_cases_2_and_3_supervisor_steps_up_and_approves_in_the_console(stack: Stack, context: BrowserContext) -> None:
    with stack.wms() as wms:
        batch = wms.get("/api/batches", params={"warehouse": "HF", "page_size": 1, "page": 12}).json()["items"][0]
    with stack.client("keeper.hf") as keeper:
        held = keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-CONSOLE"})
    assert held.status_code == 202, held.text
    approval_id = held.json()["approval_id"]

    page = context.new_page()
    _login(page, stack, "/_gateway/ui/approvals", "supervisor")  # password only: acr=pwd
    card = page.locator(f"#approval-{approval_id}")
    assert card.count() == 1 and "LOT-CONSOLE" in card.inner_text() and "keeper.hf" in card.inner_text()
    assert "验证身份" in card.inner_text()  # the inbox says a step-up is needed
    screenshot(page, "console-01-approvals-inbox")

    card.locator("input[name=comment]").first.fill("批次核对无误 / checked")
    card.locator("button[value=approve]").click()  # needs MFA: off to Keycloak for the code only
    try:
        page.wait_for_selector("#otp")
    finally:
        screenshot(page, "console-02-step-up-otp")
    assert page.locator("#password").count() == 0
    screenshot(page, "console-02-step-up-otp")
    enter_otp(page, lambda: stack.tokens.next_code("supervisor"))
    page.wait_for_url(stack.proxy + "/_gateway/ui/approvals")  # back where the supervisor was

    card = page.locator(f"#approval-{approval_id}")
    assert "验证身份" not in card.inner_text()
    card.locator("input[name=comment]").first.fill("批次核对无误 / checked")
    card.locator("button[value=approve]").click()
    page.wait_for_url(f"{stack.proxy}/_gateway/ui/approvals?done=approve")
    assert page.locator(f"#approval-{approval_id}").count() == 0
    screenshot(page, "console-03-approved")
    with stack.wms() as wms:
        assert wms.get(f"/api/batches/{batch['batch_no']}").json()["lot"] == "LOT-CONSOLE"
    steps = stack.audit.sql("SELECT username, reason_code FROM audit_records WHERE approval_id = :a",
                            {"a": approval_id})
    assert {("supervisor", "approved"), ("keeper.hf", "approved_request_executed")} <= \
        {(r["username"], r["reason_code"]) for r in steps}


@pytest.fixture
def keeper_sz_restored(stack: Stack) -> Iterator[None]:
    yield
    stack.restore_person("keeper.sz", ["warehouse_keeper"],
                         {"wms_warehouse": ["SZ"], "wms_channel": ["*"], "wms_order_type": ["*"]})


def test_case_4_admin_offboards_keeper_sz_whose_open_session_is_refused_at_the_next_click(
        stack: Stack, browser: Browser, keeper_sz_restored: None) -> None:
    keeper_ctx, admin_ctx = browser.new_context(locale="zh-CN"), browser.new_context(locale="zh-CN")
    try:
        keeper = keeper_ctx.new_page()
        _login(keeper, stack, "/ui/inventory?warehouse=SZ", "keeper.sz")
        assert "库存" in keeper.content()

        admin = admin_ctx.new_page()
        _login(admin, stack, "/_gateway/ui/people?username=keeper.sz", "admin1")
        assert "warehouse_keeper" in admin.inner_text("main")
        screenshot(admin, "console-04-person")
        admin.fill("input[name=reason]", "离职 / left the company")
        admin.check("input[name=confirm]")
        admin.click("form[action$='/offboard'] button[type=submit]")
        admin.wait_for_selector(".ok")
        assert "keeper.sz" in admin.inner_text(".ok")
        screenshot(admin, "console-05-offboarded")

        refused = keeper.goto(stack.proxy + "/ui/inventory?warehouse=SZ")  # the keeper's next click
        assert refused is not None
        if keeper.url.startswith(stack.stack.keycloak_url):  # Keycloak already ended the session
            assert keeper.locator("#username").count() == 1
        else:
            assert refused.status == 401 and "重新登录" in keeper.inner_text("main")
        assert "SKU" not in keeper.content()
        screenshot(keeper, "console-06-offboarded-keeper-refused")
    finally:
        keeper_ctx.close()
        admin_ctx.close()


def test_audit_search_and_csv_export_in_the_console(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    _login(page, stack, "/_gateway/ui/audit?user=supervisor&module=batches", "admin1")
    rows = page.locator("tbody tr")
    assert rows.count() > 0
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[1] == "supervisor" and cells[4].startswith("batches:"), cells
    screenshot(page, "console-07-audit")
    with page.expect_download() as download:
        page.click("a[href^='/_gateway/audit/export']")
    path = download.value.path()
    raw = open(path, "rb").read()
    assert raw.startswith("\ufeff".encode("utf-8")) and b"# chain head:" in raw


def test_people_without_the_permission_see_a_friendly_denial(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(stack.proxy + "/_gateway/ui/people?username=admin1")
    page.wait_for_selector("#username")
    page.fill("#username", "picker.hf")
    page.fill("#password", PASSWORD)
    page.click("#kc-login")
    page.wait_for_selector("main")
    assert "没有权限" in page.inner_text("main") and "iam:view" in page.inner_text("main")


def test_a_denied_person_follows_the_denial_page_to_a_detailed_why(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/", "picker.hf", PASSWORD)
    denied = page.goto(stack.proxy + "/ui/inventory?warehouse=HF")
    assert denied is not None and denied.status == 403
    page.click("a[href^='/_gateway/ui/why']")  # at once: the denial's record may still wait in the writer
    try:
        page.wait_for_selector("table")
    finally:
        screenshot(page, "console-08-why-denied")
    text = page.inner_text("main")
    assert "/ui/inventory" in text and "inventory:view" in text and "拒绝" in text and "missing_permission" in text
    order = stack.order(warehouse="SZ")  # outside picker.hf's scope: the same answer as the proxy gives,
    page.goto(f"{stack.proxy}/_gateway/ui/why?method=GET&path=/api/orders/{order['order_no']}")
    text = page.inner_text("main")  # and none of the order's attributes
    assert "out_of_scope" in text and "warehouse: SZ" not in text and order["channel"] not in text
    with stack.client("keeper.sz") as other:  # someone else's decision: needs iam:view
        theirs = other.get("/api/reports/finance").headers["X-Decision-Id"]
    refused = page.goto(f"{stack.proxy}/_gateway/ui/why?decision_id={theirs}")
    assert refused is not None and refused.status == 403 and "/api/reports/finance" not in page.content()


def test_who_can_lists_the_people_the_policy_lets_do_something(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url,
                          "/_gateway/ui/who-can?module=inventory&verb=view&warehouse=HF", "admin1", PASSWORD)
    people = set(page.locator("tbody tr td:first-child").all_inner_texts())
    assert {"keeper.hf", "supervisor"} <= people
    assert not people & {"picker.hf", "keeper.sh", "finance"}
    assert "warehouse_keeper" in page.inner_text("main")
    screenshot(page, "console-09-who-can")
    other = page.goto(stack.proxy + "/_gateway/ui/why?user=keeper.sh&method=GET&path=/ui/inventory%3Fwarehouse%3DSH")
    assert other is not None and other.status == 200 and "允许" in page.inner_text("main")


@pytest.fixture
def reviewer_hf_restored(stack: Stack) -> Iterator[None]:
    yield
    stack.restore_person("reviewer.hf", ["reviewer"],
                         {"wms_warehouse": ["HF"], "wms_channel": ["*"], "wms_order_type": ["*"]})


def test_a_role_change_in_the_console_is_held_until_a_second_admin_approves(
        stack: Stack, context: BrowserContext, reviewer_hf_restored: None) -> None:
    page = context.new_page()
    login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/people?username=reviewer.hf",
                          "admin1", PASSWORD)
    page.fill("form[action*='/roles'] input[name=roles]", "reviewer, packer")
    page.click("form[action*='/roles'] button[type=submit]")
    page.wait_for_selector("#otp")  # widening access needs a fresh MFA
    enter_otp(page, lambda: stack.tokens.next_code("admin1"))
    page.wait_for_url(f"{stack.proxy}/_gateway/ui/people?username=reviewer.hf")
    page.fill("form[action*='/roles'] input[name=roles]", "reviewer, packer")
    page.click("form[action*='/roles'] button[type=submit]")
    page.wait_for_selector(".ok")
    text = page.inner_text(".ok")
    assert "审批" in text
    screenshot(page, "console-10-role-change-held")
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("reviewer.hf")
    roles = {r["name"] for r in admin.get_realm_roles_of_user(user_id)}
    assert "packer" not in roles, "nothing may change before the approval"
    approval_id = re.search(r"\b[0-9a-f]{32}\b", text).group(0)  # type: ignore[union-attr]
    with stack.client("admin2", mfa=True) as admin2:
        done = admin2.post(f"/_gateway/approvals/{approval_id}/approve")
    assert done.status_code == 200 and done.json()["status"] == "executed", done.text
    assert {"reviewer", "packer"} <= {r["name"] for r in admin.get_realm_roles_of_user(user_id)}
