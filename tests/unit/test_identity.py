"""Bearer token verification (RFC 7519, RFC 8725) with a fake key source; the real Keycloak is in tests/integration."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from authorizer.authn.identity import AuthenticationError, TokenVerifier, bearer_token
from authorizer.config import OidcSettings

ISSUER = "http://kc.test/realms/wms"
SETTINGS = OidcSettings(issuer=ISSUER, audience="wms-gateway", leeway_seconds=5)
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
ROTATED = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"})


class FakeJwks:
    """Stands in for JwksCache: serves a public key set and counts refreshes."""

    def __init__(self, keys: list[RSAKey], after_refresh: list[RSAKey] | None = None) -> None:
        self.keys = KeySet([RSAKey.import_key(k.as_dict(private=False)) for k in keys])
        self.after = after_refresh
        self.refreshes = 0

    async def get(self) -> KeySet:
        return self.keys

    async def refresh_for_unknown_kid(self) -> KeySet | None:
        self.refreshes += 1
        if self.after is None:
            return None
        self.keys = KeySet([RSAKey.import_key(k.as_dict(private=False)) for k in self.after])
        return self.keys


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": ["wms-gateway", "account"], "sub": "u-1", "typ": "Bearer", "azp": "wms-cli",
            "iat": now, "exp": now + 300, "preferred_username": "picker.hf", "acr": "1", "auth_time": now,
            "realm_access": {"roles": ["picker", "offline_access"]},
            "wms_scope": {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: RSAKey = KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key)


def verify(token: str, jwks: FakeJwks | None = None) -> Any:
    verifier = TokenVerifier(SETTINGS, jwks or FakeJwks([KEY]))  # type: ignore[arg-type]
    return asyncio.run(verifier.verify(token))


def test_valid_token_gives_the_principal() -> None:
    p = verify(sign(claims()))
    assert p.username == "picker.hf" and p.user_id == "u-1" and p.client_id == "wms-cli"
    assert p.roles == ("picker", "offline_access")
    assert p.scope == {"warehouse": ("HF",), "channel": ("*",), "order_type": ("*",)}
    assert p.acr == "1" and isinstance(p.auth_time, int)


def test_missing_scope_claim_means_empty_scope() -> None:
    p = verify(sign(claims(wms_scope=None)))
    assert p.scope == {"warehouse": (), "channel": (), "order_type": ()}


#: Claims given as seconds from now (``+600``) are set when the test runs, not when it is collected
#: (a run of the whole suite reaches the unit tests many minutes after collecting them).
@pytest.mark.parametrize("overrides, code", [
    ({"exp": -60}, "token_expired"),
    ({"iss": "http://kc.test/realms/other"}, "invalid_token"),
    ({"aud": "account"}, "invalid_token"),
    ({"aud": None}, "invalid_token"),
    ({"sub": None}, "invalid_token"),
    ({"typ": "ID"}, "invalid_token"),
    ({"typ": "Refresh"}, "invalid_token"),
    ({"nbf": +600}, "invalid_token"),
    ({"iat": +600}, "invalid_token"),
])
def test_claims_are_checked(overrides: dict[str, Any], code: str) -> None:
    now = int(time.time())
    timed = {k: now + v if k in ("exp", "nbf", "iat") else v for k, v in overrides.items()}
    with pytest.raises(AuthenticationError) as err:
        verify(sign(claims(**timed)))
    assert err.value.code == code


def test_small_clock_skew_is_tolerated() -> None:
    assert verify(sign(claims(exp=int(time.time()) - 2))).username == "picker.hf"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_alg_none_is_refused() -> None:
    token = f"{_b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{_b64(json.dumps(claims()).encode())}."
    with pytest.raises(AuthenticationError):
        verify(token)


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    head = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body = _b64(json.dumps(claims()).encode())
    secret = KEY.as_pem(private=False)
    sig = _b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthenticationError):
        verify(f"{head}.{body}.{sig}")


def test_signature_by_another_key_with_a_known_kid_is_refused() -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(AuthenticationError):
        verify(sign(claims(), key=impostor))


def test_unknown_kid_refreshes_the_key_set_once() -> None:
    jwks = FakeJwks([KEY], after_refresh=[KEY, ROTATED])
    assert verify(sign(claims(), key=ROTATED), jwks).username == "picker.hf"
    assert jwks.refreshes == 1


def test_unknown_kid_after_a_rate_limited_refresh_is_refused() -> None:
    jwks = FakeJwks([KEY])
    with pytest.raises(AuthenticationError):
        verify(sign(claims(), key=ROTATED), jwks)
    assert jwks.refreshes == 1


def test_verified_tokens_are_cached_until_they_expire() -> None:
    jwks = FakeJwks([KEY])
    verifier = TokenVerifier(SETTINGS, jwks)  # type: ignore[arg-type]
    token = sign(claims())
    first = asyncio.run(verifier.verify(token))
    jwks.keys = KeySet([])
    assert asyncio.run(verifier.verify(token)) is first


@pytest.mark.parametrize("values, code", [
    ([], "missing_token"), (["Basic abc"], "invalid_token"), (["Bearer"], "invalid_token"),
    (["Bearer a b"], "invalid_token"),
])
def test_bearer_header_parsing(values: list[str], code: str) -> None:
    with pytest.raises(AuthenticationError) as err:
        bearer_token(values)
    assert err.value.code == code


def test_bearer_header_is_case_insensitive_on_the_scheme() -> None:
    assert bearer_token(["bearer abc.def.ghi"]) == "abc.def.ghi"


def test_two_authorization_headers_are_ambiguous() -> None:
    with pytest.raises(ValueError):
        bearer_token(["Bearer a", "Bearer b"])


def test_www_authenticate_follows_rfc_6750() -> None:
    assert AuthenticationError("missing_token", "x").www_authenticate("wms") == 'Bearer realm="wms"'
    value = AuthenticationError("token_expired", "The access token expired").www_authenticate("wms")
    assert value == 'Bearer realm="wms", error="invalid_token", error_description="The access token expired"'
