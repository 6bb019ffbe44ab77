"""Issue 17, usage-based access review data: what a person holds and when they last used it,
from the real proxy's audit trail, Keycloak's role mappings and OPA's role permissions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _picker_and_sysadmin_in_two_warehouses(stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> str:
    username, user_id = throwaway_user("usage")
    admin = stack.keycloak_admin()
    admin.assign_realm_roles(user_id, [admin.get_realm_role("picker"), admin.get_realm_role("sysadmin")])
    admin.update_user(user_id, {"attributes": {"wms_warehouse": ["HF", "SH"], "wms_channel": ["*"],
                                               "wms_order_type": ["*"]}})
    return username


def test_usage_names_what_a_person_holds_but_did_not_use(stack: Stack,
                                                         throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username = _picker_and_sysadmin_in_two_warehouses(stack, throwaway_user)
    started_ms = int(time.time() * 1000)
    order = stack.order(warehouse="HF")
    with stack.client(username) as c:
        viewed = c.get(f"/api/orders/{order['order_no']}")  # orders:view, warehouse HF
        assert viewed.status_code == 200
        stack.audit_record(viewed.headers["X-Decision-Id"])  # usage is read from the trail: wait for the record
        # (no list here: a list is narrowed to every warehouse in scope, so it touches them all)
        assert_refused(c.get("/api/reports/finance"), 403)  # asking is not using
    with stack.client("admin1") as admin:
        resp = admin.get("/_gateway/access/usage", params={"days": 1, "user": username})
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    [person] = doc["people"]
    roles = {r["role"]: r for r in person["roles"]}
    assert set(roles) == {"picker", "sysadmin"}
    assert roles["sysadmin"]["last_used_ms"] is None, "nothing of it was used"
    assert roles["picker"]["last_used_ms"] >= started_ms
    picker = {p["permission"]: p["last_used_ms"] for p in roles["picker"]["permissions"]}
    assert picker["orders:view"] >= started_ms
    assert picker["orders:pick"] is None and picker["orders:scan"] is None
    scope = {(s["dimension"], s["value"]): s["last_used_ms"] for s in person["scope"]}
    assert scope[("warehouse", "HF")] >= started_ms and scope[("warehouse", "SH")] is None
    assert scope[("channel", "*")] >= started_ms
    unused = person["unused"]
    assert {"kind": "role", "name": "sysadmin"} in unused
    assert {"kind": "permission", "name": "picker/orders:scan"} in unused
    assert {"kind": "scope", "name": "warehouse=SH"} in unused
    assert {"kind": "permission", "name": "picker/orders:pick"} in unused
    assert {"kind": "permission", "name": "picker/orders:view"} not in unused
    assert not any(item["name"].startswith("sysadmin/") for item in unused), "an unused role is one item"
    record = stack.audit_record(doc["decision_id"])
    assert (record["module"], record["verb"], record["decision"], record["username"]) == ("iam", "view", "allow",
                                                                                          "admin1")

    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "unused", "--days", "1", "--user", username,
                          "--gateway", stack.proxy], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WMSGATE_TOKEN": stack.tokens.get("admin1")})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split() == ["role", "sysadmin"] for line in lines), out.stdout
    assert any(line.split() == ["scope", "warehouse=SH"] for line in lines), out.stdout
    assert any(line.split() == ["permission", "picker/orders:scan"] for line in lines), out.stdout


def test_usage_is_for_those_who_may_view_access_and_its_query_is_checked(stack: Stack) -> None:
    with stack.client("picker.hf") as picker:
        assert_refused(picker.get("/_gateway/access/usage"), 403, "missing_permission")
    with stack.client("admin1") as admin:
        for params, name in (({"days": "0"}, "days"), ({"days": "x"}, "days"), ({"unused": "yes"}, "unused"),
                             ({"since": "1d"}, "since")):
            body = assert_refused(admin.get("/_gateway/access/usage", params=params), 400, "bad_usage_query")
            assert name in body["reason_en"] and body["reason_zh"]
        everyone = admin.get("/_gateway/access/usage", params={"days": 30, "unused": 1})
        assert_refused(admin.get("/_gateway/access/usage", params={"user": "no.such.person"}), 404)
    assert everyone.status_code == 200
    people = everyone.json()["people"]
    assert people and all(p["unused"] for p in people), "unused=1 lists only people holding something unused"
