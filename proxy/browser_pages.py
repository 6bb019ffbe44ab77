"""The pages the gateway itself shows to browsers: refusals, login problems, logout.

Server-rendered HTML with light CSS and no JavaScript; zh-CN first with English
beside it; every value is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

_STYLE = """body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:44rem;margin:3rem auto;
padding:0 1rem;color:#1f2933;line-height:1.6}h1{font-size:1.4rem;margin-bottom:.2rem}.en{color:#52606d}
.box{border:1px solid #cbd2d9;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0;background:#f5f7fa}
a,button{font-size:1rem}button{padding:.4rem 1rem;cursor:pointer}.meta{font-size:.85rem;color:#7b8794}
a:focus,button:focus{outline:3px solid #f0b429}"""


@dataclass(frozen=True)
class Text:
    """One message in both languages."""

    zh: str
    en: str


def _both(text: Text, tag: str = "p") -> str:
    return (f'<{tag} lang="zh-CN">{html.escape(text.zh)}</{tag}>'
            f'<{tag} lang="en" class="en">{html.escape(text.en)}</{tag}>')


def page(status: int, title: Text, body: str, headers: dict[str, str] | None = None,
         form_targets: str = "") -> web.Response:
    """A complete HTML page (``body`` is trusted markup built by this module's helpers).

    Args:
        form_targets: origins a form may lead to besides the gateway's own (CSP ``form-action``
            also governs the redirects after a form post, e.g. to the identity provider).
    """
    doc = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width,initial-scale=1">'
           f'<title>{html.escape(title.zh)} / {html.escape(title.en)}</title><style>{_STYLE}</style></head>'
           f'<body><main><h1>{html.escape(title.zh)}</h1><p class="en" lang="en">{html.escape(title.en)}</p>'
           f'{body}</main></body></html>')
    return web.Response(status=status, text=doc, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                            f"form-action 'self' {form_targets}; "
                                                            "frame-ancestors 'none'",
                                 **(headers or {})})


def link(href: str, text: Text) -> str:
    """A link with a bilingual label (``href`` must be a gateway-built, safe URL)."""
    return f'<p><a href="{html.escape(href)}">{html.escape(text.zh)} / {html.escape(text.en)}</a></p>'


def login_href(return_to: str, acr: str = "", max_age: int | None = None) -> str:
    """The gateway's login address that comes back to ``return_to`` (already sanitized)."""
    params = {"return_to": return_to}
    if acr:
        params["acr"] = acr
    if max_age is not None:
        params["max_age"] = str(max_age)
    return f"/_gateway/auth/login?{urlencode(params)}"


ASK = Text("如需此权限,请联系您的主管或系统管理员,并提供下方的决策编号。",
           "If you need this access, ask your supervisor or a system administrator (sysadmin) "
           "and give them the decision id below.")


@dataclass(frozen=True)
class RefusalLinks:
    """Where a refusal page sends the person next (each None when it does not apply).

    Attributes:
        step_up: where to confirm identity with a second factor, when that is what is missing.
        login_again: where to log in again, when the session ended.
        why: the console's explanation of this decision, for a logged-in person.
    """

    step_up: str | None = None
    login_again: str | None = None
    why: str | None = None


def refusal_page(status: int, code: str, reason: Text, decision_id: str, username: str | None,
                 links: RefusalLinks | None = None) -> web.Response:
    """A friendly refusal: what happened, what is missing, whom to ask, the decision id.

    Args:
        status: the HTTP status to answer with.
        code: the machine-readable code (shown small, for the helpdesk).
        reason: the main reason in both languages.
        decision_id: the audit record's id.
        username: who is logged in, if anyone.
        links: where to go next (:class:`RefusalLinks`).
    """
    links = links or RefusalLinks()
    step_up_href, login_again_href, why_href = links.step_up, links.login_again, links.why
    parts = [f'<div class="box" role="alert">{_both(reason)}</div>']
    if step_up_href:
        parts.append(_both(Text("此操作需要再次验证身份(动态验证码)。", "This action needs you to confirm "
                                                                "your identity again (one-time code).")))
        parts.append(link(step_up_href, Text("验证身份", "Confirm identity")))
    elif login_again_href:
        parts.append(link(login_again_href, Text("重新登录", "Log in again")))
    elif status == 403:
        parts.append(_both(ASK))
        if why_href:
            parts.append(link(why_href, Text("查看详细原因", "See why in detail")))
    parts.append(link("/", Text("返回首页", "Back to the home page")))
    who = f" · {html.escape(username)}" if username else ""
    parts.append(f'<p class="meta">{html.escape(code)} · 决策编号 / decision id: '
                 f'<code>{html.escape(decision_id)}</code>{who}</p>')
    titles = {401: Text("需要登录", "Login needed"), 403: Text("没有权限", "Not allowed"),
              404: Text("页面不存在", "Not found")}
    title = titles.get(status, Text("暂时无法处理", "Cannot handle this right now"))
    return page(status, title, "".join(parts), {"X-Decision-Id": decision_id})


def login_problem_page(status: int, reason: Text) -> web.Response:
    """The login could not be completed (expired, cancelled, refused): say so and offer a new login."""
    return page(status, Text("登录未完成", "Login not completed"),
                f'<div class="box" role="alert">{_both(reason)}</div>'
                + link(login_href("/"), Text("重新登录", "Log in again")))


def logout_confirm_page(username: str, csrf: str, identity_provider: str) -> web.Response:
    """Asks to confirm the logout (a POST with the session's CSRF token; works without JavaScript).

    Args:
        username: who is logged in.
        csrf: the session's synchronizer token.
        identity_provider: the issuer's origin (the logout continues there).
    """
    form = (f'<form method="post" action="/_gateway/auth/logout">'
            f'<input type="hidden" name="_csrf" value="{html.escape(csrf)}">'
            f'<button type="submit">退出登录 / Log out</button></form>')
    return page(200, Text("退出登录", "Log out"),
                _both(Text(f"当前登录:{username}", f"Logged in as {username}")) + form
                + link("/", Text("返回首页", "Back to the home page")), form_targets=identity_provider)


def logged_out_page() -> web.Response:
    """After logout."""
    return page(200, Text("您已退出登录", "You are logged out"),
                _both(Text("为安全起见,请关闭浏览器窗口。", "For safety, close the browser window."))
                + link(login_href("/"), Text("重新登录", "Log in again")))


def nothing_in_scope_page(decision_id: str) -> web.Response:
    """A list page asked only for records outside the person's scope: say so (200, nothing shown)."""
    return page(200, Text("没有可显示的记录", "Nothing to show"),
                _both(Text("您筛选的范围不在您的数据权限之内。", "The filter you chose lies outside your data scope."))
                + link("/", Text("返回首页", "Back to the home page")), {"X-Decision-Id": decision_id})
