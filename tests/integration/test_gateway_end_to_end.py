"""Issue "Gateway end to end": the listed behaviours, against the real Keycloak, OPA, WMS and proxy."""

from __future__ import annotations

import time

import httpx

from tests.support.stack import Stack, assert_refused, raw_request


def test_picker_hf_lists_pick_tasks_of_hf_only(stack: Stack) -> None:
    with stack.client("picker.hf") as c:
        resp = c.get("/api/picking/tasks", params={"page_size": 200})
    assert resp.status_code == 200
    body = resp.json()
    assert body["items"], "expected pick tasks"
    assert {row["warehouse"] for row in body["items"]} == {"HF"}
    with stack.wms() as wms:
        hf_total = wms.get("/api/picking/tasks", params={"warehouse": "HF"}).json()["total"]
        all_total = wms.get("/api/picking/tasks").json()["total"]
    assert body["total"] == hf_total < all_total


def test_picker_hf_confirms_hf_pick_but_not_sh(stack: Stack) -> None:
    hf = stack.order(warehouse="HF", status="pending_pick")
    sh = stack.order(warehouse="SH", status="pending_pick")
    with stack.client("picker.hf") as c:
        ok = c.post(f"/api/picking/{hf['order_no']}/confirm")
        denied = c.post(f"/api/picking/{sh['order_no']}/confirm")
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "picked"
    body = assert_refused(denied, 403, "out_of_scope")
    assert "[HF]" in body["reason_en"] and "SH" not in body["reason_en"]
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{sh['order_no']}").json()["status"] == "pending_pick"


def test_picker_hf_cannot_adjust_inventory_and_is_told_the_missing_permission(stack: Stack) -> None:
    with stack.client("picker.hf") as c:
        resp = c.post("/api/inventory/adjust", json={"warehouse": "HF", "location": "A01-01", "sku": "SKU00001",
                                                      "delta": 3, "reason": "test"})
    body = assert_refused(resp, 403, "missing_permission")
    assert "inventory:update" in body["reason_en"] and "inventory:update" in body["reason_zh"]


def test_picker_hf_cannot_read_finance_report(stack: Stack) -> None:
    with stack.client("picker.hf") as c:
        assert_refused(c.get("/api/reports/finance"), 403, "missing_permission")


def test_picker_cannot_set_shipped_orders_back_to_pending_pick(stack: Stack) -> None:
    with stack.wms() as wms:
        shipped = wms.get("/api/orders",
                          params={"warehouse": "HF", "status": "shipped", "page_size": 3}).json()["items"]
    nos = [o["order_no"] for o in shipped]
    assert len(nos) == 3
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.post("/api/orders/batch_status", json={"order_nos": nos, "status": "pending_pick"})
    assert_refused(resp, 403, "missing_permission")
    assert not [e for e in stack.access_log.since(mark) if e["path"].startswith("/api/orders/batch_status")]
    with stack.wms() as wms:
        for no in nos:
            assert wms.get(f"/api/orders/{no}").json()["status"] == "shipped"


def test_keeper_hf_cannot_read_sh_inventory_and_lists_hf_only(stack: Stack) -> None:
    with stack.client("keeper.hf") as c:
        denied = c.get("/api/inventory/SH/A01-01/SKU00001")
        listing = c.get("/api/inventory", params={"page_size": 200})
    assert_refused(denied, 403, "out_of_scope")
    assert listing.status_code == 200
    rows = listing.json()["items"]
    assert rows and {r["warehouse"] for r in rows} == {"HF"}
    with stack.wms() as wms:
        assert listing.json()["total"] == wms.get("/api/inventory", params={"warehouse": "HF"}).json()["total"]


