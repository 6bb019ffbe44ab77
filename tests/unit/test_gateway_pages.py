"""The gateway's own pages for browsers (refusals, login problems, logout): Jinja2 templates that
render with realistic values, escape what people and the WMS typed and show both languages (the
pages are driven in headless Chromium in tests/browser against the real stack)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from authorizer.messages import TEXTS, Text
from proxy.browser_pages import (
    RefusalLinks,
    logged_out_page,
    login_problem_page,
    logout_confirm_page,
    nothing_in_scope_page,
    refusal_page,
)
from proxy.console_pages import setup_templates

EVIL = '<script>alert("x")</script>'


def _request() -> web.Request:
    app = web.Application()
    setup_templates(app)
    return make_mocked_request("GET", "/ui/orders", app=app)


PAGES: dict[str, Callable[[web.Request], web.Response]] = {
    "refusal_403": lambda r: refusal_page(r, 403, "out_of_scope", Text(f"不在范围 {EVIL}", f"out of scope {EVIL}"),
                                          "d" * 32, EVIL, RefusalLinks(why="/_gateway/ui/why?decision_id=d")),
    "refusal_step_up": lambda r: refusal_page(r, 401, "step_up_required", Text("需要验证", "step up"), "d" * 32,
                                              "keeper.hf", RefusalLinks(step_up="/_gateway/auth/login?acr=mfa")),
    "refusal_login_again": lambda r: refusal_page(r, 401, "token_revoked", Text("请重新登录", "log in"), "d" * 32,
                                                  None, RefusalLinks(login_again="/_gateway/auth/login")),
    "refusal_503": lambda r: refusal_page(r, 503, "pdp_unavailable", Text("暂不可用", "unavailable"), "d" * 32, None),
    "login_problem": lambda r: login_problem_page(r, 400, TEXTS["login_expired"]),
    "logout_confirm": lambda r: logout_confirm_page(r, EVIL, 'tok"><x', "http://idp"),
    "logged_out": logged_out_page,
    "nothing_in_scope": lambda r: nothing_in_scope_page(r, "d" * 32),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_gateway_page_renders_escaped_and_bilingual(name: str) -> None:
    response = PAGES[name](_request())
    html = response.text or ""
    assert html.startswith("<!doctype html>") and '<html lang="zh-CN">' in html
    assert "<script>" not in html and "<x" not in html  # what people and the WMS typed is escaped
    assert 'lang="en"' in html and ("返回首页" in html or "重新登录" in html)
    assert response.headers["X-Frame-Options"] == "DENY" and "default-src 'none'" in response.headers[
        "Content-Security-Policy"]


def test_a_refusal_page_says_what_to_do_next() -> None:
    forbidden = PAGES["refusal_403"](_request())
    assert forbidden.status == 403 and "没有权限" in (forbidden.text or "") and "查看详细原因" in (forbidden.text or "")
    assert forbidden.headers["X-Decision-Id"] == "d" * 32 and "d" * 32 in (forbidden.text or "")
    step_up = PAGES["refusal_step_up"](_request()).text or ""
    assert "验证身份" in step_up and 'href="/_gateway/auth/login?acr=mfa"' in step_up and "查看详细原因" not in step_up
    assert "重新登录" in (PAGES["refusal_login_again"](_request()).text or "")
    assert "暂时无法处理" in (PAGES["refusal_503"](_request()).text or "")
    logout = PAGES["logout_confirm"](_request())
    assert "form-action 'self' http://idp" in logout.headers["Content-Security-Policy"]
    assert 'value="tok&#34;&gt;&lt;x"' in (logout.text or "")
