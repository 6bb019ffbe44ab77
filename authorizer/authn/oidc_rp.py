"""The gateway as an OpenID Connect relying party for browsers (authlib + joserfc).

Authorization code flow with PKCE (RFC 7636, S256) against Keycloak with the
confidential client ``wms-gateway``; ID tokens checked per OpenID Connect Core §3.1.3.7
(issuer, audience, expiry, nonce); refresh per RFC 6749 §6; RP-initiated logout
(OpenID Connect RP-Initiated Logout 1.0) and back-channel logout tokens (OpenID
Connect Back-Channel Logout 1.0 §2.6).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from cachetools import TTLCache
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from authorizer.authn.identity import AuthenticationError, IssuerUnavailable, JwksCache, with_issuer_keys

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Oldest logout token acted on, seconds after its ``iat`` (Keycloak sends them at once).
LOGOUT_TOKEN_MAX_AGE = 300


class LoginFailed(Exception):
    """The code exchange or refresh was refused (``invalid_grant``: the Keycloak session is gone)."""


@dataclass(frozen=True)
class RpSettings:
    """The relying party's registration.

    Attributes:
        issuer: the realm's issuer URL.
        client_id, client_secret: the confidential client (``wms-gateway``).
        redirect_uri: the callback registered at Keycloak (absolute URL).
        algorithms: accepted signature algorithms.
        leeway_seconds: clock skew allowed on ``exp``/``iat``.
        timeout_seconds: timeout of one call to Keycloak.
        verify: TLS verification for calls to Keycloak: True (system CAs) or an SSL context
            (system CAs plus the organisation's, :func:`authorizer.tls.client_context`).
    """

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    leeway_seconds: int = 30
    timeout_seconds: float = 10.0
    verify: ssl.SSLContext | bool = True


def new_code_verifier() -> str:
    """A PKCE code verifier: 64 unreserved characters (RFC 7636 §4.1 allows 43-128)."""
    return str(generate_token(64))


class RelyingParty:
    """Talks to Keycloak's endpoints for browser logins.

    Args:
        settings: the registration.
        jwks: the issuer's key cache (shared with the bearer-token verifier).
    """

    def __init__(self, settings: RpSettings, jwks: JwksCache) -> None:
        self.settings = settings
        self._jwks = jwks
        self._metadata: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        # jti of logout tokens already acted on (replays are refused; kept as long as a token is accepted)
        self._seen_logout_tokens: TTLCache[str, bool] = TTLCache(maxsize=100_000, ttl=LOGOUT_TOKEN_MAX_AGE * 2)

    def _client(self) -> AsyncOAuth2Client:
        s = self.settings
        return AsyncOAuth2Client(client_id=s.client_id, client_secret=s.client_secret,
                                 token_endpoint_auth_method="client_secret_basic", scope="openid",
                                 redirect_uri=s.redirect_uri, code_challenge_method="S256",
                                 timeout=s.timeout_seconds, verify=s.verify)

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once).

        Raises:
            IssuerUnavailable: it could not be fetched or does not match the issuer.
        """
        if self._metadata is None:
            async with self._lock:
                if self._metadata is None:
                    url = f"{self.settings.issuer}/.well-known/openid-configuration"
                    async with httpx2.AsyncClient(timeout=self.settings.timeout_seconds,
                                                  verify=self.settings.verify) as client:
                        try:
                            resp = await client.get(url)
                            doc = resp.json() if resp.status_code == 200 else None
                        except (httpx2.HTTPError, ValueError) as exc:
                            raise IssuerUnavailable(f"{url}: {exc!r}") from exc
                    if not isinstance(doc, dict) or doc.get("issuer") != self.settings.issuer:
                        raise IssuerUnavailable(f"{url}: no discovery document for {self.settings.issuer}")
                    self._metadata = doc
        assert self._metadata is not None
        return self._metadata

    async def authorization_url(self, state: str, nonce: str, code_verifier: str, acr: str = "",
                                max_age: int | None = None, prompt: str | None = None) -> str:
        """Where to send the browser to log in (with ``acr_values`` / ``max_age`` for step-up, RFC 9470).

        Raises:
            IssuerUnavailable: discovery failed.
        """
        meta = await self.metadata()
        extra: dict[str, Any] = {"nonce": nonce}
        if acr:
            extra["acr_values"] = acr
        if max_age is not None:
            extra["max_age"] = str(max_age)
        if prompt:
            extra["prompt"] = prompt
        async with self._client() as client:
            url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state,
                                                     code_verifier=code_verifier, **extra)
        return str(url)

    async def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        """Trade an authorization code for tokens.

        Raises:
            LoginFailed: Keycloak refused the code.
            IssuerUnavailable: Keycloak could not be reached.
        """
        meta = await self.metadata()
        return await self._token_call(lambda c: c.fetch_token(
            meta["token_endpoint"], grant_type="authorization_code", code=code, code_verifier=code_verifier,
            redirect_uri=self.settings.redirect_uri))

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """New tokens for a refresh token (RFC 6749 §6).

        Raises:
            LoginFailed: refused (the Keycloak session ended, the person was disabled).
            IssuerUnavailable: Keycloak could not be reached.
        """
        meta = await self.metadata()
        return await self._token_call(lambda c: c.refresh_token(meta["token_endpoint"], refresh_token=refresh_token))

    async def _token_call(self, call: Any) -> dict[str, Any]:
        async with self._client() as client:
            try:
                token = await call(client)
            except OAuthError as exc:
                raise LoginFailed(f"{exc.error}: {exc.description}") from None
            except Exception as exc:
                raise IssuerUnavailable(f"token endpoint: {exc!r}") from exc
        if not isinstance(token, dict) or "access_token" not in token:
            raise LoginFailed("the token endpoint answered without an access token")
        return dict(token)

    async def end_session_url(self, id_token_hint: str, post_logout_redirect_uri: str) -> str | None:
        """Keycloak's logout page for this session (RP-initiated logout), or None if it has none."""
        meta = await self.metadata()
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {"client_id": self.settings.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return f"{endpoint}?{urlencode(params)}"

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Check an ID token from the code exchange and return its claims.

        Raises:
            AuthenticationError: signature, issuer, audience, expiry or nonce is wrong.
            IssuerUnavailable: the keys could not be fetched.
        """
        claims = await with_issuer_keys(self._jwks, lambda keys: self._claims(id_token, keys, expiring=True))
        if claims.get("nonce") != nonce:
            raise AuthenticationError("invalid_token", "The ID token's nonce does not match the login")
        audiences = claims["aud"] if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise AuthenticationError("invalid_token", "The ID token was issued to another party (azp)")
        return claims

    async def verify_logout_token(self, logout_token: str) -> dict[str, Any]:
        """Check a back-channel logout token (signed, for this client, with the logout event as a
        JSON object, a ``sid`` or ``sub``, no ``nonce``, a ``jti`` not seen before, issued in the
        last five minutes) and return its claims (OIDC Back-Channel Logout 1.0 §2.6).

        Raises:
            AuthenticationError: it is not a valid logout token.
            IssuerUnavailable: the keys could not be fetched.
        """
        claims = await with_issuer_keys(self._jwks, lambda keys: self._claims(logout_token, keys, expiring=False))
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise AuthenticationError("invalid_token", "Not a logout token (no back-channel logout event)")
        if "nonce" in claims or not (claims.get("sid") or claims.get("sub")):
            raise AuthenticationError("invalid_token", "A logout token needs sid or sub and no nonce")
        jti, iat = claims.get("jti"), claims.get("iat")
        if not isinstance(jti, str) or not jti:
            raise AuthenticationError("invalid_token", "A logout token needs a jti")
        if not isinstance(iat, (int, float)) or iat < time.time() - LOGOUT_TOKEN_MAX_AGE - self.settings.leeway_seconds:
            raise AuthenticationError("invalid_token", "The logout token is too old")
        if jti in self._seen_logout_tokens:
            raise AuthenticationError("invalid_token", "The logout token was already used")
        self._seen_logout_tokens[jti] = True
        return claims

    def _claims(self, token: str, keys: KeySet, expiring: bool) -> dict[str, Any]:
        s = self.settings
        try:
            decoded = jwt.decode(token, keys, algorithms=list(s.algorithms))
            rules: dict[str, Any] = {"iss": {"essential": True, "value": s.issuer},
                                     "aud": {"essential": True, "value": s.client_id},
                                     "iat": {"essential": True}}
            if expiring:
                rules["exp"] = {"essential": True}
            jwt.JWTClaimsRegistry(now=int(time.time()), leeway=s.leeway_seconds, **rules).validate(decoded.claims)
        except InvalidKeyIdError:
            raise  # with_issuer_keys refetches the keys once
        except JoseError as exc:
            raise AuthenticationError("invalid_token", f"The token is invalid ({exc.error})") from None
        except (ValueError, TypeError, UnicodeError):
            raise AuthenticationError("invalid_token", "The token is malformed") from None
        return dict(decoded.claims)
