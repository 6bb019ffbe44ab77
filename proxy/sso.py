"""Browser sessions on the request path: the session cookie becomes a principal.

The cookie holds a random id; the session in the store holds the person's tokens.
Tokens are refreshed shortly before they expire (and the id rotated); a refused
refresh (the Keycloak session ended, the person was disabled) ends the session.
State-changing requests that rely on the cookie must come from the gateway's own
origin (``Sec-Fetch-Site``, else ``Origin``, else ``Referer``: OWASP CSRF cheat sheet,
"verifying origin with standard headers"); the ``SameSite=Lax`` cookie is the second line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from aiohttp import web

from authorizer.authn.identity import AuthenticationError, IssuerUnavailable, Principal, TokenVerifier
from authorizer.authn.oidc_rp import LoginFailed, RelyingParty
from authorizer.authn.sessions import BrowserSession, SessionStore, Tokens, now_ms
from authorizer.config import SsoSettings
from proxy import responses
from proxy.responses import Refusal, refusal

SESSION_COOKIE = "wmsgate_session"
LOGIN_COOKIE = "wmsgate_login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class SessionContext:
    """What this request did with its browser session (read by the response hook).

    Attributes:
        session: the live session, if any.
        new_cookie: a rotated session id to send back.
        clear: the session ended; remove the cookie.
    """

    session: BrowserSession | None = None
    new_cookie: str | None = None
    clear: bool = False


CONTEXT = web.RequestKey("sso_session", SessionContext)


@dataclass
class _RefreshGate:
    """Serializes one session's refreshes in this process; dropped when nobody waits."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def session_ended() -> Refusal:
    """The browser's session is gone (expired, logged out, refused by Keycloak)."""
    return refusal("session_ended")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (lower-case scheme and host)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class SsoService:
    """Resolves browser sessions for the PEP.

    Args:
        settings: the SSO configuration.
        sessions: the session store.
        rp: the relying party (refresh).
        verifier: the access-token verifier (the same as for bearer tokens).
    """

    def __init__(self, settings: SsoSettings, sessions: SessionStore, rp: RelyingParty,
                 verifier: TokenVerifier) -> None:
        self.settings = settings
        self.sessions = sessions
        self.rp = rp
        self.verifier = verifier
        self.origin = origin_of(settings.public_url)
        self._gates: dict[str, _RefreshGate] = {}  # session id hash -> one refresh at a time in this process

    async def principal(self, request: web.Request, cookie: str) -> Principal:
        """The principal of the browser session ``cookie`` (refreshing its tokens when due).

        Raises:
            Refusal: 401 ``session_ended``; 403 ``csrf_check_failed`` for a cross-site
                state-changing request; 503 when Keycloak is needed and unreachable.
        """
        ctx = SessionContext()
        request[CONTEXT] = ctx
        session = await self.sessions.get(cookie)
        if session is None:
            ctx.clear = True
            raise session_ended()
        ctx.session = session
        self.check_origin(request)
        if session.tokens.access_expires_ms - now_ms() < self.settings.refresh_before_seconds * 1000:
            session = await self._refresh(ctx, cookie, session)
        try:
            return await self.verifier.verify(session.tokens.access_token)
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                await self._end(ctx, session)
                raise session_ended() from None
        session = await self._refresh(ctx, cookie, session, required=True)
        try:
            return await self.verifier.verify(session.tokens.access_token)
        except AuthenticationError:
            await self._end(ctx, session)
            raise session_ended() from None
        except IssuerUnavailable:
            raise responses.issuer_unavailable() from None

    def check_origin(self, request: web.Request) -> None:
        """Refuse a cookie-authenticated state-changing request that did not come from our origin.

        Raises:
            Refusal: 403 ``csrf_check_failed``.
        """
        if request.method in SAFE_METHODS:
            return
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            ok = site in ("same-origin", "none")
        elif "Origin" in request.headers:
            ok = origin_of(request.headers["Origin"]) == self.origin
        elif "Referer" in request.headers:
            ok = origin_of(request.headers["Referer"]) == self.origin
        else:
            ok = False
        if not ok:
            raise refusal("cross_site_request")

    async def _refresh(self, ctx: SessionContext, cookie: str, session: BrowserSession,
                       required: bool = False) -> BrowserSession:
        """Refresh the tokens and rotate the id. Keycloak rotates refresh tokens and refuses a
        reused one, so refreshes of one session are serialized in this process, and a refusal
        is first checked against the store: another request (or process) may have refreshed."""
        gate = self._gates.setdefault(session.id_hash, _RefreshGate())
        gate.users += 1
        try:
            async with gate.lock:
                current = await self.sessions.get(cookie)
                if current is None:
                    await self._end(ctx, session)
                    raise session_ended()
                if current.tokens.access_token != session.tokens.access_token:
                    ctx.session = current  # refreshed meanwhile; that answer carries the new cookie
                    return current
                try:
                    token = await self.rp.refresh(session.tokens.refresh_token)
                except LoginFailed:
                    return await self._after_refused_refresh(ctx, cookie, session)
                except IssuerUnavailable:
                    if not required and session.tokens.access_expires_ms > now_ms():
                        return session  # still valid: try again on the next request
                    raise responses.issuer_unavailable() from None
                rotated = await self.sessions.rotate(
                    session, Tokens.from_response(token, id_token=session.tokens.id_token))
        finally:
            gate.users -= 1
            if gate.users == 0:
                self._gates.pop(session.id_hash, None)
        if rotated is None:  # the session ended or was rotated by another process meanwhile
            latest = await self.sessions.get(cookie)
            if latest is None:
                ctx.clear = True
                raise session_ended()
            ctx.session = latest
            return latest
        ctx.session, ctx.new_cookie = rotated
        return rotated[0]

    async def _after_refused_refresh(self, ctx: SessionContext, cookie: str,
                                     session: BrowserSession) -> BrowserSession:
        """Keycloak refused the refresh token. Another proxy process may have used it a moment
        ago (Keycloak rotates refresh tokens and refuses a reused one): look again, wait once
        for that rotation to land, and end the session only if none did."""
        for attempt in range(2):
            latest = await self.sessions.get(cookie)
            if latest is None:
                break
            if latest.tokens.refresh_token != session.tokens.refresh_token:
                ctx.session = latest
                return latest
            if attempt == 0:
                await asyncio.sleep(0.5)
        await self._end(ctx, session)
        raise session_ended()

    async def _end(self, ctx: SessionContext, session: BrowserSession) -> None:
        await self.sessions.end(session)
        ctx.session, ctx.clear = None, True

    async def end_for_revocation(self, request: web.Request, user_id: str) -> None:
        """The person's access was revoked: end all their browser sessions, clear this cookie."""
        await self.sessions.end_by_user(user_id)
        ctx = request.get(CONTEXT)
        if ctx is not None:
            ctx.session, ctx.clear = None, True

    def cookie_options(self) -> dict[str, object]:
        """Attributes of the session cookie: HttpOnly, SameSite=Lax, Path=/, Secure over TLS."""
        return {"httponly": True, "samesite": "Lax", "path": "/", "secure": self.settings.secure_cookies}


