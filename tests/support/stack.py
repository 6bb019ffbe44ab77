"""Helpers for tests against the real stack: raw requests, the WMS access log, tokens, audit lookups."""

from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp

from tests.support.auditdb import AuditDb
from tests.support.device import TEST_DEVICE_UA
from tests.support.form_login import LoginFailed, code_flow_login
from wmsgate.devstack import LocalStack
from wmsgate.realm import demo_overlay
from wmsgate.tools import REPO

STATE = REPO / ".state" / "test"
OVERLAY = demo_overlay()
PASSWORD = OVERLAY["password"]
TOTP = pyotp.TOTP(base64.b32encode(OVERLAY["totp_secret"].encode()).decode())
OTP_USERS = {u["username"] for u in OVERLAY["users"] if u.get("otp")}
SERVICE_TOKEN = "svc-token-for-tests"


@dataclass
class RawResponse:
    """An answer read by :func:`raw_request`."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def raw_request(base_url: str, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None) -> RawResponse:
    """Send a request with the target byte-for-byte as given (no client-side normalization)
    and headers possibly repeated."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"{host}:{port}")
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return RawResponse(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


class AccessLog:
    """The demo WMS's access log: what actually reached the WMS."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log (pass to :meth:`since`)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> list[dict[str, Any]]:
        """Entries written after ``mark``."""
        with self.path.open("rb") as fh:
            fh.seek(mark)
            return [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]


class Tokens:
    """Access tokens of demo users from the real Keycloak (password grant on wms-cli, TOTP when needed).

    Tokens are reused until a minute before they expire. Keycloak refuses a TOTP
    code twice, so a new login of an OTP user waits for the next code when needed.
    """

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}
        self._last_code: dict[str, str] = {}

    def next_code(self, username: str) -> str:
        """A TOTP code for ``username`` that Keycloak has not seen yet (it refuses a code twice)."""
        code = TOTP.now()
        while code == self._last_code.get(username):
            time.sleep(1)
            code = TOTP.now()
        self._last_code[username] = code
        return code

    def login(self, username: str, client_id: str = "wms-cli", issuer: str | None = None,
              password: str = PASSWORD) -> dict[str, Any]:
        """A fresh token response (not cached)."""
        form = {"grant_type": "password", "client_id": client_id, "username": username, "password": password}
        otp = username in OTP_USERS and issuer is None
        if otp:
            form["totp"] = self.next_code(username)
        resp = httpx.post(f"{issuer or self.issuer}/protocol/openid-connect/token", data=form, timeout=30,
                          headers={"User-Agent": TEST_DEVICE_UA})
        if otp and resp.status_code == 401:
            # A code sent as its 30-second window closes can arrive after it: try once more with
            # the next window's code (a wrong password still fails, with the same answer).
            time.sleep(1)
            form["totp"] = self.next_code(username)
            resp = httpx.post(f"{self.issuer}/protocol/openid-connect/token", data=form, timeout=30,
                              headers={"User-Agent": TEST_DEVICE_UA})
        assert resp.status_code == 200, f"login of {username} failed: {resp.status_code} {resp.text}"
        return resp.json()

    def mfa(self, username: str, max_age: int | None = None) -> str:
        """An access token from the browser-style code flow with step-up (acr_values=mfa, RFC 9470),
        the OTP entered on Keycloak's own form. Reused for up to 4 minutes."""
        key = (username, "mfa")
        cached = self._cache.get(key)
        if cached and cached[1] - time.time() > 60 and max_age is None:
            return cached[0]
        for attempt in range(3):
            try:
                data = code_flow_login(self.issuer, username, PASSWORD, otp=self.next_code(username),
                                       acr_values="mfa", max_age=max_age)
                break
            except LoginFailed:
                # a code typed as its 30-second window closes can reach Keycloak after it (the OTP
                # form comes back): again with the next window's code, as a person would
                if attempt == 2:
                    raise
                time.sleep(1)
        self._cache[key] = (data["access_token"], time.time() + min(data["expires_in"], 240))
        return data["access_token"]

    def forget(self, username: str) -> None:
        """Drop cached tokens of ``username`` (after their access changed) and wait past the
        current second, since a revocation refuses every token issued in its second."""
        for key in [k for k in self._cache if k[0] == username]:
            del self._cache[key]
        time.sleep(1.1 - (time.time() % 1))

    def get(self, username: str, client_id: str = "wms-cli") -> str:
        """A valid access token for ``username``."""
        cached = self._cache.get((username, client_id))
        if cached and cached[1] - time.time() > 60:
            return cached[0]
        data = self.login(username, client_id)
        self._cache[(username, client_id)] = (data["access_token"], time.time() + data["expires_in"])
        return data["access_token"]


@dataclass
class Stack:
    """Handles on the running stack for tests."""

    stack: LocalStack
    tokens: Tokens
    access_log: AccessLog
    audit: AuditDb

    @property
    def proxy(self) -> str:
        return self.stack.proxy_url

    def client(self, username: str | None = None, mfa: bool = False) -> httpx.Client:
        """An HTTP client for the proxy, authenticated as ``username`` when given
        (with a stepped-up MFA token when ``mfa``)."""
        headers = {}
        if username:
            token = self.tokens.mfa(username) if mfa else self.tokens.get(username)
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.proxy, headers=headers, timeout=30)

    def keycloak_admin(self) -> Any:
        """The master-realm admin API on realm wms (to arrange and restore people in tests)."""
        from keycloak import KeycloakAdmin

        return KeycloakAdmin(server_url=self.stack.keycloak_url + "/", username="kcadmin", password="kcadmin-demo",
                             realm_name="wms", user_realm_name="master")

    def restore_person(self, username: str, roles: list[str], attributes: dict[str, list[str]]) -> None:
        """Put a demo person back as the realm had them (enabled, these roles and scope attributes)."""
        admin = self.keycloak_admin()
        user_id = admin.get_user_id(username)
        current = [r for r in admin.get_realm_roles_of_user(user_id) if r["name"] not in
                   ("offline_access", "uma_authorization", "default-roles-wms")]
        if current:
            admin.delete_realm_roles_of_user(user_id, current)
        admin.assign_realm_roles(user_id, [admin.get_realm_role(r) for r in roles])
        admin.update_user(user_id, {"enabled": True, "attributes": attributes})
        self.tokens.forget(username)

    def wms(self) -> httpx.Client:
        """A client straight to the (unprotected) demo WMS, to see the truth behind the gateway."""
        return httpx.Client(base_url=self.stack.wms_url, timeout=30)

    def audit_record(self, decision_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The audit record of ``decision_id``, waiting for the writer's flush."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.audit.sql("SELECT * FROM audit_records WHERE decision_id = :d", {"d": decision_id})
            if rows:
                return rows[0]
            assert time.monotonic() < deadline, f"no audit record for decision {decision_id}"
            time.sleep(0.1)

    def order(self, **filters: str) -> dict[str, Any]:
        """The first WMS order matching ``filters`` (read directly from the WMS)."""
        with self.wms() as wms:
            rows = wms.get("/api/orders", params={**filters, "page_size": 1}).json()["items"]
        assert rows, f"no order with {filters}"
        return rows[0]


def assert_refused(resp: httpx.Response | RawResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Check the refusal shape: status, JSON with error code, bilingual reasons and a decision id."""
    status_code = resp.status_code if isinstance(resp, httpx.Response) else resp.status
    body = resp.json()
    assert status_code == status, f"expected {status}, got {status_code}: {body}"
    assert set(body) >= {"error", "reason_zh", "reason_en", "decision_id"}, body
    assert body["reason_zh"] and body["reason_en"]
    if code is not None:
        assert body["error"] == code, body
    return body
