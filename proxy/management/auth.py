"""Browser login and logout under ``/_gateway/auth`` (OIDC authorization code flow with PKCE).

``GET  /_gateway/auth/login?return_to=/path[&acr=mfa&max_age=300]``  start a login (or a step-up)
``GET  /_gateway/auth/callback?code=&state=``   Keycloak sends the browser back here
``GET  /_gateway/auth/logout``                  confirmation page (a form)
``POST /_gateway/auth/logout``                  end the session here and at Keycloak (RP-initiated logout)
``GET  /_gateway/auth/logged-out``              after logout
``POST /_gateway/auth/backchannel-logout``      Keycloak ends a session (OIDC Back-Channel Logout 1.0)

Logins, logouts and failed logins are audited (module ``auth``).
"""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp import web

from authorizer.audit import AuditRecord
from authorizer.authn.identity import AuthenticationError, IssuerUnavailable
from authorizer.authn.oidc_rp import LoginFailed, new_code_verifier
from authorizer.authn.sessions import BrowserSession, Tokens
from authorizer.messages import TEXTS, Text
from proxy.browser_pages import logged_out_page, login_problem_page, logout_confirm_page, refusal_page
from proxy.lifecycle import Endpoint, context_of, endpoint, sub_path
from proxy.redirects import safe_return_to
from proxy.responses import Refusal, refusal
from proxy.sso import LOGIN_COOKIE, SESSION_COOKIE, SSO, SsoService, origin_of

log = logging.getLogger(__name__)

PREFIX = "/_gateway/auth"
CALLBACK = f"{PREFIX}/callback"
LOGGED_OUT = f"{PREFIX}/logged-out"
_ACR = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: Recorded when a login or logout happens (or fails); codes and states in the query are secrets, never stored.
AUTH = Endpoint(quiet=True, keep_query=False)


def _audit(request: web.Request, verb: str, reason: str, allowed: bool, username: str = "",
           user_id: str = "", detail: dict[str, object] | None = None) -> AuditRecord:
    """Fill the request's audit record (module ``auth``) and have it written; the status is the answer's."""
    ctx = context_of(request)
    record = ctx.record
    record.module, record.verb, record.reason_code = "auth", verb, reason
    record.decision = "allow" if allowed else "deny"
    record.username, record.user_id = username, user_id
    record.detail = dict(detail or {})
    ctx.note()
    return record


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


@endpoint(AUTH)
async def login(request: web.Request) -> web.Response:
    """Send the browser to Keycloak, remembering where to come back to (same-origin paths only)."""
    sso = request.config_dict[SSO]
    return_to = safe_return_to(request.query.get("return_to"))
    acr = request.query.get("acr", "")
    acr = acr if _ACR.match(acr) else ""
    max_age = None
    if request.query.get("max_age", "").isdigit():
        max_age = min(int(request.query["max_age"]), 86400)
    verifier = new_code_verifier()
    pending, binding = await sso.sessions.begin_login(return_to, acr, verifier)
    try:
        url = await sso.rp.authorization_url(pending.state, pending.nonce, verifier, acr, max_age)
    except IssuerUnavailable as exc:
        log.warning("login cannot start: %s", exc)
        return login_problem_page(request, 503, TEXTS["login_identity_provider_unavailable"])
    response = _redirect(url)
    response.set_cookie(LOGIN_COOKIE, binding, max_age=sso.sessions.login_ms // 1000, path=f"{PREFIX}/",
                        httponly=True, samesite="Lax", secure=sso.settings.secure_cookies)
    return response


@endpoint(AUTH)
async def callback(request: web.Request) -> web.Response:
    """Finish the login: check state and browser binding, trade the code (PKCE), check the ID
    token (nonce), start a session with a new id and go back where the person was."""
    sso = request.config_dict[SSO]
    state = request.query.get("state", "")
    pending = await sso.sessions.finish_login(state, request.cookies.get(LOGIN_COOKIE)) if state else None
    if "error" in request.query:
        _audit(request, "login", "login_refused", False, detail={"error": request.query["error"][:64]})
        return login_problem_page(request, 401, TEXTS["login_cancelled"])
    if pending is None or not request.query.get("code"):
        _audit(request, "login", "login_expired", False)
        return login_problem_page(request, 400, TEXTS["login_expired"])
    try:
        token = await sso.rp.exchange(request.query["code"], pending.code_verifier)
        claims = await sso.rp.verify_id_token(str(token.get("id_token", "")), pending.nonce)
        principal = await sso.verifier.verify(str(token["access_token"]))
    except (LoginFailed, AuthenticationError) as exc:
        _audit(request, "login", "login_failed", False, detail={"error": str(exc)[:200]})
        return login_problem_page(request, 401, TEXTS["login_not_verified"])
    except IssuerUnavailable as exc:
        log.warning("login cannot finish: %s", exc)
        _audit(request, "login", "issuer_unavailable", False, detail={"error": str(exc)[:200]})
        return login_problem_page(request, 503, TEXTS["login_identity_provider_unavailable"])
    if principal.user_id != claims.get("sub"):
        _audit(request, "login", "login_failed", False, detail={"error": "ID and access token differ"})
        return login_problem_page(request, 401, TEXTS["login_not_verified"])
    if pending.acr and principal.acr != pending.acr:  # RFC 9470: the step-up asked for did not happen
        _audit(request, "login", "step_up_not_met", False, principal.username, principal.user_id,
               {"asked": pending.acr, "got": principal.acr})
        return login_problem_page(request, 401, TEXTS["login_step_up_not_met"])
    await _end_current(request, sso)
    sid = str(claims.get("sid") or principal.session_id or "")
    _, cookie = await sso.sessions.create(principal.user_id, principal.username, sid, Tokens.from_response(token))
    _audit(request, "login", "sso_login", True, principal.username, principal.user_id,
           {"acr": principal.acr, "step_up": bool(pending.acr)})
    response = _redirect(pending.return_to, 303)
    response.set_cookie(SESSION_COOKIE, cookie, **sso.cookie_options())  # type: ignore[arg-type]
    response.del_cookie(LOGIN_COOKIE, path=f"{PREFIX}/")
    return response


