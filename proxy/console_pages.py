"""HTML of the admin console (``/_gateway/ui/``): server-rendered from Jinja2 templates
(``proxy/templates/console/``, autoescaped), light CSS, no JavaScript.

zh-CN first with English beside it; ``?lang=en`` (remembered in a cookie) puts
English first. Every value is HTML-escaped by the templates; every form carries the
session's CSRF token and works with the keyboard alone.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from authorizer.messages import TEXTS, Text

LANG_COOKIE = "wmsgate_lang"
#: The warehouses' time zone (Asia/Shanghai): times are shown in it.
BEIJING = dt.timezone(dt.timedelta(hours=8))

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

#: The console's pages, by the names the templates use.
PATHS = {"approvals": "/_gateway/ui/approvals", "audit": "/_gateway/ui/audit", "people": "/_gateway/ui/people",
         "why": "/_gateway/ui/why", "who_can": "/_gateway/ui/who-can", "alerts": "/_gateway/ui/alerts",
         "reviews": "/_gateway/ui/reviews", "reveal": "/_gateway/ui/reveal"}

NAV = tuple((PATHS[page], TEXTS[f"nav_{page}"])
            for page in ("approvals", "audit", "people", "reviews", "why", "who_can", "alerts", "reveal"))


def lang_of(request: web.Request) -> str:
    """The language shown first, ``zh`` (default) or ``en``: from ``?lang=`` or the remembered cookie."""
    return "en" if (request.query.get("lang") or request.cookies.get(LANG_COOKIE, "zh")) == "en" else "zh"


def pretty_body(text: str | None) -> str:
    """A held request's body for approvers: pretty JSON when it is JSON, else the text (not escaped:
    the templates escape)."""
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except ValueError:
        return text


def beijing_time(iso_text: str | None) -> str:
    """An ISO UTC time shown in the warehouses' time zone (``2026-12-02 18:00:00``), '' for none."""
    if not iso_text:
        return ""
    at = dt.datetime.fromisoformat(str(iso_text).replace("Z", "+00:00"))
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _iso_short(iso_text: str | None) -> str:
    return dt.datetime.fromisoformat(iso_text).strftime("%Y-%m-%d %H:%M:%S") if iso_text else ""


def setup_templates(app: web.Application) -> None:
    """Install the console's Jinja2 environment on ``app`` (autoescape on, undefined names are errors)."""
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("proxy", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    env.filters.update({
        "when": beijing_time, "pretty": pretty_body, "urlquote": lambda value: quote(str(value), safe=""),
        "utc_iso": lambda seconds: dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(),
        "ms_utc": lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "iso_short": _iso_short})


def console_page(request: web.Request, title: Text, template: str, context: dict[str, Any], username: str,
                 identity_provider: str, decision_id: str = "") -> web.Response:
    """A console page: ``console/<template>.html`` in the layout with the navigation bar, the
    person's name, the language switch and logout.

    Args:
        title: the page's title in both languages.
        template: the page template's name (``approvals``).
        context: the template's values (``lang``, ``title``, ``viewer`` and the paths are added).
        identity_provider: the issuer's origin (forms may be redirected there for a step-up).
        decision_id: the audit record's id (``X-Decision-Id``).

    Raises:
        jinja2.TemplateError: a template bug (the lifecycle answers 500 and records it).
    """
    lang = lang_of(request)
    other = "en" if lang == "zh" else "zh"
    values = {"lang": lang, "other": other, "switch_query": urlencode({"lang": other}), "title": title,
              "viewer": username, "nav": NAV, "style": Markup(_STYLE), "csrf": "", **PATHS, **context}
    doc = aiohttp_jinja2.render_string(f"console/{template}.html", request, values)
    # A form may end at the identity provider (a decision that needs a step-up redirects there).
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; "
                                          f"form-action 'self' {identity_provider}; frame-ancestors 'none'"}
    if decision_id:
        headers["X-Decision-Id"] = decision_id
    response = web.Response(text=doc, content_type="text/html", charset="utf-8", headers=headers)
    if request.query.get("lang") in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/_gateway/ui/", httponly=True,
                            samesite="Lax")
    return response
