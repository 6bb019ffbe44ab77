"""Issue 18, transition rules through the real proxy, OPA and the demo WMS: the policy sees an
order's current status (read fresh from the WMS, never from the lookup cache) beside the one a
write asks for; moving it back (the seed's incident: shipped orders reset to pending_pick) is
held for a supervisor's approval, moving it forward is not."""

from __future__ import annotations

import json

from tests.support.stack import Stack


def test_a_shipped_order_moved_back_is_held_until_a_supervisor_approves_and_forward_is_not(stack: Stack) -> None:
    shipped = stack.order(warehouse="HF", status="shipped", page="9")
    packed = stack.order(warehouse="HF", status="packed", page="9")
    with stack.client("keeper.hf") as keeper:
        held = keeper.patch(f"/api/orders/{shipped['order_no']}", json={"status": "pending_pick"})
        forward = keeper.patch(f"/api/orders/{packed['order_no']}", json={"status": "shipped"})
    assert held.status_code == 202, held.text
    assert held.json()["operation"] == "order_status_rollback"
    assert forward.status_code == 200, forward.text
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{shipped['order_no']}").json()["status"] == "shipped"  # nothing ran yet
    record = stack.audit_record(held.json()["decision_id"])
    decided = record["detail"] if isinstance(record["detail"], dict) else json.loads(record["detail"])
    assert decided["input"]["resource"]["state"] == {"status": "shipped"}
    assert decided["input"]["action"]["changes"] == {"status": "pending_pick"}
    assert decided["high_risk"] == "order_status_rollback"  # the alerting service reports it

    with stack.client("keeper.hf") as keeper:  # the packed order is shipped now: the state is read fresh
        again = keeper.patch(f"/api/orders/{packed['order_no']}", json={"status": "packed"})
    assert again.status_code == 202 and again.json()["operation"] == "order_status_rollback", again.text
    with stack.client("supervisor", mfa=True) as supervisor:
        done = supervisor.post(f"{held.headers['Location']}/approve").json()
        supervisor.post(f"{again.headers['Location']}/reject")
    assert done["status"] == "executed" and done["result"]["status"] == 200, done
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{shipped['order_no']}").json()["status"] == "pending_pick"
        assert wms.get(f"/api/orders/{packed['order_no']}").json()["status"] == "shipped"


def test_a_held_rollback_does_not_run_when_the_order_changed_before_the_approval(stack: Stack) -> None:
    shipped = stack.order(warehouse="HF", status="shipped", page="11")
    with stack.client("keeper.hf") as keeper:
        held = keeper.patch(f"/api/orders/{shipped['order_no']}", json={"status": "picking"})
    assert held.status_code == 202, held.text
    with stack.wms() as wms:  # meanwhile the order is handled in the WMS itself
        assert wms.patch(f"/api/orders/{shipped['order_no']}", json={"status": "exception"}).status_code == 200
    with stack.client("supervisor", mfa=True) as supervisor:
        refused = supervisor.post(f"{held.headers['Location']}/approve")
        after = supervisor.get(held.headers["Location"]).json()
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "request_no_longer_allowed"
    assert "status: shipped -> exception" in refused.json()["reason_en"]
    assert after["status"] == "withdrawn"
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{shipped['order_no']}").json()["status"] == "exception"  # not replayed
