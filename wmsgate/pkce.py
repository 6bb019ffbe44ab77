"""The authorization request of the public client (OAuth 2.0 code flow with PKCE, RFC 7636 S256)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthorizationRequest:
    """One login attempt: the query of the authorization URL and what checks its answer.

    Attributes:
        params: query parameters of the authorization endpoint.
        verifier: the PKCE code verifier sent with the code exchange.
        state: the value the redirect must carry back (CSRF protection).
    """

    params: dict[str, str]
    verifier: str
    state: str


def authorization_request(client_id: str, redirect_uri: str, acr_values: str | None = None,
                          max_age: int | None = None) -> AuthorizationRequest:
    """A fresh authorization request (``scope=openid``, S256 challenge, random state).

    Args:
        acr_values: e.g. ``"mfa"`` to ask for step-up (OpenID Connect Core 3.1.2.1).
        max_age: seconds; forces re-authentication when the last one is older.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": "openid",
              "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
    if acr_values:
        params["acr_values"] = acr_values
    if max_age is not None:
        params["max_age"] = str(max_age)
    return AuthorizationRequest(params, verifier, state)
