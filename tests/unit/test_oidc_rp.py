"""ID token and back-channel logout token checks of the relying party (OIDC Core §3.1.3.7,
OIDC Back-Channel Logout 1.0 §2.6), with keys made here."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from authorizer.authn.identity import AuthenticationError
from authorizer.authn.oidc_rp import BACKCHANNEL_LOGOUT_EVENT, RelyingParty, RpSettings

ISSUER = "http://127.0.0.1:8180/realms/wms"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


class FixedKeys:
    """Stands in for the issuer's JWKS."""

    async def get(self) -> KeySet:
        return KeySet([KEY])

    async def refresh_for_unknown_kid(self) -> None:
        return None


def _rp() -> RelyingParty:
    return RelyingParty(RpSettings(ISSUER, "wms-gateway", "secret", "http://127.0.0.1:8080/_gateway/auth/callback"),
                        FixedKeys())  # type: ignore[arg-type]


def _sign(claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)


def _logout(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": "wms-gateway", "iat": int(time.time()), "jti": "j-1", "sid": "s-1",
              "sub": "u-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_logout_token_is_accepted_once() -> None:
    rp = _rp()
    token = _sign(_logout())
    assert asyncio.run(rp.verify_logout_token(token))["sid"] == "s-1"
    with pytest.raises(AuthenticationError, match="already used"):
        asyncio.run(rp.verify_logout_token(token))


@pytest.mark.parametrize("changes", [
    {"events": None}, {"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, {"nonce": "n"}, {"sid": None, "sub": None},
    {"jti": None}, {"iat": int(time.time()) - 3600}, {"aud": "another-client"}, {"iss": "http://evil/realms/wms"},
])
def test_malformed_or_stale_logout_tokens_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError):
        asyncio.run(_rp().verify_logout_token(_sign(_logout(**changes))))


def _id_token(**changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "wms-gateway", "iat": now, "exp": now + 300, "sub": "u-1", "nonce": "n-1"}
    claims.update(changes)
    return _sign(claims)


def test_id_tokens_need_the_login_nonce_and_azp_when_several_audiences() -> None:
    rp = _rp()
    assert asyncio.run(rp.verify_id_token(_id_token(), "n-1"))["sub"] == "u-1"
    with pytest.raises(AuthenticationError, match="nonce"):
        asyncio.run(rp.verify_id_token(_id_token(), "another-login"))
    with pytest.raises(AuthenticationError, match="azp"):
        asyncio.run(rp.verify_id_token(_id_token(aud=["wms-gateway", "other"], azp="other"), "n-1"))
    with pytest.raises(AuthenticationError):
        asyncio.run(rp.verify_id_token(_id_token(exp=int(time.time()) - 3600), "n-1"))