def test_keeper_hf_cannot_read_sales_report_but_reads_hf_warehouse_report(stack: Stack) -> None:
    with stack.client("keeper.hf") as c:
        sales = c.get("/api/reports/sales")
        sales_channel = c.get("/api/reports/sales", params={"channel": "taobao"})
        warehouse = c.get("/api/reports/warehouse", params={"warehouse": "HF"})
        all_warehouses = c.get("/api/reports/warehouse")
    assert_refused(sales, 403, "missing_permission")
    assert_refused(sales_channel, 403, "missing_permission")
    assert warehouse.status_code == 200
    assert [r["warehouse"] for r in warehouse.json()["rows"]] == ["HF"]
    assert_refused(all_warehouses, 403, "aggregate_needs_full_scope")


def test_ops_taobao_sees_taobao_orders_only(stack: Stack) -> None:
    douyin = stack.order(channel="douyin")
    with stack.client("ops.taobao") as c:
        listing = c.get("/api/orders", params={"page_size": 100})
        single = c.get(f"/api/orders/{douyin['order_no']}")
        legacy = c.get("/legacy/order_detail.do", params={"order_no": douyin["order_no"]})
        asked_other = c.get("/api/orders", params={"channel": "jd"})
    assert listing.status_code == 200
    assert {r["channel"] for r in listing.json()["items"]} == {"taobao"}
    with stack.wms() as wms:
        assert listing.json()["total"] == wms.get("/api/orders", params={"channel": "taobao"}).json()["total"]
    assert_refused(single, 403, "out_of_scope")
    assert_refused(legacy, 403, "out_of_scope")
    assert asked_other.status_code == 200 and asked_other.json()["items"] == [] and asked_other.json()["total"] == 0


def test_supervisor_reads_fulfillment_report_but_cannot_pick(stack: Stack) -> None:
    order = stack.order(warehouse="GZ", status="pending_pick")
    with stack.client("supervisor") as c:
        report = c.get("/api/reports/fulfillment")
        pick = c.post(f"/api/picking/{order['order_no']}/confirm")
    assert report.status_code == 200
    assert {r["warehouse"] for r in report.json()["rows"]} == {"HF", "SH", "GZ", "SZ"}
    assert_refused(pick, 403, "missing_permission")


def test_reviewer_reads_and_reviews_but_cannot_edit_items_or_delete_records(stack: Stack) -> None:
    order = stack.order(warehouse="HF", status="picked")
    with stack.client("reviewer.hf") as c:
        read = c.get(f"/api/orders/{order['order_no']}")
        review = c.post(f"/api/review/{order['order_no']}", json={"result": "pass", "note": "ok"})
        patch = c.patch(f"/api/orders/{order['order_no']}", json={"items": [{"sku": "SKU00002", "qty": 9, "price": 1}]})
        records = c.get("/api/review/records", params={"order_no": order["order_no"]})
        record_id = records.json()["items"][0]["record_id"]
        delete = c.delete(f"/api/review/records/{record_id}")
    assert read.status_code == 200
    assert review.status_code == 200 and review.json()["status"] == "reviewed"
    assert records.json()["items"][0]["reviewer"] == "reviewer.hf"
    body = assert_refused(patch, 403, "missing_permission")
    assert "order_items:update" in body["reason_en"]
    assert_refused(delete, 403, "missing_permission")
    with stack.wms() as wms:
        items = wms.get(f"/api/orders/{order['order_no']}").json()["items"]
        assert all(i["sku"] != "SKU00002" or i["qty"] != 9 for i in items)
        assert wms.get("/api/review/records", params={"order_no": order["order_no"]}).json()["total"] == 1


def test_requests_without_a_valid_token_get_401(stack: Stack) -> None:
    with httpx.Client(base_url=stack.proxy) as c:
        missing = c.get("/api/picking/tasks")
        garbage = c.get("/api/picking/tasks", headers={"Authorization": "Bearer not.a.token"})
        basic = c.get("/api/picking/tasks", headers={"Authorization": "Basic cGlja2VyLmhmOndtcy1kZW1v"})
    assert_refused(missing, 401, "missing_token")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="wms"'
    assert_refused(garbage, 401, "invalid_token")
    assert 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]
    assert_refused(basic, 401, "invalid_token")