async def apply_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: send a rotated session id, or remove an ended session's cookie."""
    ctx = request.get(CONTEXT)
    if ctx is None:
        return
    sso: SsoService | None = request.config_dict.get(SSO)
    if sso is None:
        return
    # The hook runs after aiohttp turned response.cookies into headers: add the header itself.
    if ctx.new_cookie:
        response.headers.add("Set-Cookie", session_cookie_header(ctx.new_cookie, sso.settings.secure_cookies))
    elif ctx.clear:
        response.headers.add("Set-Cookie", session_cookie_header("", sso.settings.secure_cookies, expire=True))


def session_cookie_header(value: str, secure: bool, expire: bool = False) -> str:
    """A ``Set-Cookie`` value for the session cookie (HttpOnly, SameSite=Lax, Path=/, Secure over TLS;
    ``expire`` removes it)."""
    jar: SimpleCookie = SimpleCookie()
    jar[SESSION_COOKIE] = value
    morsel = jar[SESSION_COOKIE]
    morsel["path"], morsel["httponly"], morsel["samesite"] = "/", True, "Lax"
    if secure:
        morsel["secure"] = True
    if expire:
        morsel["max-age"], morsel["expires"] = 0, "Thu, 01 Jan 1970 00:00:00 GMT"
    return morsel.OutputString()


SSO = web.AppKey("sso", SsoService)
