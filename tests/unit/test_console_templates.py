"""The console's Jinja2 templates: every page renders with realistic values, escapes what
people and the WMS typed, and shows both languages (the pages themselves are driven in
headless Chromium in tests/browser against the real stack)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from authorizer.authz.pdp import Reason
from proxy.browser_pages import Text
from proxy.console_pages import console_page, setup_templates

EVIL = '<script>alert("x")</script>'


def _request(query: str = "") -> web.Request:
    app = web.Application()
    setup_templates(app)
    return make_mocked_request("GET", f"/_gateway/ui/x{query}", app=app)


def _approval(status: str = "pending") -> dict[str, object]:
    return {"approval_id": "a" * 32, "operation": "order_delete", "requester": {"username": EVIL},
            "resource_id": "SO1", "request": {"method": "DELETE", "path": "/api/orders/SO1", "query": "x=1",
                                              "body": '{"reason": "dup"}'},
            "created_at": "2026-12-02T10:00:00Z", "expires_at": "2026-12-03T10:00:00Z", "status": status,
            "decisions": [{"by": "admin1", "decision": "approve"}], "result": {"status": 200},
            "step_up_href": "/_gateway/auth/login?return_to=%2F&acr=mfa"}


PAGES = {
    "approvals": {"done": "approve", "to_decide": [_approval()],
                  "requested": [_approval("executed"), {k: v for k, v in _approval().items() if k != "result"}],
                  "csrf": "tok"},
    "people": {"username": "picker.hf", "csrf": "tok", "person": {
        "username": "picker.hf", "name": EVIL, "enabled": True, "roles": ["picker"],
        "scope": {"warehouse": ["HF"], "channel": ["*"], "order_type": []},
        "grants": [{"grant_id": "g1", "role": "reviewer", "scope": {"warehouse": ["HF"]},
                    "valid_from_s": 1764400000, "valid_until_s": 1764486400}]}},
    "outcome": {"done": Text("已完成。", "Done."), "steps": [EVIL], "username": "picker.hf"},
    "audit": {"fields": (("user", Text("人员", "Person")),), "params": {"user": EVIL}, "export": "/x?a=1&b=2",
              "more": "offset=100", "rows": [{"ts_ms": 1764400000000, "username": "u", "decision": "deny",
                                              "http_status": 403, "module": "orders", "verb": "view",
                                              "resource_id": EVIL, "warehouse": "HF", "reason_code": "out_of_scope",
                                              "client_ip": "127.0.0.1", "method": "GET", "path": "/api/orders"}]},
    "why": {"username": "u", "methods": ("GET", "POST"), "method": "POST", "path": EVIL, "e": {
        "method": "GET", "target": "/api/orders/1", "user": "u", "refused_at": None, "template": "/api/orders/{id}",
        "module": "orders", "verb": "view", "route_kind": "item", "resource": "1 warehouse: HF", "roles": "picker",
        "scope": "warehouse: HF", "verdict": Text("拒绝 (403)", "denied (403)"), "revision": "r1",
        "reasons": [Reason("out_of_scope", "超出范围", "out of scope")]}},
    "who_can": {"fields": (("module", Text("模块", "Module")),), "query": {"module": EVIL},
                "doc": {"roles": ["picker"], "users": [{"username": "u", "roles": ["picker"],
                                                         "scope": {"warehouse": ["HF"]}}]}},
    "alerts": {"statuses": [("open", Text("未处理", "Open")), ("all", Text("全部", "All"))], "status": "open",
               "counts": {"open": 1}, "done": None, "csrf": "tok", "rows": [{
                   "alert_id": "b" * 32, "last_seen": "2026-12-02T10:00:00+00:00",
                   "first_seen": "2026-12-02T09:00:00+00:00", "severity_text": Text("高", "high"),
                   "title_zh": EVIL, "title_en": "t", "rule": "multi_device_login", "count": 3,
                   "status_text": Text("未处理", "Open"), "who": None, "note": None,
                   "moves": [("acknowledge", "确认处理", "Acknowledge")]}]},
    "reviews": {"unreviewed": "revoke", "csrf": "tok", "campaigns": [{
        "review_id": "c" * 32, "title": EVIL, "warehouse": "HF", "role": None, "status": "open",
        "deadline_ms": 1764400000000, "created_by": "admin1"}]},
    "review": {"done": Text("已记录复核决定", "Decision recorded"), "csrf": "tok", "review": {
        "review_id": "c" * 32, "title": EVIL, "warehouse": None, "role": "picker", "status": "open",
        "deadline_ms": 1764400000000, "window_days": 90, "unreviewed": "revoke", "items": [
            {"item_id": 1, "username": "picker.hf", "kind": "role", "name": "picker", "last_used_ms": None,
             "decision": None, "decided_by": None, "note": None, "outcome": None},
            {"item_id": 2, "username": EVIL, "kind": "scope", "name": "warehouse=HF", "last_used_ms": 1764400000000,
             "decision": "keep", "decided_by": "admin1", "note": EVIL, "outcome": None}]}},
}


@pytest.mark.parametrize("template", sorted(PAGES))
def test_every_console_page_renders_escaped_and_bilingual(template: str) -> None:
    response = console_page(_request(), Text("标题", "Title"), template, PAGES[template], "admin1", "http://idp")
    html = response.text or ""
    assert response.status == 200 and html.startswith("<!doctype html>")
    assert "标题" in html and "Title" in html and "admin1" in html
    assert "<script>" not in html  # what people and the WMS typed is escaped
    if template in ("approvals", "people", "alerts", "reviews", "review"):
        assert 'name="_csrf" value="tok"' in html
    if template == "why":
        assert "<code>out_of_scope</code>" in html
    if template == "review":
        assert html.count("/items/1/keep") == 1 and html.count("/items/2/revoke") == 1 and "/close" in html


def test_english_first_when_asked() -> None:
    response = console_page(_request("?lang=en"), Text("标题", "Title"), "outcome", PAGES["outcome"], "u", "")
    html = response.text or ""
    assert '<html lang="en">' in html and html.index("Title") < html.index("标题")
    assert response.cookies["wmsgate_lang"].value == "en"
