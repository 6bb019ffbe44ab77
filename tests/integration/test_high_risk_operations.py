"""Issue "High-risk operations": step-up MFA (RFC 9470) and four-eyes approval, against the real stack."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _batch(stack: Stack, warehouse: str, skip: int = 0) -> dict[str, Any]:
    with stack.wms() as wms:
        return wms.get("/api/batches",
                       params={"warehouse": warehouse, "page_size": 1, "page": 1 + skip}).json()["items"][0]


def _hold(resp: httpx.Response) -> str:
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "pending" and body["approval_id"] and body["expires_at"]
    assert resp.headers["Location"] == f"/_gateway/approvals/{body['approval_id']}"
    return resp.headers["Location"]


def _audit_users(stack: Stack, approval_id: str) -> set[str]:
    rows = stack.audit.sql("SELECT username, reason_code FROM audit_records WHERE approval_id = :a", {"a": approval_id})
    return {f"{r['username']}:{r['reason_code']}" for r in rows}


def _replays(stack: Stack, mark: int, path: str) -> list[dict[str, Any]]:
    return [e for e in stack.access_log.since(mark) if e["path"].split("?")[0] == path
            and e["headers"].get("x-wms-approval-id")]


def test_case_1_keeper_changes_batch_expiry_supervisor_approves(stack: Stack) -> None:
    """keeper.hf changes a batch's expiry: 202; supervisor (with OTP) approves; the WMS shows the new
    expiry; the audit trail shows both people."""
    batch = _batch(stack, "HF")
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"expiry_date": "2030-12-31"}))
    assert not [e for e in stack.access_log.since(mark) if e["method"] == "PATCH"], "held request reached the WMS"
    with stack.wms() as wms:
        assert wms.get(f"/api/batches/{batch['batch_no']}").json()["expiry_date"] == batch["expiry_date"]
    with stack.client("supervisor", mfa=True) as supervisor:
        inbox = supervisor.get("/_gateway/approvals").json()["to_decide"]
        assert location.rsplit("/", 1)[1] in [a["approval_id"] for a in inbox]
        pending = supervisor.get(location).json()
        assert pending["request"]["body"] == '{"expiry_date":"2030-12-31"}'
        approved = supervisor.post(f"{location}/approve", json={"comment": "效期已核对 / expiry checked"})
    assert approved.status_code == 200, approved.text
    doc = approved.json()
    assert doc["status"] == "executed" and doc["result"]["status"] == 200
    assert doc["decisions"][0]["by"] == "supervisor" and doc["decisions"][0]["decision"] == "approve"
    with stack.wms() as wms:
        after = wms.get(f"/api/batches/{batch['batch_no']}").json()
    assert after["expiry_date"] == "2030-12-31" and after["updated_by"] == "keeper.hf"
    approval_id = doc["approval_id"]
    stack.audit_record(approved.headers["X-Decision-Id"])
    users = _audit_users(stack, approval_id)
    assert {"keeper.hf:approval_required", "supervisor:approved", "keeper.hf:approved_request_executed"} <= users
    with stack.client("keeper.hf") as keeper:
        mine = keeper.get(location).json()
    assert mine["status"] == "executed" and mine["result"]["body"]["expiry_date"] == "2030-12-31"


def test_case_2_requester_cannot_approve_own_request(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=1)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-X"}))
    with stack.client("keeper.hf", mfa=True) as keeper:
        resp = keeper.post(f"{location}/approve")
    assert_refused(resp, 403, "self_approval")
    with stack.client("supervisor", mfa=True) as supervisor:
        assert supervisor.post(f"{location}/reject", json={"comment": "not needed"}).json()["status"] == "rejected"
        assert_refused(supervisor.post(f"{location}/approve"), 409, "approval_not_pending")


def test_cases_3_and_4_order_delete_needs_mfa_and_an_in_scope_approver(stack: Stack) -> None:
    """supervisor deletes an order with a password-only token: 401 (RFC 9470); with MFA: 202. keeper.sh
    approving the HF request: 403 (scope); keeper.hf approves and the order is deleted once."""
    order = stack.order(warehouse="HF", status="cancelled")
    path = f"/api/orders/{order['order_no']}"
    with stack.client("supervisor") as password_only:
        challenged = password_only.delete(path)
    body = assert_refused(challenged, 401, "step_up_required")
    header = challenged.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="wms", error="insufficient_user_authentication"')
    assert 'acr_values="mfa"' in header and "max_age=300" in header
    assert "300" in body["reason_en"]
    token = stack.tokens.mfa("supervisor", max_age=300)
    assert _claims(token)["acr"] == "mfa"
    mark = stack.access_log.mark()
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {token}"}) as supervisor:
        location = _hold(supervisor.delete(path))
    with stack.client("keeper.sh", mfa=True) as keeper_sh:
        assert_refused(keeper_sh.post(f"{location}/approve"), 403, "out_of_scope")
    with stack.client("keeper.hf") as keeper_hf_password:
        assert_refused(keeper_hf_password.post(f"{location}/approve"), 401, "step_up_required")
    with stack.client("keeper.hf", mfa=True) as keeper_hf:
        done = keeper_hf.post(f"{location}/approve")
    assert done.status_code == 200 and done.json()["status"] == "executed" and done.json()["result"]["status"] == 204
    with stack.wms() as wms:
        assert wms.get(path).status_code == 404
    assert len(_replays(stack, mark, path)) == 1
    assert _replays(stack, mark, path)[0]["headers"]["x-wms-user"] == "supervisor"


def test_case_5_customs_change_needs_mfa_and_a_second_person(stack: Stack) -> None:
    order = stack.order(warehouse="HF", order_type="cross_border")
    path = f"/api/customs/{order['order_no']}"
    change = {"hs_code": "8471300000", "declared_value": 99.5, "currency": "USD", "origin_country": "CN"}
    with stack.client("keeper.hf") as password_only:
        assert_refused(password_only.put(path, json=change), 401, "step_up_required")
    with stack.client("keeper.hf", mfa=True) as keeper:
        location = _hold(keeper.put(path, json=change))
        assert_refused(keeper.post(f"{location}/approve"), 403)
    with stack.wms() as wms:
        assert wms.get(path).json()["hs_code"] != "8471300000"
    with stack.client("supervisor", mfa=True) as supervisor:
        assert supervisor.post(f"{location}/approve").json()["status"] == "executed"
    with stack.wms() as wms:
        assert wms.get(path).json()["hs_code"] == "8471300000"


def test_case_6_double_and_concurrent_approvals_run_once(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=2)
    path = f"/api/batches/{batch['batch_no']}"
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(path, json={"lot": "LOT-RACE"}))
    mark = stack.access_log.mark()
    token = stack.tokens.mfa("supervisor")
    results: list[int] = []

    def approve() -> None:
        with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            results.append(c.post(f"{location}/approve").status_code)

    threads = [threading.Thread(target=approve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # exactly one wins; the others are told the person already decided (403) or it is settled (409)
    assert results.count(200) == 1 and all(r in (403, 409) for r in results if r != 200), results
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {token}"}) as c:
        assert_refused(c.post(f"{location}/approve"), 409)
    assert len(_replays(stack, mark, path)) == 1


@pytest.fixture
def restore_proxy(stack: Stack) -> Any:
    yield
    stack.stack.restart_proxy()


def test_case_6_restart_between_approval_and_replay_runs_once(stack: Stack, restore_proxy: None) -> None:
    """The WMS is unreachable when the approval lands: nothing is sent, the approval is kept; after a
    proxy restart with the WMS back, the request runs exactly once."""
    batch = _batch(stack, "HF", skip=3)
    path = f"/api/batches/{batch['batch_no']}"
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(path, json={"lot": "LOT-AFTER-RESTART"}))
    stack.stack.restart_proxy({"upstream.url": "http://127.0.0.1:9", "approvals.sweep_seconds": 3600},
                              require_healthy=False)
    with stack.client("supervisor", mfa=True) as supervisor:
        pending = supervisor.post(f"{location}/approve")
    assert pending.status_code == 200 and pending.json()["status"] == "approved"
    assert "unreachable" in pending.json()["detail"]
    mark = stack.access_log.mark()
    stack.stack.restart_proxy({"approvals.sweep_seconds": 0.5})
    with stack.client("keeper.hf") as keeper:
        for _ in range(50):
            state = keeper.get(location).json()
            if state["status"] == "executed":
                break
            threading.Event().wait(0.2)
    assert state["status"] == "executed" and state["result"]["status"] == 200
    with stack.wms() as wms:
        assert wms.get(path).json()["lot"] == "LOT-AFTER-RESTART"
    threading.Event().wait(1.5)
    assert len(_replays(stack, mark, path)) == 1


def test_case_7_an_expired_request_cannot_be_approved(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=4)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-LATE"}))
    approval_id = location.rsplit("/", 1)[1]
    stack.audit.sql("UPDATE approvals SET expires_ms = expires_ms - 86400001 WHERE approval_id = :a",  # 24 h pass
                    {"a": approval_id})
    with stack.client("supervisor", mfa=True) as supervisor:
        resp = supervisor.post(f"{location}/approve")
        body = assert_refused(resp, 409, "approval_not_pending")
        assert "expired" in body["reason_en"]
        assert supervisor.get(location).json()["status"] == "expired"
    with stack.wms() as wms:
        assert wms.get(f"/api/batches/{batch['batch_no']}").json()["lot"] != "LOT-LATE"


def test_a_stranger_cannot_read_someone_elses_approval(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=5)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-PRIVATE"}))
    with stack.client("picker.hf") as picker:
        assert_refused(picker.get(location), 404, "approval_not_found")
        assert_refused(picker.post(f"{location}/approve"), 404, "approval_not_found")
        assert_refused(picker.post(f"{location}/reject"), 404, "approval_not_found")
        assert picker.get("/_gateway/approvals").json()["to_decide"] == []
        assert_refused(picker.get("/_gateway/approvals/" + "x" * 5000), 404, "approval_not_found")
    with stack.client("supervisor", mfa=True) as supervisor:
        supervisor.post(f"{location}/reject")


def test_approvers_see_the_whole_held_body_and_big_ones_are_refused(stack: Stack) -> None:
    """Review finding: an approver must see everything that will run; a long body could hide a field."""
    filler = "x" * (70 * 1024)
    with stack.client("keeper.hf", mfa=True) as keeper:
        resp = keeper.post("/api/inventory/adjust", json={"warehouse": "HF", "location": "A01-01", "sku": "SKU00001",
                                                          "reason": filler, "delta": -300})
    assert_refused(resp, 413, "held_body_too_large")


def test_a_request_whose_requester_lost_access_is_cancelled_not_run(stack: Stack) -> None:
    """Review finding: approval must not run a request of someone whose access was cut since."""
    batch = _batch(stack, "HF", skip=6)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-FIRED"}))
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("keeper.hf")
    admin.user_logout(user_id)  # a Keycloak admin ends keeper.hf's sessions: the watcher revokes their tokens
    try:
        threading.Event().wait(3)
        with stack.client("supervisor", mfa=True) as supervisor:
            resp = supervisor.post(f"{location}/approve")
            assert_refused(resp, 409, "request_no_longer_allowed")
            assert supervisor.get(location).json()["status"] == "withdrawn"
        with stack.wms() as wms:
            assert wms.get(f"/api/batches/{batch['batch_no']}").json()["lot"] != "LOT-FIRED"
    finally:
        stack.tokens.forget("keeper.hf")


def test_the_requester_can_withdraw_a_pending_request(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=7)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-OOPS"}))
        assert keeper.post(f"{location}/withdraw").json()["status"] == "withdrawn"
        assert_refused(keeper.post(f"{location}/withdraw"), 409, "approval_not_pending")
    with stack.client("supervisor", mfa=True) as supervisor:
        assert_refused(supervisor.post(f"{location}/withdraw"), 403, "not_the_requester")
        assert_refused(supervisor.post(f"{location}/approve"), 409, "approval_not_pending")


def test_approval_views_apply_the_viewers_field_masks(stack: Stack) -> None:
    """Review finding: a held customs change showed the declared value to a supervisor who may not see amounts."""
    order = stack.order(warehouse="HF", order_type="cross_border", status="shipped")
    change = {"hs_code": "8471300001", "declared_value": 12345.67, "currency": "USD", "origin_country": "CN"}
    with stack.client("keeper.hf", mfa=True) as keeper:
        location = _hold(keeper.put(f"/api/customs/{order['order_no']}", json=change))
    with stack.client("supervisor", mfa=True) as supervisor:
        shown = json.loads(supervisor.get(location).json()["request"]["body"])
        assert shown["declared_value"] is None and shown["hs_code"] == "8471300001"
        supervisor.post(f"{location}/reject")


def test_too_many_pending_requests_are_refused_and_nesting_bombs_are_400(stack: Stack) -> None:
    with stack.wms() as wms:
        batches = wms.get("/api/batches", params={"warehouse": "SH", "page_size": 21}).json()["items"]
    locations = []
    with stack.client("keeper.sh") as keeper:
        try:
            for batch in batches[:20]:
                locations.append(_hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "SPAM"})))
            assert_refused(keeper.patch(f"/api/batches/{batches[20]['batch_no']}", json={"lot": "SPAM"}), 429,
                           "too_many_pending")
        finally:
            for location in locations:
                keeper.post(f"{location}/withdraw")
        bomb = b"{" + b'"a":' * 1 + b"[" * 100000 + b"]" * 100000 + b"}"
        resp = keeper.post("/api/inventory/adjust", content=bomb, headers={"Content-Type": "application/json"})
    assert_refused(resp, 400, "bad_request_body")


def test_audit_search_by_approval_shows_every_step(stack: Stack) -> None:
    batch = _batch(stack, "HF", skip=8)
    with stack.client("keeper.hf") as keeper:
        location = _hold(keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-TRAIL"}))
    with stack.client("supervisor", mfa=True) as supervisor:
        done = supervisor.post(f"{location}/approve", json={"comment": "ok"})
    stack.audit_record(done.headers["X-Decision-Id"])
    approval_id = location.rsplit("/", 1)[1]
    url = stack.audit.url
    lines = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "search", "--db", url, "--approval",
                            approval_id, "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in lines.splitlines()]
    steps = {(r["username"], r["reason_code"]) for r in rows}
    assert {("keeper.hf", "approval_required"), ("supervisor", "approved"),
            ("keeper.hf", "approved_request_executed")} <= steps
    approved = next(r for r in rows if r["reason_code"] == "approved")
    assert approved["detail"]["acr"] == "mfa" and approved["detail"]["comment"] == "ok"
