""""Not me" links through the real Keycloak, alerting service and proxy: the alert about a
login from a new device carries a link; opening it changes nothing, confirming it ends every
session of the account (tokens refused, Keycloak sessions gone), acknowledges the alert and
is audited; a tampered link is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.alerting import alerts_api, detail_of, login_from
from tests.support.sinks import WebhookSink
from tests.support.stack import Stack


def test_the_not_me_link_of_a_new_device_alert_ends_every_session(
        stack: Stack, webhook_sink: WebhookSink, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    user, user_id = throwaway_user("victim", roles=("picker",), warehouses=("HF",))
    admin = stack.keycloak_admin()
    token = stack.tokens.get(user)
    started_ms = int(time.time() * 1000)
    assert login_from(stack, user, "127.0.0.2", "Mozilla/5.0 (Windows NT 10.0) Desk/1").status_code == 200
    assert login_from(stack, user, "127.0.0.3", "Mozilla/5.0 (Linux; Android 14) Thief/9").status_code == 200

    def ours(alert: dict[str, Any]) -> bool:
        return alert["rule"] == "multi_device_login" and alert["subject"] == user \
            and alert["first_seen_ms"] >= started_ms and "not_me_url" in alert["facts"]

    received = webhook_sink.wait_for(ours, timeout=15).alert
    link = urlsplit(received["facts"]["not_me_url"])
    assert f"{link.scheme}://{link.netloc}" == stack.proxy and link.path == "/_gateway/not-me"
    query = link.query.removeprefix("t=")
    with httpx.Client(base_url=stack.proxy, timeout=30) as browser:
        shown = browser.get(f"/_gateway/not-me?{link.query}")
        assert shown.status_code == 200 and user in shown.text and "不是我" in shown.text
        with httpx.Client(base_url=stack.proxy, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
            assert c.get("/api/picking/tasks", params={"page_size": 1}).status_code == 200  # nothing done yet
        assert len(admin.get_sessions(user_id)) >= 2

        tampered = browser.post("/_gateway/not-me", data={"t": query[:-2] + ("AA" if query[-2:] != "AA" else "BB")})
        assert tampered.status_code == 400 and "not_me_link_invalid" in tampered.text
        done = browser.post("/_gateway/not-me", data={"t": query})
        again = browser.post("/_gateway/not-me", data={"t": query})  # forwarded in a chat: used once only
    assert done.status_code == 200, done.text
    assert again.status_code == 400 and "not_me_link_invalid" in again.text and "used" in again.text
    assert "所有会话已结束" in done.text and "Every session" in done.text
    with httpx.Client(base_url=stack.proxy, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        refused = c.get("/api/picking/tasks", params={"page_size": 1})
    assert refused.status_code == 401 and refused.json()["error"] == "token_revoked"
    assert admin.get_sessions(user_id) == []

    record = stack.audit_record(done.headers["X-Decision-Id"])
    assert (record["module"], record["verb"], record["reason_code"]) == ("auth", "not_me", "not_me_sessions_ended")
    assert record["username"] == user and query not in str(record)  # the link is a credential: never stored
    assert detail_of(record)["alert_acknowledged"] is True
    [alert] = [a for a in alerts_api(stack)["alerts"] if a["alert_id"] == received["alert_id"]]
    assert alert["status"] == "acknowledged" and "not me" in alert["note"]