def test_client_sent_identity_header_never_reaches_the_wms(stack: Stack) -> None:
    order = stack.order(warehouse="HF", status="pending_pick")
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.post(f"/api/picking/{order['order_no']}/scan", json={"sku": "SKU00001", "qty": 1},
                      headers={"X-WMS-User": "admin1", "X-WMS-Roles": "sysadmin", "X-Forwarded-For": "10.9.9.9",
                               "Cookie": "JSESSIONID=stolen"})
    assert resp.status_code == 200, resp.text
    forwarded = [e for e in stack.access_log.since(mark) if e["path"].endswith("/scan")]
    assert len(forwarded) == 1
    headers = forwarded[0]["headers"]
    assert headers["x-wms-user"] == "picker.hf"
    assert headers["x-wms-roles"] == "picker"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "authorization" not in headers and "cookie" not in headers
    assert headers["x-wms-service-token"] == "svc-token-for-tests"
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{order['order_no']}").json()["updated_by"] == "picker.hf"


def test_encoded_slash_or_dot_segments_aimed_at_a_denied_endpoint_are_refused_unforwarded(stack: Stack) -> None:
    token = stack.tokens.get("picker.hf")
    mark = stack.access_log.mark()
    for target in ("/api/picking/tasks/..%2F..%2Freports%2Ffinance", "/api/picking/%2e%2e/reports/finance",
                   "/api/orders/..%5C..%5Creports/finance"):
        resp = raw_request(stack.proxy, "GET", target, [("Authorization", f"Bearer {token}")])
        assert_refused(resp, 400)
    assert not [e for e in stack.access_log.since(mark) if "finance" in e["path"]]


def test_every_decision_is_in_the_audit_trail_with_who_what_how_where_and_result(stack: Stack) -> None:
    order = stack.order(warehouse="HF", status="pending_pick")
    with stack.client("picker.hf") as c:
        allowed = c.get(f"/api/orders/{order['order_no']}", headers={"User-Agent": "scanner-gun/1.0",
                                                                      "X-Device-Id": "PDA-0042"})
        denied = c.get("/api/reports/finance")
    allow = stack.audit_record(allowed.headers["X-Decision-Id"])
    assert allow["decision"] == "allow" and allow["username"] == "picker.hf" and allow["roles"] == "picker"
    assert (allow["module"], allow["verb"], allow["resource_id"]) == ("orders", "view", order["order_no"])
    assert (allow["warehouse"], allow["channel"], allow["order_type"]) == ("HF", order["channel"], order["order_type"])
    assert allow["policy_revision"].startswith("sha256:")
    assert allow["client_ip"] == "127.0.0.1" and allow["user_agent"] == "scanner-gun/1.0"
    assert allow["device_id"] == "PDA-0042"
    assert allow["upstream_status"] == 200 and allow["upstream_ms"] > 0 and allow["http_status"] == 200
    assert abs(allow["ts_ms"] / 1000 - time.time()) < 60
    deny = stack.audit_record(denied.json()["decision_id"])
    assert deny["decision"] == "deny" and deny["reason_code"] == "missing_permission"
    assert deny["upstream_status"] is None and deny["http_status"] == 403


def test_every_demo_user_can_log_in(stack: Stack) -> None:
    """The demo realm contract: every listed user logs in with wms-demo (temp.picker01 included)."""
    for username in ("picker.hf", "reviewer.hf", "packer.hf", "keeper.hf", "keeper.sh", "keeper.sz", "supervisor",
                     "ops.taobao", "ops.amazon", "finance", "admin1", "admin2", "temp.picker01"):
        assert stack.tokens.get(username)
    with stack.client("temp.picker01") as c:
        tasks = c.get("/api/picking/tasks")
    assert tasks.status_code == 200 and {r["warehouse"] for r in tasks.json()["items"]} == {"HF"}
