"""Log in to Keycloak the way a browser does (authorization code flow with PKCE, RFC 7636),
by posting Keycloak's own login forms, OTP included. For tests and scripts without a browser.

The redirect goes to the loopback URI of the public client (RFC 8252); nothing listens
there, the code is read from the ``Location`` header instead.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.device import TEST_DEVICE_UA
from wmsgate.pkce import authorization_request

REDIRECT_URI = "http://127.0.0.1:8765/callback"
_FORM_ACTION = re.compile(r'<form[^>]*id="(kc-[a-z-]+)"[^>]*action="([^"]+)"', re.S)


def browser_client() -> httpx.Client:
    """An HTTP client that keeps cookies the way a browser does on a loopback origin.

    Browsers treat http://127.0.0.1 as a secure context and send ``Secure`` cookies
    there; Keycloak marks its session cookies ``Secure``, so this client clears the
    flag on what it stores (httpx would otherwise never send them over http).
    """
    client = httpx.Client(timeout=30, headers={"User-Agent": TEST_DEVICE_UA})

    def loopback_secure_cookies(response: httpx.Response) -> None:
        response.read()
        client.cookies.extract_cookies(response)
        for cookie in client.cookies.jar:
            cookie.secure = False

    client.event_hooks["response"] = [loopback_secure_cookies]
    return client


class LoginFailed(AssertionError):
    """Keycloak did not issue a code (wrong credentials, unexpected page)."""


def _form(page: str) -> tuple[str, str]:
    match = _FORM_ACTION.search(page)
    if not match:
        raise LoginFailed(f"no Keycloak form on the page: {page[:300]!r}")
    return match.group(1), html.unescape(match.group(2))


def code_flow_login(issuer: str, username: str, password: str, otp: str | None = None,
                    client_id: str = "wms-cli", acr_values: str | None = None, max_age: int | None = None,
                    client: httpx.Client | None = None, new_password: str | None = None) -> dict[str, Any]:
    """Run the authorization code flow with PKCE through Keycloak's login pages.

    Args:
        issuer: realm issuer URL.
        username, password: the first factor.
        otp: the TOTP code, posted when Keycloak shows the OTP form.
        acr_values: e.g. ``"mfa"`` to ask for step-up (OpenID Connect Core 3.1.2.1).
        max_age: seconds; forces re-authentication when the last one is older.
        client: an ``httpx.Client`` whose cookies are the browser's (reuse it to
            step up within an existing Keycloak session); a new one when None.
        new_password: answers Keycloak's "update password" form (first login with a
            temporary password).

    Returns:
        The token endpoint's JSON answer (``access_token``, ``id_token``, ...).

    Raises:
        LoginFailed: Keycloak answered with something other than the expected forms or a code.
    """
    own = client is None
    browser = client or browser_client()
    try:
        auth = authorization_request(client_id, REDIRECT_URI, acr_values, max_age)
        verifier, state = auth.verifier, auth.state
        resp = browser.get(f"{issuer}/protocol/openid-connect/auth", params=auth.params)
        otp_sent = False
        for _ in range(8):
            if resp.status_code in (302, 303) and resp.headers["location"].startswith(REDIRECT_URI):
                break
            if resp.status_code in (302, 303):  # within Keycloak, e.g. to a required action
                resp = browser.get(resp.headers["location"])
                continue
            if resp.status_code != 200:
                raise LoginFailed(f"unexpected {resp.status_code}: {resp.text[:300]}")
            form_id, action = _form(resp.text)
            if form_id == "kc-form-login":
                data = {"username": username, "password": password, "credentialId": ""}
            elif form_id == "kc-passwd-update-form":
                if new_password is None:
                    raise LoginFailed("Keycloak asks for a new password but none was given")
                data = {"password-new": new_password, "password-confirm": new_password}
            elif form_id == "kc-otp-login-form":
                if otp is None:
                    raise LoginFailed("Keycloak asks for an OTP code but none was given")
                if otp_sent:  # the form came back: the code was refused (the caller tries a fresh one)
                    raise LoginFailed("Keycloak refused the OTP code")
                data, otp_sent = {"otp": otp}, True
            else:
                raise LoginFailed(f"unexpected Keycloak form {form_id}: {resp.text[:300]}")
            resp = browser.post(action, data=data)
        else:
            raise LoginFailed("no redirect with a code after the login forms")
        query = parse_qs(urlsplit(resp.headers["location"]).query)
        if query.get("state") != [state] or "code" not in query:
            raise LoginFailed(f"bad redirect: {resp.headers['location']}")
        token = browser.post(f"{issuer}/protocol/openid-connect/token", data={
            "grant_type": "authorization_code", "client_id": client_id, "code": query["code"][0],
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
        if token.status_code != 200:
            raise LoginFailed(f"code exchange failed: {token.status_code} {token.text}")
        return token.json()
    finally:
        if own:
            browser.close()
