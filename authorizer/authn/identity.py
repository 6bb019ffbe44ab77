"""Who is calling: bearer JWT verification against the issuer's JWKS.

Rules applied (RFC 7519 section 7.2, RFC 8725 "JWT best current practices"):
the signature algorithm must be on an allow-list (never ``none``, never HMAC
with a public key); the key is chosen by ``kid`` from the issuer's JWKS
(RFC 7517), refetched on an unknown ``kid`` at most every few seconds; ``iss``
must equal the configured issuer, ``aud`` must contain this gateway, ``exp``,
``nbf`` and ``iat`` are checked with a small leeway, and Keycloak's ``typ``
claim must say ``Bearer`` so ID and refresh tokens are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from cachetools import TLRUCache
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from authorizer.authz.scope import SCOPE_DIMENSIONS
from authorizer.config import OidcSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    """An authenticated person as the policy sees them.

    Attributes:
        user_id: the token's ``sub`` (Keycloak user id).
        username: ``preferred_username``.
        roles: realm roles from the token.
        scope: data scope per dimension (``warehouse``, ``channel``, ``order_type``);
            an absent dimension is an empty tuple, which grants nothing.
        client_id: ``azp``, the client the token was issued to.
        acr: authentication context class (RFC 9470), if present.
        auth_time: when the person authenticated, seconds since the epoch (UTC).
        session_id: Keycloak session id (``sid``), if present.
        expires_at: ``exp``, seconds since the epoch (UTC).
        token_id: ``jti``, if present.
        issued_at: ``iat``, seconds since the epoch (UTC); compared with revocations.
        grants: temporary grants ``(role, valid_from, valid_until)``, seconds since the
            epoch (UTC), from the ``wms_grants`` claim; outside its window the role does
            not count (the policy decides). An unreadable grant gets an empty window.
        attributes: every verified claim of the token, by name (user attributes mapped
            into the token, e.g. the caller's staff id per WMS tenant); the WMS identity
            headers read them (``{attr:NAME}``).
        reports_to: usernames the person reports to (their reporting line, from the
            ``wms_reports_to`` claim): an operation may refuse them as approvers of the
            person's requests.
        alert_since_ms: when the newest unresolved security alert demanding a step-up of the
            person opened (ms since the epoch, UTC; the gateway sets it from the alerting
            service, :mod:`authorizer.authn.step_up_demands`; never from the token), or None.
    """

    user_id: str
    username: str
    roles: tuple[str, ...]
    scope: dict[str, tuple[str, ...]] = field(default_factory=dict)
    client_id: str = ""
    acr: str | None = None
    auth_time: int | None = None
    session_id: str | None = None
    expires_at: int = 0
    token_id: str | None = None
    issued_at: int | None = None
    grants: tuple[tuple[str, int, int], ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    alert_since_ms: int | None = None
    reports_to: tuple[str, ...] = ()

    def policy_subject(self) -> dict[str, Any]:
        """The ``input.subject`` document sent to the PDP (``alert_since_ms`` and ``reports_to``
        only when set)."""
        subject = {
            "id": self.user_id,
            "username": self.username,
            "roles": list(self.roles),
            "scope": {dim: list(values) for dim, values in self.scope.items()},
            "client_id": self.client_id,
            "acr": self.acr,
            "auth_time": self.auth_time,
            "grants": [{"role": r, "valid_from": f, "valid_until": u} for r, f, u in self.grants],
        }
        if self.alert_since_ms is not None:
            subject["alert_since_ms"] = self.alert_since_ms
        if self.reports_to:
            subject["reports_to"] = list(self.reports_to)
        return subject


class AuthenticationError(Exception):
    """The request carries no usable credentials.

    Attributes:
        code: machine-readable code (``missing_token``, ``invalid_token``, ``token_expired``).
        detail: English description for ``WWW-Authenticate`` and logs.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

    def www_authenticate(self, realm: str) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 section 3): no error code when no token was sent."""
        if self.code == "missing_token":
            return f'Bearer realm="{realm}"'
        detail = self.detail.replace('"', "'")
        return f'Bearer realm="{realm}", error="invalid_token", error_description="{detail}"'


class IssuerUnavailable(Exception):
    """The issuer's discovery document or JWKS could not be fetched."""


