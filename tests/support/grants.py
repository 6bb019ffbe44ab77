"""Temporary grants made the way admins make them: requested by admin1, approved by admin2."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx

from tests.support.stack import PASSWORD, Stack

SHANGHAI = ZoneInfo("Asia/Shanghai")


def grant_now(stack: Stack, username: str, role: str, warehouse: str, hours: int = 2) -> str:
    """Grant ``role`` in ``warehouse`` to ``username`` from now for ``hours``; returns the grant id."""
    start = dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=1)
    row = {"username": username, "display_name": "", "role": role, "warehouses": warehouse, "channels": "*",
           "order_types": "*", "valid_from": start.isoformat(timespec="seconds"),
           "valid_until": (start + dt.timedelta(hours=hours)).isoformat(timespec="seconds")}
    with httpx.Client(base_url=stack.proxy, timeout=60,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('admin1')}"}) as admin1:
        held = admin1.post("/_gateway/access/bulk-grant", json={"rows": [row]})
    assert held.status_code == 202, held.text
    with httpx.Client(base_url=stack.proxy, timeout=60,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('admin2')}"}) as admin2:
        done = admin2.post(f"{held.headers['Location']}/approve").json()
    assert done["status"] == "executed" and done["result"]["status"] == 200, done
    [found] = stack.audit.sql("SELECT grant_id FROM grants WHERE username = :u AND swept_ms IS NULL", {"u": username})
    return str(found["grant_id"])


def password_token(stack: Stack, username: str) -> str:
    """A fresh access token of a (non-OTP) person."""
    resp = httpx.post(f"{stack.stack.issuer}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "password", "client_id": "wms-cli", "username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])
