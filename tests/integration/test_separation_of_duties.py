"""Issue 18, separation of duties through the real proxy, Keycloak and OPA: a role change or a
temporary grant that would give someone a toxic combination of roles (policy data
``wms/sod/data.yaml``) is refused with 409 before it is held, and again when an approved
grant runs after the person gained a conflicting role in the meantime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from tests.support.stack import Stack, assert_refused


def _roles(stack: Stack, username: str) -> set[str]:
    admin = stack.keycloak_admin()
    return {r["name"] for r in admin.get_realm_roles_of_user(admin.get_user_id(username))}


def _row(username: str, role: str) -> dict[str, str]:
    start = dt.datetime.now(ZoneInfo("Asia/Shanghai")) - dt.timedelta(minutes=1)
    return {"username": username, "display_name": "", "role": role, "warehouses": "HF", "channels": "*",
            "order_types": "*", "valid_from": start.isoformat(timespec="seconds"),
            "valid_until": (start + dt.timedelta(hours=2)).isoformat(timespec="seconds")}


def test_a_role_change_to_a_toxic_combination_is_refused_before_it_is_held(stack: Stack) -> None:
    with stack.client("admin1", mfa=True) as admin1:
        refused = admin1.post("/_gateway/access/set-roles",
                              json={"username": "keeper.hf", "roles": ["warehouse_keeper", "ops_supervisor"]})
        grant = admin1.post("/_gateway/access/bulk-grant", json={"rows": [_row("keeper.sh", "finance")]})
    body = assert_refused(refused, 409, "role_conflict")
    assert "ops_supervisor + warehouse_keeper" in body["reason_en"] and "职责分离" in body["reason_zh"]
    assert "approval_id" not in body and _roles(stack, "keeper.hf") >= {"warehouse_keeper"}
    assert "ops_supervisor" not in _roles(stack, "keeper.hf")
    body = assert_refused(grant, 409, "role_conflict")  # keeper.sh already keeps stock: no finance role
    assert "finance + warehouse_keeper" in body["reason_en"] and "keeper.sh" in body["reason_en"]
    record = stack.audit_record(body["decision_id"])
    assert (record["http_status"], record["reason_code"]) == (409, "role_conflict")


def test_an_approved_grant_that_became_toxic_meanwhile_does_not_run(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = throwaway_user("sod")
    with stack.client("admin1", mfa=True) as admin1:
        held = admin1.post("/_gateway/access/bulk-grant", json={"rows": [_row(username, "finance")]})
    assert held.status_code == 202, held.text
    admin = stack.keycloak_admin()  # meanwhile someone makes them a keeper in Keycloak directly
    admin.assign_realm_roles(user_id, [admin.get_realm_role("warehouse_keeper")])
    with stack.client("admin2", mfa=True) as admin2:
        done = admin2.post(f"{held.headers['Location']}/approve").json()
    assert done["status"] == "executed" and done["result"]["status"] == 409, done
    assert done["result"]["body"]["error"] == "role_conflict"
    assert "finance" not in _roles(stack, username)
