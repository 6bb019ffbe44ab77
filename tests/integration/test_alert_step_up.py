"""Alerts that act, through the real Keycloak, alerting service, proxy and OPA: a login from a
new device (multi_device_login) makes the person's next high-risk request need a step-up, even
one that otherwise needs only approval, and resolving the alert ends it. (That an MFA login
after the alert clears it is the policy's rule, tested in rego/demo/wms/authz/high_risk_test.rego:
this throwaway keeper has no OTP.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.alerting import alerts_api, login_from, wait_alert
from tests.support.sinks import WebhookSink
from tests.support.stack import Stack, assert_refused


def _batch_change(stack: Stack, client: httpx.Client) -> httpx.Response:
    with stack.wms() as wms:
        batch = wms.get("/api/batches", params={"warehouse": "SZ", "page_size": 1}).json()["items"][0]
    return client.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-ALERT"})


def _withdraw(client: httpx.Client, resp: httpx.Response) -> None:
    assert resp.status_code == 202, resp.text
    client.post(f"{resp.headers['Location']}/withdraw")


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_a_new_device_login_makes_the_next_high_risk_request_step_up(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    user, _ = throwaway_user("keeper", roles=("warehouse_keeper",), warehouses=("SZ",))
    password_token = stack.tokens.get(user)  # a login before the alert
    with httpx.Client(base_url=stack.proxy, timeout=30,
                      headers={"Authorization": f"Bearer {password_token}"}) as before:
        _withdraw(before, _batch_change(stack, before))  # approval only: no step-up so far
        started_ms = int(time.time() * 1000)
        desk, pda = "Mozilla/5.0 (Windows NT 10.0; Win64) KeeperDesk/2", "Mozilla/5.0 (Linux; Android 14; PDA-SZ-03)"
        assert login_from(stack, user, "127.0.0.2", desk).status_code == 200
        assert login_from(stack, user, "127.0.0.3", pda).status_code == 200
        alert = wait_alert(stack, lambda a: a["rule"] == "multi_device_login" and a["subject"] == user
                           and a["first_seen_ms"] >= started_ms)
        try:
            challenged = _until(lambda: (r := _batch_change(stack, before)).status_code == 401 and r, 15,
                                "the gateway to learn of the alert")
            body = assert_refused(challenged, 401, "step_up_required")
            # max_age=0: a new authentication, however fresh the login from before the alert
            assert "mfa" in challenged.headers["WWW-Authenticate"] and "max_age=0" in challenged.headers[
                "WWW-Authenticate"]
            assert "change a batch" in body["reason_en"]
            assert before.get("/api/batches", params={"warehouse": "SZ", "page_size": 1}).status_code == 200
        finally:  # every device set seen makes its own alert: resolve them all
            ours = [a for a in alerts_api(stack)["alerts"] if a["subject"] == user and a["status"] != "resolved"]
            assert alert["alert_id"] in {a["alert_id"] for a in ours}
            with stack.client("admin1") as admin:
                for found in ours:
                    assert admin.post(f"/_gateway/alerts/{found['alert_id']}/resolve",
                                      json={"note": "the keeper's own PDA"}).status_code == 200
        # resolved: the old password login is enough again (once the gateway refreshed)
        again = _until(lambda: (r := _batch_change(stack, before)).status_code == 202 and r, 15,
                       "the gateway to learn the alert was resolved")
        _withdraw(before, again)


def test_logins_at_two_warehouses_minutes_apart_are_impossible_travel_and_act_the_same(
        stack: Stack, webhook_sink: WebhookSink, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    """The demo's sites are loopback ranges (config/alert-rules.yaml): HF 127.0.0.16/28, SH 127.0.0.32/28."""
    user, _ = throwaway_user("traveller", roles=("warehouse_keeper",), warehouses=("SZ",))
    token = stack.tokens.get(user)
    started_ms = int(time.time() * 1000)
    phone = "Mozilla/5.0 (Linux; Android 14; Keeper-Phone)"
    assert login_from(stack, user, "127.0.0.17", phone).status_code == 200  # at HF
    assert login_from(stack, user, "127.0.0.33", phone).status_code == 200  # at SH, seconds later

    def ours(alert: dict[str, Any]) -> bool:
        return alert["rule"] == "impossible_travel" and alert["subject"] == user \
            and alert["first_seen_ms"] >= started_ms

    received = webhook_sink.wait_for(ours, timeout=15).alert
    assert (received["facts"]["from_site"], received["facts"]["to_site"]) == ("HF", "SH")
    assert received["facts"]["not_me_url"].startswith(f"{stack.proxy}/_gateway/not-me?t=")
    with httpx.Client(base_url=stack.proxy, timeout=30, headers={"Authorization": f"Bearer {token}"}) as before:
        challenged = _until(lambda: (r := _batch_change(stack, before)).status_code == 401 and r, 15,
                            "the gateway to learn of the alert")
    assert_refused(challenged, 401, "step_up_required")
