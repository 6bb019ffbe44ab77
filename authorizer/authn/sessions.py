"""Browser sessions of the SSO login (OIDC authorization code flow), kept in the shared store.

A browser holds only a random session id in a cookie; the store keeps the SHA-256 of
that id (a database reader cannot replay cookies) with the person's tokens. Every
proxy process sees the same sessions, so a logout, a back-channel logout from
Keycloak or an offboarding through any process ends the session everywhere.

Ids rotate: a new id at login, at step-up and at every token refresh. The replaced
id keeps working for a short grace period so requests already in flight with the old
cookie are not logged out.

Also here: pending logins (state, nonce, PKCE verifier, where to return), bound to
the browser that started them by a second random value in a short-lived cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("username", String(255), nullable=False),
    Column("sid", String(128), nullable=False, default=""),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text, nullable=False, default=""),
    Column("id_token", Text, nullable=False, default=""),
    Column("access_expires_ms", BigInteger, nullable=False),
    Column("refresh_expires_ms", BigInteger, nullable=False, default=0),
    Column("csrf", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("replaced_by", String(64), nullable=True),
    Column("grace_until_ms", BigInteger, nullable=True),
    Index("browser_sessions_sid", "sid"),
    Index("browser_sessions_user", "user_id"),
)

pending_logins = Table(
    "sso_pending_logins",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("binding_hash", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("return_to", Text, nullable=False),
    Column("acr", String(32), nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def now_ms() -> int:
    """The current time, milliseconds since the epoch (UTC)."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint returned, with absolute expiry times (epoch ms; 0 = unknown)."""

    access_token: str
    refresh_token: str
    id_token: str
    access_expires_ms: int
    refresh_expires_ms: int

    @classmethod
    def from_response(cls, token: dict[str, Any], id_token: str = "", at_ms: int | None = None) -> Tokens:
        """From a token response (``expires_in`` / ``refresh_expires_in`` in seconds, RFC 6749 §5.1).

        Args:
            token: the response document.
            id_token: the ID token to keep when a refresh response carries none.
            at_ms: when the response was received (default: now).
        """
        at = at_ms if at_ms is not None else now_ms()
        refresh_in = int(token.get("refresh_expires_in") or 0)
        return cls(access_token=str(token["access_token"]), refresh_token=str(token.get("refresh_token") or ""),
                   id_token=str(token.get("id_token") or id_token),
                   access_expires_ms=at + int(token.get("expires_in") or 60) * 1000,
                   refresh_expires_ms=at + refresh_in * 1000 if refresh_in else 0)


@dataclass(frozen=True)
class BrowserSession:
    """One signed-in browser.

    Attributes:
        id_hash: SHA-256 of the cookie value (the store never holds the value).
        user_id, username: who.
        sid: Keycloak's session id (the ID token's ``sid``), for back-channel logout.
        tokens: the current tokens.
        csrf: the synchronizer token of the gateway's own forms.
        created_ms, last_seen_ms: epoch ms.
    """

    id_hash: str
    user_id: str
    username: str
    sid: str
    tokens: Tokens
    csrf: str
    created_ms: int
    last_seen_ms: int


