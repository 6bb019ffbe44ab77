"""HTML of the admin console (``/_gateway/ui/``): server-rendered, light CSS, no JavaScript.

zh-CN first with English beside it; ``?lang=en`` (remembered in a cookie) puts
English first. Every value is HTML-escaped; every form carries the session's CSRF
token and works with the keyboard alone.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from proxy.browser_pages import Text

LANG_COOKIE = "wmsgate_lang"

_STYLE = """body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;color:#1f2933;
line-height:1.5}header{background:#243b53;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;flex-wrap:wrap;
align-items:center}header a{color:#fff}header nav a{margin-right:1rem}main{padding:1rem 1.2rem;max-width:80rem}\
h1{font-size:1.3rem}
.second{color:#52606d;font-size:.9em}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #cbd2d9;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f0f4f8}
.card{border:1px solid #cbd2d9;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0;background:#f8fafc}
.note{background:#fffbea;border:1px solid #f0b429;padding:.5rem .8rem;border-radius:4px}
.ok{background:#e3f9e5;border:1px solid #31b237;padding:.5rem .8rem;border-radius:4px}
form.inline{display:inline-block;margin-right:1rem}label{display:inline-block;margin:.2rem .8rem .2rem 0}
button{padding:.3rem .9rem;cursor:pointer}a:focus,button:focus,input:focus,textarea:focus,select:focus{
outline:3px solid #f0b429}pre{white-space:pre-wrap;word-break:break-all;font-size:.85rem;margin:0}"""

NAV = (("/_gateway/ui/approvals", Text("审批", "Approvals")), ("/_gateway/ui/audit", Text("审计日志", "Audit trail")),
       ("/_gateway/ui/people", Text("人员与权限", "People")), ("/_gateway/ui/why", Text("为何被拒绝", "Why denied")),
       ("/_gateway/ui/who-can", Text("谁可以", "Who can")), ("/_gateway/ui/alerts", Text("告警", "Alerts")))


class Lang:
    """The viewer's language order: ``zh`` (default) or ``en`` first."""

    def __init__(self, first: str) -> None:
        self.first = "en" if first == "en" else "zh"

    def t(self, text: Text) -> str:
        """Both languages, the chosen one first, the other smaller beside it."""
        a, b = (text.en, text.zh) if self.first == "en" else (text.zh, text.en)
        return f'{html.escape(a)} <span class="second">{html.escape(b)}</span>'

    def plain(self, text: Text) -> str:
        """Both languages as plain text (for titles and button labels)."""
        return f"{text.en} / {text.zh}" if self.first == "en" else f"{text.zh} / {text.en}"


def lang_of(request: web.Request) -> Lang:
    """The language from ``?lang=`` or the remembered cookie."""
    return Lang(request.query.get("lang") or request.cookies.get(LANG_COOKIE, "zh"))


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None as empty)."""
    return "" if value is None else html.escape(str(value))


def csrf_field(csrf: str) -> str:
    """The hidden CSRF token input of a console form."""
    return f'<input type="hidden" name="_csrf" value="{esc(csrf)}">'


def table(headers: Iterable[Text], rows: Iterable[Iterable[str]], lang: Lang) -> str:
    """A table; ``rows`` hold trusted markup (escape values with :func:`esc`)."""
    head = "".join(f'<th scope="col">{lang.t(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def console_page(request: web.Request, title: Text, body: str, username: str, identity_provider: str,
                 status: int = 200, decision_id: str = "") -> web.Response:
    """A console page with the navigation bar, the person's name, the language switch and logout.

    Args:
        identity_provider: the issuer's origin (forms may be redirected there for a step-up).
    """
    lang = lang_of(request)
    nav = "".join(f'<a href="{href}">{lang.t(text)}</a>' for href, text in NAV)
    other = "en" if lang.first == "zh" else "zh"
    switch = f'<a href="?{urlencode({"lang": other})}" lang="{other}">{"English" if other == "en" else "中文"}</a>'
    doc = (f'<!doctype html><html lang="{"en" if lang.first == "en" else "zh-CN"}"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width,initial-scale=1">'
           f'<title>{esc(lang.plain(title))} - WMS 网关 / gateway</title><style>{_STYLE}</style></head><body>'
           f'<header><strong>WMS 访问网关 / Access gateway</strong><nav>{nav}</nav>'
           f'<span>{esc(username)}</span>{switch}<a href="/_gateway/auth/logout">{lang.t(Text("退出", "Log out"))}</a>'
           f'</header><main><h1>{lang.t(title)}</h1>{body}</main></body></html>')
    # A form may end at the identity provider (a decision that needs a step-up redirects there).
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; "
                                          f"form-action 'self' {identity_provider}; frame-ancestors 'none'"}
    if decision_id:
        headers["X-Decision-Id"] = decision_id
    response = web.Response(status=status, text=doc, content_type="text/html", charset="utf-8", headers=headers)
    if request.query.get("lang") in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang.first, max_age=365 * 86400, path="/_gateway/ui/", httponly=True,
                            samesite="Lax")
    return response


def pretty_body(text: str | None) -> str:
    """A held request's body for approvers: pretty JSON when it is JSON, else the text."""
    if not text:
        return ""
    try:
        return esc(json.dumps(json.loads(text), ensure_ascii=False, indent=2))
    except ValueError:
        return esc(text)