async def _end_current(request: web.Request, sso: SsoService) -> None:
    """End the session the browser had before (a new login or step-up gets a new id)."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        previous = await sso.sessions.get(old)
        if previous is not None:
            await sso.sessions.end(previous)


async def _current(request: web.Request) -> tuple[SsoService, BrowserSession | None]:
    sso = request.config_dict[SSO]
    cookie = request.cookies.get(SESSION_COOKIE)
    return sso, (await sso.sessions.get(cookie) if cookie else None)


@endpoint(AUTH)
async def logout_page(request: web.Request) -> web.Response:
    """Ask to confirm the logout (a form, so a link elsewhere cannot log people out)."""
    sso, session = await _current(request)
    if session is None:
        return _redirect(LOGGED_OUT, 303)
    return logout_confirm_page(request, session.username, session.csrf, origin_of(sso.rp.settings.issuer))


@endpoint(AUTH)
async def logout(request: web.Request) -> web.Response:
    """End the session (CSRF token and origin checked), then log out at Keycloak too."""
    sso, session = await _current(request)
    if session is None:
        return _redirect(LOGGED_OUT, 303)
    form = await request.post()
    try:
        sso.check_origin(request)
        if not secrets.compare_digest(str(form.get("_csrf", "")), session.csrf):
            raise refusal("csrf_check_failed")
    except Refusal as refused:
        record = _audit(request, "logout", refused.code, False, session.username, session.user_id)
        return refusal_page(request, 403, refused.code, Text(refused.zh, refused.en), record.decision_id,
                            session.username)
    await sso.sessions.end(session)
    _audit(request, "logout", "sso_logout", True, session.username, session.user_id)
    try:
        target = await sso.rp.end_session_url(session.tokens.id_token, sso.settings.public_url + LOGGED_OUT)
    except IssuerUnavailable:
        target = None
    response = _redirect(target or LOGGED_OUT, 303)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@endpoint(AUTH)
async def logged_out(request: web.Request) -> web.Response:
    """The page after logout."""
    return logged_out_page(request)


@endpoint(AUTH)
async def backchannel_logout(request: web.Request) -> web.Response:
    """Keycloak ended a session: end the browser sessions it belongs to (by ``sid``, else by ``sub``)."""
    sso = request.config_dict[SSO]
    form = await request.post()
    token = str(form.get("logout_token", ""))
    headers = {"Cache-Control": "no-store"}
    try:
        claims = await sso.rp.verify_logout_token(token)
    except AuthenticationError as exc:
        _audit(request, "logout", "backchannel_logout_rejected", False, detail={"error": exc.detail[:200]})
        return web.json_response({"error": "invalid_request", "error_description": exc.detail}, status=400,
                                 headers=headers)
    except IssuerUnavailable as exc:  # the logout did not take effect: on the record
        _audit(request, "logout", "backchannel_logout_unverified", False, detail={"error": str(exc)[:200]})
        return web.json_response({"error": "temporarily_unavailable"}, status=503, headers=headers)
    sid, sub = str(claims.get("sid") or ""), str(claims.get("sub") or "")
    ended = await sso.sessions.end_by_sid(sid) if sid else await sso.sessions.end_by_user(sub)
    _audit(request, "logout", "backchannel_logout", True, user_id=sub, detail={"sessions_ended": ended})
    return web.json_response({"sessions_ended": ended}, headers=headers)


def add_routes(app: web.Application) -> None:
    """Register the login/logout endpoints on the gateway's ``/_gateway`` sub-application ``app``."""
    app.router.add_get(sub_path(f"{PREFIX}/login"), login)
    app.router.add_get(sub_path(CALLBACK), callback)
    app.router.add_get(sub_path(f"{PREFIX}/logout"), logout_page)
    app.router.add_post(sub_path(f"{PREFIX}/logout"), logout)
    app.router.add_get(sub_path(LOGGED_OUT), logged_out)
    app.router.add_post(sub_path(f"{PREFIX}/backchannel-logout"), backchannel_logout)
