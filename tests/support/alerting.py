"""Helpers for tests of the alerting service: logins from other loopback addresses, the alert
list through the gateway, and audit record details."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.support.stack import PASSWORD, Stack


def login_from(stack: Stack, username: str, source: str, user_agent: str,
               password: str = PASSWORD) -> httpx.Response:
    """A password login at Keycloak from the loopback address ``source`` with ``user_agent``."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, headers={"User-Agent": user_agent}, timeout=30) as client:
        return client.post(f"{stack.stack.issuer}/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "wms-cli", "username": username, "password": password})


def detail_of(record: dict[str, Any]) -> dict[str, Any]:
    """An audit record's ``detail`` (raw SQL gives JSON text on SQLite, a dict on PostgreSQL)."""
    detail = record["detail"]
    return json.loads(detail) if isinstance(detail, str) else detail


def alerts_api(stack: Stack, **params: str) -> dict[str, Any]:
    """The alert list through the gateway, as admin1 (alerts:view)."""
    with stack.client("admin1") as admin:
        resp = admin.get("/_gateway/alerts", params={"limit": "1000", **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_alert(stack: Stack, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
    """The first alert (via the gateway's API) ``predicate`` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        found = [a for a in alerts_api(stack)["alerts"] if predicate(a)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "no such alert"
        time.sleep(0.3)
