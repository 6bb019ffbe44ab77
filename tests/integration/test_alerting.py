"""The alerting service against the real Keycloak (with the event listener), the real proxy
and its audit trail (issue "Keycloak event plugin and the alerting service", cases 1-6),
plus the alert API through the gateway and ``wmsgate alerts``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.support.alerting import detail_of, login_from, wait_alert
from tests.support.sinks import SmtpSink, WebhookSink
from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def test_case_1_two_devices_at_once_one_alert_within_5s_and_no_repeat(stack: Stack,
                                                                       webhook_sink: WebhookSink) -> None:
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("picker.hf")
    admin.user_logout(user_id)  # earlier tests left picker.hf sessions on 127.0.0.1
    stack.tokens.forget("picker.hf")
    started_ms = int(time.time() * 1000)

    def ours(alert: dict[str, Any]) -> bool:
        ips = {d["ip"] for d in alert["facts"].get("devices", [])}
        return alert["rule"] == "multi_device_login" and alert["subject"] == "picker.hf" \
            and ips == {"127.0.0.2", "127.0.0.3"} and alert["first_seen_ms"] >= started_ms

    desk, pda = "Mozilla/5.0 (Windows NT 10.0; Win64) WarehouseDesk/3", "Mozilla/5.0 (Linux; Android 14; PDA-HF-07)"
    assert login_from(stack, "picker.hf", "127.0.0.2", desk).status_code == 200
    assert login_from(stack, "picker.hf", "127.0.0.3", pda).status_code == 200
    second_login_done = time.monotonic()
    received = webhook_sink.wait_for(ours, timeout=10)
    assert received.at - second_login_done < 5, f"alert after {received.at - second_login_done:.2f}s"
    assert received.signature_ok
    alert = received.alert
    assert alert["severity"] == "high" and "picker.hf" in alert["title_zh"] and "picker.hf" in alert["title_en"]
    assert {d["user_agent"] for d in alert["facts"]["devices"]} == {desk, pda}
    assert len(alert["evidence"]) == 2 and all(e.startswith("user:") for e in alert["evidence"])

    # the same pair again inside the window: counted on the open alert, not sent again
    assert login_from(stack, "picker.hf", "127.0.0.2", desk).status_code == 200
    assert login_from(stack, "picker.hf", "127.0.0.3", pda).status_code == 200
    grouped = wait_alert(stack, lambda a: a["alert_id"] == alert["alert_id"] and a["count"] >= 3)
    assert grouped["status"] == "open" and len(grouped["evidence"]) == 4
    time.sleep(1.5)  # a second delivery would have gone out by now
    assert len(webhook_sink.matching(ours)) == 1


def test_case_2_six_role_changes_in_a_minute_make_a_privilege_burst_alert(
        stack: Stack, webhook_sink: WebhookSink, throwaway_user: Any) -> None:
    username, user_id = throwaway_user("burst")
    admin = stack.keycloak_admin()
    role = admin.get_realm_role("reviewer")
    for n in range(6):
        if n % 2 == 0:
            admin.assign_realm_roles(user_id, [role])
        else:
            admin.delete_realm_roles_of_user(user_id, [role])
    received = webhook_sink.wait_for(lambda a: a["rule"] == "privilege_burst" and a["subject"] == username)
    assert received.signature_ok
    facts = received.alert["facts"]
    assert facts["target"] == username and facts["target_id"] == user_id and facts["changes"] >= 5
    assert all(e.startswith("admin:") for e in received.alert["evidence"])
    stored = wait_alert(stack, lambda a: a["alert_id"] == received.alert["alert_id"] and a["count"] >= 2)
    assert len(stored["evidence"]) == 6  # the sixth change joined the alert


def test_case_3_an_order_delete_request_makes_a_high_risk_alert_naming_person_and_order(
        stack: Stack, webhook_sink: WebhookSink) -> None:
    order = stack.order(warehouse="SH", status="cancelled")["order_no"]
    with httpx.Client(base_url=stack.proxy, timeout=30,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('supervisor', max_age=300)}"}) as sup:
        held = sup.delete(f"/api/orders/{order}")
        assert held.status_code == 202, held.text
        decision_id = held.json()["decision_id"]
        try:
            received = webhook_sink.wait_for(lambda a: a["rule"] == "high_risk_operation"
                                             and a["facts"].get("resource_id") == order)
        finally:
            sup.post(f"{held.headers['Location']}/withdraw")
    alert = received.alert
    assert alert["subject"] == "supervisor" and alert["facts"]["person"] == "supervisor"
    assert alert["facts"]["operation"] == "order_delete" and alert["facts"]["phase"] == "held"
    assert order in alert["title_zh"] and "supervisor" in alert["title_zh"]
    assert alert["evidence"] == [f"decision:{decision_id}"]
    assert detail_of(stack.audit_record(decision_id))["high_risk"] == "order_delete"


def test_case_4_events_while_the_service_was_down_are_backfilled(
        stack: Stack, webhook_sink: WebhookSink, throwaway_user: Any) -> None:
    disabled, _ = throwaway_user("left", enabled=False)
    victim, _ = throwaway_user("victim")
    stack.stack.stop_alerting()
    try:
        for _ in range(3):
            assert login_from(stack, victim, "127.0.0.4", "curl/8.5", password="guess-123").status_code == 401
        refused = login_from(stack, disabled, "127.0.0.4", "curl/8.5")
        assert refused.status_code in (400, 401), refused.text
    finally:
        stack.stack.start_alerting()
    burst = webhook_sink.wait_for(lambda a: a["rule"] == "failed_login_burst" and a["subject"] == victim)
    blocked = webhook_sink.wait_for(lambda a: a["rule"] == "blocked_account_login" and a["subject"] == disabled)
    assert burst.alert["facts"]["failures"] == 3 and blocked.alert["facts"]["error"] == "user_disabled"
    keys = burst.alert["evidence"] + blocked.alert["evidence"]
    rows = stack.audit.sql("SELECT event_key, source FROM alert_events WHERE event_key IN "
                           f"({', '.join(':k' + str(i) for i in range(len(keys)))})",
                           {f"k{i}": k for i, k in enumerate(keys)}, url=stack.stack.alerts_url)
    assert {r["source"] for r in rows} == {"backfill"} and len(rows) == 4  # read from Keycloak, not pushed


def test_case_5_an_alert_waits_while_the_webhook_is_down_and_arrives_once_it_is_back(
        stack: Stack, webhook_sink: WebhookSink, throwaway_user: Any) -> None:
    disabled, _ = throwaway_user("gone", enabled=False)
    webhook_sink.down()
    try:
        login_from(stack, disabled, "127.0.0.5", "curl/8.5")
        alert = wait_alert(stack, lambda a: a["rule"] == "blocked_account_login" and a["subject"] == disabled)
        with stack.client("admin1") as admin:
            deadline = time.monotonic() + 15
            while True:
                doc = admin.get(f"/_gateway/alerts/{alert['alert_id']}").json()
                hook = next(d for d in doc["deliveries"] if d["notifier"] == "test-webhook")
                if hook["attempts"] >= 2:
                    break
                assert time.monotonic() < deadline, doc["deliveries"]
                time.sleep(0.3)
        assert hook["status"] == "pending" and hook["last_error"]
    finally:
        webhook_sink.up()
    received = webhook_sink.wait_for(lambda a: a["alert_id"] == alert["alert_id"], timeout=15)
    assert received.signature_ok
    with stack.client("admin1") as admin:  # the store notes the delivery just after the sink got it
        deadline = time.monotonic() + 10
        while True:
            hook = next(d for d in admin.get(f"/_gateway/alerts/{alert['alert_id']}").json()["deliveries"]
                        if d["notifier"] == "test-webhook")
            if hook["status"] == "sent" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert hook["status"] == "sent" and hook["attempts"] >= 3
    time.sleep(1)
    assert len(webhook_sink.matching(lambda a: a["alert_id"] == alert["alert_id"])) == 1


def test_case_6_alerts_are_e_mailed_through_smtp(stack: Stack, smtp_sink: SmtpSink, throwaway_user: Any) -> None:
    disabled, _ = throwaway_user("mailed", enabled=False)
    login_from(stack, disabled, "127.0.0.6", "curl/8.5")
    message = smtp_sink.wait_for(lambda m: disabled in str(m["Subject"]), timeout=20)
    assert message["To"] == "security@example.test" and message["From"] == "wms-alerts@example.test"
    assert str(message["Subject"]).startswith("[WMS 告警 alert/高 high]")
    body = message.get_content()
    assert (body.splitlines()[0].startswith("已停用、已离职或授权已到期的账号")
            and "disabled, offboarded or expired account" in body)
    assert message["X-WMS-Alert-Id"] and "127.0.0.6" in body


def test_alerts_are_acknowledged_and_resolved_through_the_gateway_by_admins_only(
        stack: Stack, throwaway_user: Any) -> None:
    disabled, _ = throwaway_user("acked", enabled=False)
    login_from(stack, disabled, "127.0.0.7", "curl/8.5")
    alert = wait_alert(stack, lambda a: a["subject"] == disabled)
    path = f"/_gateway/alerts/{alert['alert_id']}"
    with stack.client("picker.hf") as picker:
        assert_refused(picker.get("/_gateway/alerts"), 403)
        assert_refused(picker.post(f"{path}/acknowledge"), 403)
    with stack.client("admin1") as admin:
        acked = admin.post(f"{path}/acknowledge", json={"note": "正在核实 / checking with HR"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_by"] == "admin1"
        assert_refused(admin.post(f"{path}/acknowledge"), 409, "alert_state_conflict")
        assert_refused(admin.post(f"{path}/resolve", content=b"[1]"), 400, "bad_body")
        assert_refused(admin.get("/_gateway/alerts", params={"status": "closed"}), 400, "bad_alert_query")
        assert_refused(admin.get(f"/_gateway/alerts/{'0' * 32}"), 404, "alert_not_found")
        resolved = admin.post(f"{path}/resolve")
        assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "admin1"
        decision_id = resolved.headers["X-Decision-Id"]
    record = stack.audit_record(decision_id)
    assert (record["module"], record["verb"], record["resource_id"]) == ("alerts", "update", alert["alert_id"])
    assert record["username"] == "admin1" and detail_of(record)["alert_action"] == "resolve"


def test_wmsgate_alerts_cli_lists_and_acknowledges(stack: Stack, throwaway_user: Any) -> None:
    disabled, _ = throwaway_user("cli", enabled=False)
    login_from(stack, disabled, "127.0.0.8", "curl/8.5")
    alert = wait_alert(stack, lambda a: a["subject"] == disabled)
    env = {**os.environ, "WMSGATE_TOKEN": stack.tokens.get("admin1"), "WMSGATE_URL": stack.proxy}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wmsgate.cli", "alerts", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    listed = cli("list", "--status", "open", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(alert["alert_id"]))
    assert "未处理 open" in line and disabled in line
    acked = cli("ack", alert["alert_id"], "--note", "HR confirmed")
    assert acked.returncode == 0 and "处理中 / acknowledged" in acked.stdout
    again = cli("ack", alert["alert_id"])
    assert again.returncode == 1 and "alert_state_conflict" in again.stderr
    env["WMSGATE_TOKEN"] = stack.tokens.get("picker.hf")
    refused = cli("list")
    assert refused.returncode == 1 and "403" in refused.stderr
