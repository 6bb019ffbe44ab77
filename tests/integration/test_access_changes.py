"""Issue "Dynamic access": role change, offboarding, revocation, changes made in Keycloak, and the
four-eyes rule for widening access. Real Keycloak, OPA, proxy and WMS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _user(stack: Stack, username: str) -> dict[str, Any]:
    admin = stack.keycloak_admin()
    return admin.get_user(admin.get_user_id(username))


def _roles(stack: Stack, username: str) -> set[str]:
    admin = stack.keycloak_admin()
    return {r["name"] for r in admin.get_realm_roles_of_user(admin.get_user_id(username))} - {
        "offline_access", "uma_authorization", "default-roles-wms"}


def _restore(stack: Stack, username: str, roles: list[str], attributes: dict[str, list[str]]) -> None:
    stack.restore_person(username, roles, attributes)


def _approve(stack: Stack, location: str, approver: str) -> dict[str, Any]:
    with stack.client(approver, mfa=True) as c:
        resp = c.post(f"{location}/approve")
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def picker_hf_restored(stack: Stack) -> Iterator[None]:
    yield
    _restore(stack, "picker.hf", ["picker"], {"wms_warehouse": ["HF"], "wms_channel": ["*"], "wms_order_type": ["*"]})


def test_case_3_promotion_revokes_old_tokens_and_new_ones_carry_only_the_new_role(
        stack: Stack, picker_hf_restored: None) -> None:
    old_token_client = stack.client("picker.hf")
    assert old_token_client.get("/api/picking/tasks").status_code == 200
    with stack.client("admin1", mfa=True) as admin1:
        held = admin1.post("/_gateway/access/set-roles", json={"username": "picker.hf", "roles": ["warehouse_keeper"]})
    assert held.status_code == 202, held.text
    assert _roles(stack, "picker.hf") == {"picker"}, "nothing may change before the approval"
    done = _approve(stack, held.headers["Location"], "admin2")
    assert done["status"] == "executed" and done["result"]["status"] == 200, done
    assert _roles(stack, "picker.hf") == {"warehouse_keeper"}
    assert_refused(old_token_client.get("/api/picking/tasks"), 401, "token_revoked")
    old_token_client.close()
    stack.tokens.forget("picker.hf")
    with stack.client("picker.hf") as keeper:
        count = keeper.post("/api/stocktakes", json={"warehouse": "HF", "location": "A01-02",
                                                      "counts": [{"sku": "SKU00002", "counted_qty": 7}]})
        order = stack.order(warehouse="HF", status="pending_pick")
        pick = keeper.post(f"/api/picking/{order['order_no']}/confirm")
    assert count.status_code == 201, count.text
    assert_refused(pick, 403, "missing_permission")


@pytest.fixture
def keeper_sz_restored(stack: Stack) -> Iterator[None]:
    yield
    _restore(stack, "keeper.sz", ["warehouse_keeper"],
             {"wms_warehouse": ["SZ"], "wms_channel": ["*"], "wms_order_type": ["*"]})


def test_case_4_offboarding_refuses_a_valid_token_within_a_second(stack: Stack, keeper_sz_restored: None) -> None:
    with stack.client("keeper.sz") as keeper:
        before = keeper.get("/api/inventory/SZ/A01-01/SKU00001")
        assert before.status_code == 200
        with stack.client("admin1") as admin1:  # narrowing access: one sysadmin, no step-up needed
            offboard = admin1.post("/_gateway/access/offboard",
                                   json={"username": "keeper.sz", "reason": "离职 / left the company"})
        started = time.monotonic()
        refused = keeper.get("/api/inventory/SZ/A01-01/SKU00001")
        elapsed = time.monotonic() - started
    assert offboard.status_code == 200, offboard.text
    steps = " ".join(offboard.json()["steps"])
    assert "account disabled" in steps and "sessions ended" in steps and "warehouse_keeper" in steps
    assert_refused(refused, 401, "token_revoked")
    assert elapsed < 1.0
    user = _user(stack, "keeper.sz")
    assert user["enabled"] is False and _roles(stack, "keeper.sz") == set()
    assert not any(k.startswith("wms_") for k in (user.get("attributes") or {}))
    with pytest.raises(AssertionError, match="login of keeper.sz failed"):
        stack.tokens.login("keeper.sz")
    record = stack.audit_record(offboard.headers["X-Decision-Id"])
    assert record["module"] == "iam" and record["verb"] == "delete" and record["resource_id"] == "keeper.sz"
    url = stack.audit.url
    lines = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "search", "--db", url, "--user", "keeper.sz",
                            "--since", "1h", "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    past = [json.loads(line) for line in lines.splitlines()]
    assert before.headers["X-Decision-Id"] in {r["decision_id"] for r in past}


@pytest.fixture
def ops_amazon_enabled(stack: Stack) -> Iterator[None]:
    yield
    stack.keycloak_admin().update_user(stack.keycloak_admin().get_user_id("ops.amazon"), {"enabled": True})
    stack.tokens.forget("ops.amazon")


def test_case_5_a_user_disabled_in_keycloak_directly_is_refused_within_5_seconds(
        stack: Stack, ops_amazon_enabled: None) -> None:
    with stack.client("ops.amazon") as ops:
        assert ops.get("/api/reports/sales?channel=amazon").status_code == 200
        admin = stack.keycloak_admin()
        admin.update_user(admin.get_user_id("ops.amazon"), {"enabled": False})
        disabled_at = time.monotonic()
        while True:
            resp = ops.get("/api/reports/sales?channel=amazon")
            if resp.status_code == 401:
                break
            assert time.monotonic() - disabled_at < 5.0, "still allowed 5 s after the account was disabled"
            time.sleep(0.1)
    assert_refused(resp, 401, "token_revoked")


def test_keycloak_answers_the_admin_event_query_the_watcher_relies_on(stack: Stack, ops_amazon_enabled: None) -> None:
    """The proxy's admin-event watcher asks only for events from its checkpoint on, oldest first
    (``dateFrom`` in epoch ms, ``direction=asc``): Keycloak must honour both, or a burst could be
    read out of order and a revocation skipped."""
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("ops.amazon")
    before = int(time.time() * 1000) - 1
    changes = [False, True, False, True]  # not a palindrome: the newest-first order would show
    for enabled in changes:
        admin.update_user(user_id, {"enabled": enabled})
    events = admin.get_admin_events({"dateFrom": str(before), "direction": "asc", "first": 0, "max": 100})
    ours = [e for e in events if e.get("resourcePath") == f"users/{user_id}"]
    assert len(ours) == len(changes)
    assert all(int(e["time"]) >= before for e in events)
    times = [int(e["time"]) for e in events]
    assert times == sorted(times)
    assert [json.loads(e["representation"])["enabled"] for e in ours] == changes
    paged: list[dict[str, Any]] = []  # page by page, as the watcher reads a burst
    while True:
        page = admin.get_admin_events({"dateFrom": str(before), "direction": "asc", "first": len(paged), "max": 2})
        paged.extend(page)
        if len(page) < 2:
            break
    assert [e["id"] for e in paged] == [e["id"] for e in events]


@pytest.fixture
def grantee(stack: Stack) -> Iterator[str]:
    admin = stack.keycloak_admin()
    admin.create_user({"username": "grantee.test", "enabled": True, "firstName": "测试", "lastName": "授权",
                       "email": "grantee.test@example.com", "emailVerified": True}, exist_ok=True)
    yield "grantee.test"
    admin.delete_user(admin.get_user_id("grantee.test"))


def test_case_2_granting_sysadmin_needs_a_second_admin(stack: Stack, grantee: str) -> None:
    body = {"username": grantee, "roles": ["sysadmin"]}
    with stack.client("admin1") as password_only:
        assert_refused(password_only.post("/_gateway/access/set-roles", json=body), 401, "step_up_required")
    with stack.client("admin1", mfa=True) as admin1:
        held = admin1.post("/_gateway/access/set-roles", json=body)
        assert held.status_code == 202, held.text
        assert_refused(admin1.post(f"{held.headers['Location']}/approve"), 403, "self_approval")
    assert _roles(stack, grantee) == set()
    assert _approve(stack, held.headers["Location"], "admin2")["status"] == "executed"
    assert _roles(stack, grantee) == {"sysadmin"}


def test_only_sysadmins_change_access(stack: Stack) -> None:
    with stack.client("supervisor", mfa=True) as supervisor:
        resp = supervisor.post("/_gateway/access/offboard", json={"username": "picker.hf", "reason": "x"})
    assert_refused(resp, 403, "missing_permission")
    assert _user(stack, "picker.hf")["enabled"] is True


def test_wmsgate_access_cli_uses_the_api_as_the_admin(stack: Stack, grantee: str) -> None:
    env = {**os.environ, "WMSGATE_TOKEN": stack.tokens.mfa("admin1"), "WMSGATE_URL": stack.proxy}
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "set-roles", grantee, "--role", "picker",
                          "--warehouse", "HF", "--channel", "*", "--order-type", "*"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "/_gateway/approvals/" in out.stdout
    location = out.stdout.strip().rsplit(stack.proxy, 1)[1]
    assert _approve(stack, location, "admin2")["status"] == "executed"
    assert _roles(stack, grantee) == {"picker"}
    assert _user(stack, grantee)["attributes"]["wms_warehouse"] == ["HF"]
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "offboard", grantee, "--reason", "test"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "account disabled" in out.stdout
