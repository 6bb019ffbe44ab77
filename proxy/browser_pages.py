"""The pages the gateway itself shows to browsers: refusals, login problems, logout.

Rendered from Jinja2 templates (``proxy/templates/pages/``, autoescaped) with light CSS and no
JavaScript; zh-CN first with English beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from authorizer.messages import TEXTS, Text

__all__ = ["RefusalLinks", "Text", "logged_out_page", "login_href", "login_problem_page", "logout_confirm_page",
           "nothing_in_scope_page", "page", "refusal_page"]

_STYLE = """body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:44rem;margin:3rem auto;
padding:0 1rem;color:#1f2933;line-height:1.6}h1{font-size:1.4rem;margin-bottom:.2rem}.en{color:#52606d}
.box{border:1px solid #cbd2d9;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0;background:#f5f7fa}
a,button{font-size:1rem}button{padding:.4rem 1rem;cursor:pointer}.meta{font-size:.85rem;color:#7b8794}
a:focus,button:focus{outline:3px solid #f0b429}"""

#: Page titles by HTTP status of a refusal (anything else: "cannot handle this right now").
_REFUSAL_TITLES = {401: "title_login_needed", 403: "title_not_allowed", 404: "title_not_found"}


def page(request: web.Request, status: int, template: str, values: dict[str, Any],
         headers: dict[str, str] | None = None, form_targets: str = "") -> web.Response:
    """A complete page from ``pages/<template>.html`` (``values`` must hold its ``title``).

    Args:
        form_targets: origins a form may lead to besides the gateway's own (CSP ``form-action``
            also governs the redirects after a form post, e.g. to the identity provider).

    Raises:
        jinja2.TemplateError: a template bug (the lifecycle answers 500 and records it).
    """
    doc = aiohttp_jinja2.render_string(f"pages/{template}.html", request, {"style": Markup(_STYLE), **values})
    return web.Response(status=status, text=doc, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                            f"form-action 'self' {form_targets}; "
                                                            "frame-ancestors 'none'",
                                 **(headers or {})})


def login_href(return_to: str, acr: str = "", max_age: int | None = None) -> str:
    """The gateway's login address that comes back to ``return_to`` (already sanitized)."""
    params = {"return_to": return_to}
    if acr:
        params["acr"] = acr
    if max_age is not None:
        params["max_age"] = str(max_age)
    return f"/_gateway/auth/login?{urlencode(params)}"


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


def refusal_page(request: web.Request, status: int, code: str, reason: Text, decision_id: str,
                 username: str | None, links: RefusalLinks | None = None) -> web.Response:
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
    title = TEXTS[_REFUSAL_TITLES.get(status, "title_cannot_handle")]
    return page(request, status, "refusal", {
        "title": title, "status": status, "code": code, "reason": reason, "decision_id": decision_id,
        "username": username or "", "step_up": links.step_up, "login_again": links.login_again, "why": links.why},
        {"X-Decision-Id": decision_id})


def login_problem_page(request: web.Request, status: int, reason: Text) -> web.Response:
    """The login could not be completed (expired, cancelled, refused): say so and offer a new login."""
    return page(request, status, "login_problem", {"title": TEXTS["title_login_not_completed"],
                                                   "reason": reason, "login": login_href("/")})


def logout_confirm_page(request: web.Request, username: str, csrf: str, identity_provider: str) -> web.Response:
    """Asks to confirm the logout (a POST with the session's CSRF token; works without JavaScript).

    Args:
        username: who is logged in.
        csrf: the session's synchronizer token.
        identity_provider: the issuer's origin (the logout continues there).
    """
    return page(request, 200, "logout_confirm", {"title": TEXTS["title_log_out"], "username": username,
                                                 "csrf": csrf}, form_targets=identity_provider)


def logged_out_page(request: web.Request) -> web.Response:
    """After logout."""
    return page(request, 200, "logged_out", {"title": TEXTS["title_logged_out"],
                                             "login": login_href("/")})


def nothing_in_scope_page(request: web.Request, decision_id: str) -> web.Response:
    """A list page asked only for records outside the person's scope: say so (200, nothing shown)."""
    return page(request, 200, "nothing_in_scope", {"title": TEXTS["title_nothing_to_show"]},
                {"X-Decision-Id": decision_id})
