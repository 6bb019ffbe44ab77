""""Not me" links: an alert about a person's login (a new device) carries a link that ends
every session of that person's account when they, or the security team, say the login was
not theirs.

The link is the credential (the person may no longer control their account): it names the
user and the alert, expires, and is signed with HMAC-SHA256 (RFC 2104) under a key derived
from the secret the gateway and the alerting service already share (the alert API token), so
only the alerting service makes them and only the gateway accepts them. Following it shows a
confirmation page; only the confirming POST acts, once per alert (:class:`NotMeUses`): a link
forwarded in a group chat cannot keep logging its person out. The worst a leaked link does
is log its own person out once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import BigInteger, Column, String, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

not_me_uses = Table(
    "not_me_uses", metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("used_ms", BigInteger, nullable=False),
)

PATH = "/_gateway/not-me"
#: How long a link works after its alert was sent (ms): a day.
LINK_LIFETIME_MS = 24 * 3600 * 1000
_CONTEXT = b"wmsgate not-me link v1"


@dataclass(frozen=True)
class NotMeClaim:
    """What a valid link says.

    Attributes:
        user_id, username: whose sessions to end.
        alert_id: the alert it came with.
        expires_ms: when the link stops working (ms since the epoch, UTC).
    """

    user_id: str
    username: str
    alert_id: str
    expires_ms: int


class BadNotMeLink(ValueError):
    """The link is malformed, forged or expired (``reason``: ``malformed``, ``bad_signature``, ``expired``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class NotMeLinks:
    """Makes and checks "not me" links.

    Args:
        shared_secret: the secret both services hold (the alert API token); the signing key
            is derived from it, so the token itself is never what signs.
    """

    def __init__(self, shared_secret: str) -> None:
        if len(shared_secret) < 16:
            raise ValueError("the shared secret of not-me links must be at least 16 characters")
        self._key = hmac.new(shared_secret.encode("utf-8"), _CONTEXT, hashlib.sha256).digest()

    def token(self, claim: NotMeClaim) -> str:
        """The signed token of ``claim`` (``<payload>.<signature>``, base64url)."""
        payload = _b64(json.dumps({"u": claim.user_id, "n": claim.username, "a": claim.alert_id,
                                   "e": claim.expires_ms}, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{_b64(hmac.new(self._key, payload.encode('ascii'), hashlib.sha256).digest())}"

    def url(self, base_url: str, claim: NotMeClaim) -> str:
        """The link on the gateway at ``base_url`` (its public origin)."""
        return f"{base_url.rstrip('/')}{PATH}?t={quote(self.token(claim))}"

    def verify(self, token: str, now_ms: int) -> NotMeClaim:
        """The claim of a token this deployment signed that has not expired at ``now_ms``.

        Raises:
            BadNotMeLink: malformed, a signature that does not match, or expired.
        """
        payload, _, signature = token.partition(".")
        if not payload or not signature or len(token) > 2048 or not token.isascii():
            raise BadNotMeLink("malformed")
        expected = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        try:
            given = _unb64(signature)
        except ValueError:
            raise BadNotMeLink("malformed") from None
        if not hmac.compare_digest(expected, given):
            raise BadNotMeLink("bad_signature")
        try:
            doc = json.loads(_unb64(payload))
            claim = NotMeClaim(str(doc["u"]), str(doc["n"]), str(doc["a"]), int(doc["e"]))
        except (ValueError, KeyError, TypeError):
            raise BadNotMeLink("malformed") from None
        if claim.expires_ms <= now_ms:
            raise BadNotMeLink("expired")
        return claim


class NotMeUses:
    """Which alerts' links were used (one use each), in the gateway's store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(self, claim: NotMeClaim, now_ms: int) -> bool:
        """Take the one use of ``claim``'s alert; False when it was taken before.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store failed.
        """
        try:
            async with self._engine.begin() as conn:
                await conn.execute(not_me_uses.insert().values(alert_id=claim.alert_id, user_id=claim.user_id,
                                                               used_ms=now_ms))
        except IntegrityError:
            return False
        return True

    async def release(self, claim: NotMeClaim) -> None:
        """Give the use back (ending the sessions failed: the link may be tried again)."""
        async with self._engine.begin() as conn:
            await conn.execute(not_me_uses.delete().where(not_me_uses.c.alert_id == claim.alert_id))
