"""Issue 17, access reviews against the real proxy, Keycloak and OPA: a campaign lists each
person's access with its last use, reviewers keep or revoke, closing revokes in Keycloak (and
refuses the old tokens), what nobody reviewed by the deadline follows the campaign's choice, and
the result is signed (verified offline by the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO

REVIEWS = "/_gateway/access/reviews"


def _staff(stack: Stack, throwaway_user: Callable[..., tuple[str, str]], warehouses: list[str]) -> tuple[str, str]:
    """A throwaway picker + sysadmin (no permission in common but portal:view) with these warehouses
    (all channels and order types)."""
    username, user_id = throwaway_user("review")
    admin = stack.keycloak_admin()
    admin.assign_realm_roles(user_id, [admin.get_realm_role("picker"), admin.get_realm_role("sysadmin")])
    admin.update_user(user_id, {"attributes": {"wms_warehouse": warehouses, "wms_channel": ["*"],
                                               "wms_order_type": ["*"]}})
    return username, user_id


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "review", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WMSGATE_TOKEN": stack.tokens.get("admin1"), "WMSGATE_URL": stack.proxy})


def test_a_reviewer_revokes_what_is_not_needed_and_the_signed_result_verifies(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    username, user_id = _staff(stack, throwaway_user, ["HF", "SH"])
    order = stack.order(warehouse="HF")
    with stack.client(username) as staff:
        viewed = staff.get(f"/api/orders/{order['order_no']}")
        assert viewed.status_code == 200
        stack.audit_record(viewed.headers["X-Decision-Id"])
    old_token = stack.tokens.get(username)

    with stack.client("picker.hf") as picker:
        assert_refused(picker.post(REVIEWS, json={"title": "x", "warehouse": "SH"}), 403, "missing_permission")
    with stack.client("admin1") as admin:
        assert_refused(admin.post(REVIEWS, json={"title": "x", "warehouse": "SH", "role": "picker"}), 400,
                       "bad_review")
        assert_refused(admin.post(REVIEWS, json={"title": "x", "warehouse": "sh"}), 409, "review_unknown_warehouse")
        started = admin.post(REVIEWS, json={"title": "上海仓季度复核 / SH quarterly", "warehouse": "SH", "days": 1,
                                            "deadline_hours": 24, "unreviewed": "keep"})
        assert started.status_code == 200, started.text
        by_warehouse = started.json()["review_id"]
        roles = admin.post(REVIEWS, json={"title": "管理员复核 / admins", "role": "sysadmin", "days": 1,
                                          "deadline_hours": 24, "unreviewed": "keep"})
        assert roles.status_code == 200, roles.text
        by_role = roles.json()["review_id"]
        doc = admin.get(f"{REVIEWS}/{by_warehouse}").json()
        assert {(i["kind"], i["name"]) for i in doc["items"] if i["username"] == username} == {
            ("scope", "warehouse=SH")}, "a warehouse campaign asks about that warehouse only"
        [sh] = [i for i in doc["items"] if i["username"] == username]
        assert sh["last_used_ms"] is None  # only an HF order was read
        assert {"keeper.sh", "admin1"} <= {i["username"] for i in doc["items"]}
        assert "keeper.hf" not in {i["username"] for i in doc["items"]}
        [own] = [i for i in doc["items"] if i["username"] == "admin1"]
        assert_refused(admin.post(f"{REVIEWS}/{by_warehouse}/items/{own['item_id']}", json={"decision": "keep"}),
                       403, "review_own_access")
        assert admin.post(f"{REVIEWS}/{by_warehouse}/items/{sh['item_id']}",
                          json={"decision": "revoke", "note": "已调离上海仓"}).status_code == 200
        role_doc = admin.get(f"{REVIEWS}/{by_role}").json()
        [mine] = [i for i in role_doc["items"] if i["username"] == username]
        assert (mine["kind"], mine["name"], mine["last_used_ms"]) == ("role", "sysadmin", None)
        assert admin.post(f"{REVIEWS}/{by_role}/items/{mine['item_id']}",
                          json={"decision": "revoke"}).status_code == 200
        closed = admin.post(f"{REVIEWS}/{by_warehouse}/close")
        assert closed.status_code == 200, closed.text
        closed_roles = admin.post(f"{REVIEWS}/{by_role}/close")
        assert closed_roles.status_code == 200, closed_roles.text
        assert_refused(admin.post(f"{REVIEWS}/{by_warehouse}/items/{sh['item_id']}", json={"decision": "keep"}),
                       409, "review_closed")
        assert_refused(admin.post(f"{REVIEWS}/{by_warehouse}/close"), 409, "review_closed")

    result = closed.json()["result"]
    outcomes = {(i["username"], i["name"]): i["outcome"] for i in result["items"]}
    assert outcomes[(username, "warehouse=SH")] == "revoked" and outcomes[("keeper.sh", "warehouse=SH")] == "kept"
    assert outcomes[("admin1", "warehouse=*")] == "kept" and (result["revoked"], result["failed"]) == (1, 0)
    role_outcomes = {i["username"]: i["outcome"] for i in closed_roles.json()["result"]["items"]}
    assert role_outcomes[username] == "revoked" and role_outcomes["admin1"] == "kept"
    admin_api = stack.keycloak_admin()
    assert {r["name"] for r in admin_api.get_realm_roles_of_user(user_id)} >= {"picker"}
    assert "sysadmin" not in {r["name"] for r in admin_api.get_realm_roles_of_user(user_id)}
    assert admin_api.get_user(user_id)["attributes"]["wms_warehouse"] == ["HF"]
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {old_token}"}, timeout=30) as old:
        assert_refused(old.get(f"/api/orders/{order['order_no']}"), 401, "token_revoked")
    record = stack.audit_record(closed.json()["decision_id"])
    assert (record["module"], record["verb"], record["username"]) == ("iam", "review", "admin1")
    detail = record["detail"] if isinstance(record["detail"], dict) else json.loads(record["detail"])
    assert detail["review"]["revoked"] == [f"{username}:scope:warehouse=SH"] and detail["review"]["failed"] == []

    exported = tmp_path / "result.json"
    out = _cli(stack, "export", by_warehouse, "--output", str(exported))
    assert out.returncode == 0, out.stdout + out.stderr
    public_key = str(stack.stack.settings.state / "audit-signing-key.pub")
    out = _cli(stack, "verify", str(exported), "--public-key", public_key)
    assert out.returncode == 0 and out.stdout.startswith("OK:") and "1 revoked" in out.stdout, out.stdout
    doc = json.loads(exported.read_text(encoding="utf-8"))
    doc["result"]["items"][0]["outcome"] = "kept" if doc["result"]["items"][0]["outcome"] != "kept" else "revoked"
    exported.write_text(json.dumps(doc), encoding="utf-8")
    out = _cli(stack, "verify", str(exported), "--public-key", public_key)
    assert out.returncode == 1 and out.stdout.startswith("FAILED"), out.stdout


def test_what_nobody_reviewed_by_the_deadline_is_revoked(stack: Stack,
                                                         throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = _staff(stack, throwaway_user, ["SZ"])
    with stack.client("admin1") as admin, stack.client("admin2") as other:
        started = admin.post(REVIEWS, json={"title": "深圳仓到期测试 / SZ deadline", "warehouse": "SZ", "days": 1,
                                            "deadline_hours": 20 / 3600, "unreviewed": "revoke"})
        assert started.status_code == 200, started.text
        review_id = started.json()["review_id"]
        doc = admin.get(f"{REVIEWS}/{review_id}").json()
        assert_refused(admin.post(f"{REVIEWS}/{review_id}/close"), 409, "review_undecided_items")
        # everyone else's access is kept by a reviewer (not by themselves); the throwaway person's is left alone
        for item in doc["items"]:
            if item["username"] != username:
                reviewer = other if item["username"] == "admin1" else admin
                resp = reviewer.post(f"{REVIEWS}/{review_id}/items/{item['item_id']}", json={"decision": "keep"})
                assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 60
        while admin.get(f"{REVIEWS}/{review_id}").json()["status"] != "closed":
            assert time.monotonic() < deadline, "the sweeper did not close the campaign after its deadline"
            time.sleep(0.5)
        result = admin.get(f"{REVIEWS}/{review_id}/result").json()["result"]
    assert result["closed_by"] == "wmsgate-review-deadline"
    mine = {i["name"]: (i["decision"], i["outcome"]) for i in result["items"] if i["username"] == username}
    assert mine == {"warehouse=SZ": ("unreviewed", "revoked")}
    assert {i["outcome"] for i in result["items"] if i["username"] != username} == {"kept"}
    assert stack.keycloak_admin().get_user(user_id)["attributes"].get("wms_warehouse", []) == []
    rows = stack.audit.sql("SELECT username, reason_code FROM audit_records WHERE resource_id = :r AND "
                           "reason_code = 'access_review_closed'", {"r": review_id})
    assert rows == [{"username": "wmsgate-review-deadline", "reason_code": "access_review_closed"}]
