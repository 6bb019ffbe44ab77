"""Approver predicates through the real Keycloak, proxy and OPA: the reporting line comes from
the requester's token (wms_reports_to, a user attribute mapped by the realm) and is kept with
the held request; their manager may not approve an operation that excludes the line."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.stack import Stack, assert_refused


def test_a_manager_cannot_approve_their_reports_batch_change(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    user, _ = throwaway_user("keeper", roles=("warehouse_keeper",), warehouses=("SZ",),
                             attributes={"wms_reports_to": ["supervisor"]})
    with stack.wms() as wms:
        batch = wms.get("/api/batches", params={"warehouse": "SZ", "page_size": 1, "page": 3}).json()["items"][0]
    with stack.client(user) as keeper:
        held = keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-LINE"})
        assert held.status_code == 202, held.text
        location = held.headers["Location"]
        try:
            with stack.client("supervisor", mfa=True) as boss:
                body = assert_refused(boss.post(f"{location}/approve"), 403, "approver_in_reporting_line")
            assert user in body["reason_en"] and user in body["reason_zh"]
            stored = stack.audit_record(body["decision_id"])
            assert stored["decision"] == "deny" and stored["reason_code"] == "approver_in_reporting_line"
            assert keeper.get(location).json()["status"] == "pending"  # still waiting for someone else
        finally:
            keeper.post(f"{location}/withdraw")
    with stack.wms() as wms:
        assert wms.get(f"/api/batches/{batch['batch_no']}").json()["lot"] != "LOT-LINE"
