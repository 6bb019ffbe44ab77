"""Refusals for people in a browser: a login redirect or a friendly page instead of JSON.

A request is a browser's when it carries no ``Authorization`` header and accepts
``text/html``; a navigation is such a GET or HEAD. API clients keep the JSON refusals.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from aiohttp import web

from proxy.browser_pages import RefusalLinks, Text, login_href, refusal_page
from proxy.redirects import safe_return_to
from proxy.responses import Refusal

#: Refusals a new login can fix.
LOGIN_FIXES = frozenset({"missing_token", "session_ended", "token_expired", "invalid_token"})


def wants_page(request: web.Request) -> bool:
    """True for a browser (no ``Authorization`` header, ``text/html`` accepted)."""
    return "Authorization" not in request.headers and "text/html" in request.headers.get("Accept", "")


def is_navigation(request: web.Request) -> bool:
    """True for a browser loading a page (GET or HEAD)."""
    return request.method in ("GET", "HEAD") and wants_page(request)


def _referer_path(request: web.Request, origin: str) -> str:
    """The same-origin page the browser came from (to return to after a step-up), else ``/``."""
    referer = request.headers.get("Referer", "")
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return "/"
    return safe_return_to(parts.path + (f"?{parts.query}" if parts.query else ""))


def refusal_answer(request: web.Request, refusal: Refusal, decision_id: str, username: str | None,
                   origin: str | None) -> web.Response:
    """What a browser gets instead of the JSON refusal.

    With SSO on (``origin`` given) a navigation that needs a login or a step-up is sent
    to the gateway's login (with ``acr_values``/``max_age`` for a step-up, RFC 9470) and
    comes back to the same page; anything else is a friendly page in zh-CN and English
    saying what is missing and whom to ask.

    Args:
        request: the refused request.
        refusal: why.
        decision_id: the audit record's id.
        username: who is logged in, if known.
        origin: the gateway's public origin when SSO is on, else None.
    """
    here = safe_return_to(request.raw_path)
    step_up = refusal.step_up
    acr = step_up.acr_values if step_up else ""
    max_age = step_up.max_age if step_up and step_up.max_age >= 0 else None
    if origin is not None and is_navigation(request):
        if refusal.code in LOGIN_FIXES:
            return _redirect(login_href(here), decision_id)
        if step_up:
            return _redirect(login_href(here, acr, max_age), decision_id)
    step_up_href = login_href(_referer_path(request, origin), acr, max_age) if step_up and origin else None
    again = login_href(here if request.method == "GET" else "/") if origin and (
        refusal.code in LOGIN_FIXES or refusal.code == "token_revoked") else None
    why = f"/_gateway/ui/why?{urlencode({'decision_id': decision_id})}" if origin and username else None
    response = refusal_page(request, refusal.status, refusal.code, Text(refusal.zh, refusal.en), decision_id,
                            username, RefusalLinks(step_up_href, again, why))
    for name, value in refusal.headers.items():
        response.headers.setdefault(name, value)
    return response


def _redirect(location: str, decision_id: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store",
                                             "X-Decision-Id": decision_id})