@dataclass(frozen=True)
class PendingLogin:
    """A login started at Keycloak and not yet come back (OIDC ``state``, ``nonce``, PKCE verifier)."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    acr: str
    created_ms: int


def _session(row: Mapping[str, Any]) -> BrowserSession:
    return BrowserSession(
        id_hash=row["id_hash"], user_id=row["user_id"], username=row["username"], sid=row["sid"],
        tokens=Tokens(row["access_token"], row["refresh_token"], row["id_token"], row["access_expires_ms"],
                      row["refresh_expires_ms"]),
        csrf=row["csrf"], created_ms=row["created_ms"], last_seen_ms=row["last_seen_ms"])


class SessionStore:
    """Browser sessions and pending logins in the shared store.

    Args:
        engine: the store's engine (schema created by :func:`authorizer.db.create_schema`).
        idle_seconds: a session unused this long has ended.
        max_seconds: a session older than this has ended, whatever the tokens say.
        grace_seconds: how long a replaced id keeps working after rotation.
        login_seconds: how long a pending login may take.
    """

    def __init__(self, engine: AsyncEngine, idle_seconds: int = 1800, max_seconds: int = 12 * 3600,
                 grace_seconds: int = 30, login_seconds: int = 600) -> None:
        self._engine = engine
        self.idle_ms = idle_seconds * 1000
        self.max_ms = max_seconds * 1000
        self.grace_ms = grace_seconds * 1000
        self.login_ms = login_seconds * 1000

    # -- pending logins ---------------------------------------------------------------
    async def begin_login(self, return_to: str, acr: str, code_verifier: str) -> tuple[PendingLogin, str]:
        """Record a login about to be sent to Keycloak.

        Returns:
            The pending login and the browser binding value (goes into a short-lived cookie).
        """
        login = PendingLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                             code_verifier=code_verifier, return_to=return_to, acr=acr, created_ms=now_ms())
        binding = secrets.token_urlsafe(32)
        async with self._engine.begin() as conn:
            await conn.execute(delete(pending_logins).where(pending_logins.c.created_ms < now_ms() - self.login_ms))
            await conn.execute(insert(pending_logins), {
                "state": login.state, "binding_hash": _hash(binding), "nonce": login.nonce,
                "code_verifier": login.code_verifier, "return_to": login.return_to, "acr": login.acr,
                "created_ms": login.created_ms})
        return login, binding

    async def finish_login(self, state: str, binding: str | None) -> PendingLogin | None:
        """Take the pending login of ``state`` (once): None when unknown, expired, already used
        or started in another browser (``binding`` does not match; login CSRF)."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(pending_logins).where(pending_logins.c.state == state))).first()
            if row is None:
                return None
            await conn.execute(delete(pending_logins).where(pending_logins.c.state == state))
        if binding is None or not secrets.compare_digest(row.binding_hash, _hash(binding)):
            return None
        if row.created_ms < now_ms() - self.login_ms:
            return None
        return PendingLogin(row.state, row.nonce, row.code_verifier, row.return_to, row.acr, row.created_ms)

    # -- sessions -----------------------------------------------------------------------
    async def create(self, user_id: str, username: str, sid: str, tokens: Tokens) -> tuple[BrowserSession, str]:
        """Start a session.

        Returns:
            The session and the cookie value (shown once; only its hash is stored).
        """
        cookie = secrets.token_urlsafe(32)
        at = now_ms()
        row = {"id_hash": _hash(cookie), "user_id": user_id, "username": username, "sid": sid,
               "access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
               "id_token": tokens.id_token, "access_expires_ms": tokens.access_expires_ms,
               "refresh_expires_ms": tokens.refresh_expires_ms, "csrf": secrets.token_urlsafe(32),
               "created_ms": at, "last_seen_ms": at, "replaced_by": None, "grace_until_ms": None}
        async with self._engine.begin() as conn:
            await conn.execute(insert(browser_sessions), row)
        return _session(row), cookie

    async def get(self, cookie: str) -> BrowserSession | None:
        """The live session of a cookie value (following a rotation inside its grace period);
        None when unknown, ended, idle too long or too old. Touches ``last_seen``."""
        t = browser_sessions.c
        at = now_ms()
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(browser_sessions).where(t.id_hash == _hash(cookie)))).first()
            if row is not None and row.replaced_by is not None:
                if (row.grace_until_ms or 0) < at:
                    return None
                row = (await conn.execute(select(browser_sessions).where(t.id_hash == row.replaced_by))).first()
            if row is None or row.replaced_by is not None:
                return None
            if row.last_seen_ms < at - self.idle_ms or row.created_ms < at - self.max_ms:
                await conn.execute(delete(browser_sessions).where(t.id_hash == row.id_hash))
                return None
            if at - row.last_seen_ms > 5000:  # coarse, to keep reads cheap
                await conn.execute(update(browser_sessions).where(t.id_hash == row.id_hash).values(last_seen_ms=at))
        return _session(dict(row._mapping))

    async def rotate(self, session: BrowserSession, tokens: Tokens | None = None) -> tuple[BrowserSession, str] | None:
        """Give ``session`` a new id (and new tokens, after a refresh or step-up); the old id
        works for the grace period. None when the session ended meanwhile (or another
        request rotated it first: that request's cookie wins)."""
        t = browser_sessions.c
        cookie = secrets.token_urlsafe(32)
        new_hash = _hash(cookie)
        tokens = tokens or session.tokens
        at = now_ms()
        async with self._engine.begin() as conn:
            done = await conn.execute(update(browser_sessions)
                                      .where(t.id_hash == session.id_hash, t.replaced_by.is_(None))
                                      .values(replaced_by=new_hash, grace_until_ms=at + self.grace_ms))
            if done.rowcount != 1:
                return None
            row = {"id_hash": new_hash, "user_id": session.user_id, "username": session.username,
                   "sid": session.sid, "access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                   "id_token": tokens.id_token, "access_expires_ms": tokens.access_expires_ms,
                   "refresh_expires_ms": tokens.refresh_expires_ms, "csrf": session.csrf,
                   "created_ms": session.created_ms, "last_seen_ms": at, "replaced_by": None, "grace_until_ms": None}
            await conn.execute(insert(browser_sessions), row)
            await conn.execute(delete(browser_sessions).where(t.replaced_by.is_not(None), t.grace_until_ms < at))
        return _session(row), cookie

    async def end(self, session: BrowserSession) -> None:
        """End one session (and any id it replaced)."""
        t = browser_sessions.c
        async with self._engine.begin() as conn:
            await conn.execute(delete(browser_sessions).where(
                or_(t.id_hash == session.id_hash, t.replaced_by == session.id_hash)))

    async def end_by_sid(self, sid: str) -> int:
        """End every session of Keycloak session ``sid`` (back-channel logout). Returns how many were live."""
        return await self._end_where(browser_sessions.c.sid == sid)

    async def end_by_user(self, user_id: str) -> int:
        """End every session of a person (offboarding, back-channel logout without ``sid``).
        Returns how many were live."""
        return await self._end_where(browser_sessions.c.user_id == user_id)

    async def _end_where(self, condition: Any) -> int:
        t = browser_sessions.c
        async with self._engine.begin() as conn:
            await conn.execute(delete(browser_sessions).where(condition, t.replaced_by.is_not(None)))
            result = await conn.execute(delete(browser_sessions).where(condition))
        return int(result.rowcount or 0)