class JwksCache:
    """The issuer's signing keys, fetched through OIDC discovery and cached.

    Args:
        session: the app's shared aiohttp session.
        issuer: issuer URL; keys come from the ``jwks_uri`` of its discovery document.
        min_refresh_seconds: minimum time between refetches triggered by unknown key ids.
        timeout_seconds: timeout of one fetch, seconds.
    """

    def __init__(self, session: aiohttp.ClientSession, issuer: str, min_refresh_seconds: float,
                 timeout_seconds: float = 5.0) -> None:
        self._session = session
        self._issuer = issuer
        self._min_refresh = min_refresh_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._keys: KeySet | None = None
        self._jwks_uri: str | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def jwks_uri(self) -> str | None:
        """The discovered JWKS URL, once known."""
        return self._jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session.get(url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise IssuerUnavailable(f"{url} answered {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise IssuerUnavailable(f"{url}: {exc!r}") from exc
        if not isinstance(data, dict):
            raise IssuerUnavailable(f"{url} did not answer a JSON object")
        return data

    async def fetch(self) -> KeySet:
        """Fetch the JWKS now (discovering its URL first if needed).

        Raises:
            IssuerUnavailable: discovery or JWKS fetch failed.
        """
        if self._jwks_uri is None:
            discovery = await self._get_json(f"{self._issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self._issuer or not isinstance(discovery.get("jwks_uri"), str):
                raise IssuerUnavailable("discovery document does not match the configured issuer")
            self._jwks_uri = discovery["jwks_uri"]
        data = await self._get_json(self._jwks_uri)
        try:
            keys = KeySet.import_key_set({"keys": [k for k in data.get("keys", []) if k.get("use", "sig") == "sig"]})
        except (JoseError, ValueError, TypeError) as exc:
            raise IssuerUnavailable(f"JWKS unusable: {exc}") from exc
        self._keys, self._fetched_at = keys, time.monotonic()
        return keys

    async def get(self) -> KeySet:
        """The cached key set, fetched on first use."""
        if self._keys is None:
            async with self._lock:
                if self._keys is None:
                    return await self.fetch()
        assert self._keys is not None
        return self._keys

    async def refresh_for_unknown_kid(self) -> KeySet | None:
        """Refetch after an unknown ``kid`` unless a fetch happened within the minimum interval.

        Returns:
            The new key set, or None when rate-limited.
        """
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_refresh:
                return None
            return await self.fetch()


def _claim_path(claims: dict[str, Any], dotted: str) -> Any:
    node: Any = claims
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


class TokenVerifier:
    """Verifies bearer tokens and turns their claims into a :class:`Principal`.

    Verified tokens are cached (bounded, until their ``exp``) so a client reusing
    a token costs one signature check, not one per request. A token stays valid
    until its ``exp`` (at most 5 minutes in the realm); revoking it sooner (disabled
    or offboarded people) is not implemented yet (issue "Dynamic access").

    Args:
        settings: issuer, audience, algorithms and claim names.
        jwks: the issuer's key cache.
        clock: seconds since the epoch (UTC); injectable for tests.
        cache_size: how many verified tokens to remember.
    """

    def __init__(self, settings: OidcSettings, jwks: JwksCache, clock: Callable[[], float] = time.time,
                 cache_size: int = 10_000) -> None:
        self._s = settings
        self._jwks = jwks
        self._clock = clock
        self._cache: TLRUCache[bytes, Principal] = TLRUCache(
            maxsize=cache_size, ttu=lambda _k, p, now: float(p.expires_at), timer=clock)

    async def verify(self, token: str) -> Principal:
        """Verify ``token`` (a compact JWS) and return its principal.

        Raises:
            AuthenticationError: signature, algorithm, issuer, audience, type or time check failed
                (``token_expired`` when only ``exp`` failed).
            IssuerUnavailable: the JWKS could not be fetched (the caller answers 503).
        """
        cache_key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        decoded = await with_issuer_keys(self._jwks, lambda keys: self._decode(token, keys))
        principal = self._principal(decoded)
        self._cache[cache_key] = principal
        return principal

    def _decode(self, token: str, keys: KeySet) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self._s.algorithms))
            registry = jwt.JWTClaimsRegistry(
                now=int(self._clock()),
                leeway=self._s.leeway_seconds,
                iss={"essential": True, "value": self._s.issuer},
                aud={"essential": True, "value": self._s.audience},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            )
            registry.validate(decoded.claims)
        except InvalidKeyIdError:
            raise
        except ExpiredTokenError:
            raise AuthenticationError("token_expired", "The access token expired") from None
        except JoseError as exc:
            raise AuthenticationError("invalid_token", f"The access token is invalid ({exc.error})") from None
        except (ValueError, TypeError, UnicodeError):
            raise AuthenticationError("invalid_token", "The access token is malformed") from None
        claims = decoded.claims
        if claims.get("typ", "Bearer") != "Bearer":
            raise AuthenticationError("invalid_token", "Only access tokens are accepted")
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        scope_claim = claims.get(self._s.scope_claim)
        scope_claim = scope_claim if isinstance(scope_claim, dict) else {}
        auth_time = claims.get("auth_time")
        return Principal(
            user_id=str(claims["sub"]),
            username=str(claims.get(self._s.username_claim) or claims["sub"]),
            roles=_strings(_claim_path(claims, self._s.roles_claim)),
            scope={dim: _strings(scope_claim.get(dim)) for dim in SCOPE_DIMENSIONS},
            client_id=str(claims.get("azp", "")),
            acr=str(claims["acr"]) if "acr" in claims else None,
            auth_time=int(auth_time) if isinstance(auth_time, (int, float)) else None,
            session_id=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            expires_at=int(claims["exp"]),
            token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
            issued_at=int(claims["iat"]) if isinstance(claims.get("iat"), (int, float)) else None,
            grants=tuple(parse_grant(g) for g in _strings(claims.get(self._s.grants_claim))),
            reports_to=tuple(_strings(claims.get(self._s.reports_to_claim))),
            attributes=dict(claims),
        )


async def with_issuer_keys(jwks: JwksCache, decode: Callable[[KeySet], T]) -> T:
    """Run ``decode`` with the issuer's keys, refetching them once (rate-limited) when the
    token names an unknown key id (key rotation at the issuer).

    Raises:
        AuthenticationError: ``invalid_token`` when the key stays unknown.
        IssuerUnavailable: the keys could not be fetched.
    """
    try:
        return decode(await jwks.get())
    except InvalidKeyIdError:
        refreshed = await jwks.refresh_for_unknown_kid()
        if refreshed is None:
            raise AuthenticationError("invalid_token", "The token is signed by an unknown key") from None
        try:
            return decode(refreshed)
        except InvalidKeyIdError:
            raise AuthenticationError("invalid_token", "The token is signed by an unknown key") from None


def parse_grant(text: str) -> tuple[str, int, int]:
    """``"role|valid_from|valid_until"`` (epoch seconds) as a tuple; malformed -> an empty window."""
    role, _, rest = text.partition("|")
    start, _, end = rest.partition("|")
    try:
        return role, int(start), int(end)
    except ValueError:
        return role, 0, 0


def bearer_token(authorization: list[str]) -> str:
    """Extract the token from the request's ``Authorization`` header values.

    Args:
        authorization: every ``Authorization`` header value of the request.

    Returns:
        The token string.

    Raises:
        AuthenticationError: no header, not a Bearer credential, or an empty token.
        ValueError: more than one ``Authorization`` header (ambiguous; the caller answers 400).
    """
    if len(authorization) > 1:
        raise ValueError("more than one Authorization header")
    if not authorization:
        raise AuthenticationError("missing_token", "No bearer token")
    scheme, _, token = authorization[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("invalid_token", "Authorization must be 'Bearer <token>'")
    return token
