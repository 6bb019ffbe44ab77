"""Issue 17, export approval in the console (headless Chromium): the approver's card shows the
held export's size and purpose, and once approved the requester's page says how to download it."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser

from tests.support.browser import login_through_gateway, screenshot
from tests.support.stack import PASSWORD, Stack


def test_a_held_export_shows_its_rows_and_purpose_to_the_approver_and_how_to_download_to_its_requester(
        stack: Stack, browser: Browser) -> None:
    with stack.client("finance") as finance:
        held = finance.get("/api/reports/sales.csv", headers={"X-Export-Reason": quote("年终盘点对账")})
    assert held.status_code == 202, held.text
    approval_id = held.json()["approval_id"]

    approver = browser.new_context(locale="zh-CN")
    try:
        page = approver.new_page()
        login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/approvals", "supervisor",
                              PASSWORD)
        card = page.locator(f"#approval-{approval_id}")
        text = card.inner_text()
        assert "large_export" in text and "finance" in text
        assert "导出 48 行" in text and "年终盘点对账" in text and "/api/reports/sales.csv" in text
        screenshot(page, "console-export-held")
    finally:
        approver.close()
    with stack.client("supervisor", mfa=True) as supervisor:
        assert supervisor.post(f"/_gateway/approvals/{approval_id}/approve").status_code == 200

    requester = browser.new_context(locale="zh-CN")
    try:
        page = requester.new_page()
        login_through_gateway(page, stack.proxy, stack.stack.keycloak_url, "/_gateway/ui/approvals", "finance",
                              PASSWORD)
        note = page.locator(".download", has_text=approval_id)
        assert note.count() == 1 and "X-Export-Approval" in note.inner_text() and "仅限一次" in note.inner_text()
        screenshot(page, "console-export-approved")
        with page.expect_download() as download:  # the browser follows the link and saves the file
            note.locator("a.download-link").click()
        saved = Path(download.value.path()).read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(saved)))
        assert len(rows) == 48 and rows[0]["wmsgate_watermark"].startswith("wmsgate:")
        href = note.locator("a.download-link").get_attribute("href")
        assert href and "wmsgate_export_approval=" in href
        again = page.request.get(stack.proxy + href)
        assert again.status == 409 and again.json()["error"] == "export_approval_unusable"  # once only
    finally:
        requester.close()
