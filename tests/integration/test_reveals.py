"""Time-boxed reveals through the real proxy, OPA, demo WMS and alerting service: one masked
field of one record in plaintext for its requester, with a reason, audited; refused without
the permission, for a field not masked or for anything but a record; many in an hour alert."""

from __future__ import annotations

import time
from typing import Any

from tests.support.alerting import detail_of, wait_alert
from tests.support.stack import Stack, assert_refused

REVEALS = "/_gateway/reveals"


def _orders(stack: Stack, count: int) -> list[dict[str, Any]]:
    with stack.wms() as wms:
        rows = wms.get("/api/orders", params={"warehouse": "SH", "page_size": count}).json()["items"]
    assert len(rows) == count
    return rows  # type: ignore[no-any-return]


def test_a_reveal_shows_one_field_of_one_record_to_its_requester_only(stack: Stack) -> None:
    order, other = _orders(stack, 2)
    path = f"/api/orders/{order['order_no']}"
    with stack.client("supervisor") as sup:
        assert sup.get(path).json()["customer_phone"] == "***"
        made = sup.post(REVEALS, json={"path": path, "field": "customer_phone", "reason": "客户投诉,回电核实"})
        assert made.status_code == 201, made.text
        reveal = made.json()
        assert reveal["field"] == "customer_phone" and reveal["resource_id"] == order["order_no"]
        assert 9 * 60_000 < reveal["until_ms"] - time.time() * 1000 <= 10 * 60_000  # 10 minutes
        shown = sup.get(path)
        legacy = sup.get("/legacy/order_detail.do", params={"order_no": order["order_no"]}).json()
        elsewhere = sup.get(f"/api/orders/{other['order_no']}").json()
    doc = shown.json()
    assert doc["customer_phone"] == order["customer_phone"]
    assert doc["customer_name"] == "***" and doc["address"] == "***"  # only the one field
    assert legacy["customer_phone"] == order["customer_phone"]  # the same record through another route
    assert elsewhere["customer_phone"] == "***"  # only the one record

    used = detail_of(stack.audit_record(shown.headers["X-Decision-Id"]))
    assert used["revealed"] == [{"field": "customer_phone", "reveal_id": reveal["reveal_id"]}]
    record = stack.audit_record(reveal["decision_id"])
    assert record["verb"] == "reveal" and record["module"] == "orders" and record["decision"] == "allow"
    assert record["resource_id"] == order["order_no"] and record["warehouse"] == "SH"
    assert detail_of(record)["reveal"]["reason"] == "客户投诉,回电核实"
    assert order["customer_phone"] not in str(record)  # the trail names the field, never its value

    with stack.client("finance") as finance:  # another person: still masked
        assert finance.get(path).json()["customer_phone"] == "***"


def test_reveals_are_refused_without_the_permission_for_unmasked_fields_and_for_lists(stack: Stack) -> None:
    order = _orders(stack, 8)[-1]  # an order no other test here reveals
    path = f"/api/orders/{order['order_no']}"
    with stack.client("picker.hf") as picker:  # no orders:reveal (and not their warehouse)
        body = assert_refused(picker.post(REVEALS, json={"path": path, "field": "customer_phone", "reason": "x"}),
                              403, "out_of_scope")
    record = stack.audit_record(body["decision_id"])
    assert record["decision"] == "deny"
    hf = stack.order(warehouse="HF")
    with stack.client("picker.hf") as picker:
        body = assert_refused(picker.post(REVEALS, json={
            "path": f"/api/orders/{hf['order_no']}", "field": "customer_phone", "reason": "x"}), 403,
            "missing_permission")
    assert stack.audit_record(body["decision_id"])["verb"] == "reveal"
    with stack.client("supervisor") as sup:
        assert_refused(sup.post(REVEALS, json={"path": path, "field": "status", "reason": "x"}), 409,
                       "field_not_masked")
        assert_refused(sup.post(REVEALS, json={"path": "/api/orders", "field": "customer_phone", "reason": "x"}),
                       400, "reveal_not_a_record")
        assert_refused(sup.post(REVEALS, json={"path": path, "field": "customer_phone"}), 400, "bad_request_body")
        assert_refused(sup.post(REVEALS, json={"path": path, "field": "customer_phone", "reason": "x" * 501}), 400,
                       "bad_request_body")
        assert sup.get(path).json()["customer_phone"] == "***"  # nothing was revealed


def test_many_reveals_by_one_person_within_an_hour_alert_the_security_team(stack: Stack) -> None:
    with stack.client("supervisor") as sup:
        for order in _orders(stack, 6)[1:]:
            made = sup.post(REVEALS, json={"path": f"/api/orders/{order['order_no']}", "field": "address",
                                           "reason": "批量核对地址"})
            assert made.status_code == 201, made.text
    alert = wait_alert(stack, lambda a: a["rule"] == "field_reveals" and a["subject"] == "supervisor", timeout=30)
    assert alert["severity"] == "medium" and "revealed" in alert["title_en"]
