"""The product's shared scope cases (data-scope traps of the legacy WMS API), against the real stack."""

from __future__ import annotations

from tests.support.stack import Stack, assert_refused


def test_case_scope_001_legacy_endpoint_query_string_resource(stack: Stack) -> None:
    """CASE-SCOPE-001: ops.taobao GET /legacy/order_detail.do?order_no={a douyin order} -> 403."""
    douyin = stack.order(channel="douyin")
    taobao = stack.order(channel="taobao")
    mark = stack.access_log.mark()
    with stack.client("ops.taobao") as c:
        denied = c.get("/legacy/order_detail.do", params={"order_no": douyin["order_no"]})
        allowed = c.get("/legacy/order_detail.do", params={"order_no": taobao["order_no"]})
    body = assert_refused(denied, 403, "out_of_scope")
    assert "[taobao]" in body["reason_en"] and "douyin" not in body["reason_en"]
    assert allowed.status_code == 200 and allowed.json()["channel"] == "taobao"
    reached = [e for e in stack.access_log.since(mark) if e["path"].startswith("/legacy/")]
    assert [douyin["order_no"] in e["path"] for e in reached] == [False]
    assert stack.audit_record(body["decision_id"])["resource_id"] == douyin["order_no"]


def test_case_scope_002_batch_status_across_warehouses_is_refused_whole(stack: Stack) -> None:
    """CASE-SCOPE-002: keeper.hf batch_status [HF order, SH order] -> exception: refused as a whole; neither changes."""
    hf = stack.order(warehouse="HF", status="picked")
    sh = stack.order(warehouse="SH", status="picked")
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as c:
        resp = c.post("/api/orders/batch_status",
                      json={"order_nos": [hf["order_no"], sh["order_no"]], "status": "exception"})
    body = assert_refused(resp, 403, "out_of_scope")
    assert "[HF]" in body["reason_en"]
    assert not [e for e in stack.access_log.since(mark) if e["path"] == "/api/orders/batch_status"]
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{hf['order_no']}").json()["status"] == "picked"
        assert wms.get(f"/api/orders/{sh['order_no']}").json()["status"] == "picked"
    record = stack.audit_record(body["decision_id"])
    assert set(record["warehouse"].split(",")) == {"HF", "SH"}


def test_case_scope_003_repeated_filter_cannot_widen_the_list(stack: Stack) -> None:
    """CASE-SCOPE-003: keeper.hf GET /api/inventory?warehouse=HF&warehouse=SH -> HF rows only, total counts HF only."""
    with stack.client("keeper.hf") as c:
        resp = c.get("/api/inventory?warehouse=HF&warehouse=SH&page_size=200")
    assert resp.status_code == 200
    body = resp.json()
    assert {r["warehouse"] for r in body["items"]} == {"HF"}
    with stack.wms() as wms:
        assert body["total"] == wms.get("/api/inventory", params={"warehouse": "HF"}).json()["total"]
    record = stack.audit_record(resp.headers["X-Decision-Id"])
    assert record["decision"] == "allow" and record["warehouse"] == "HF"


def test_case_scope_004_rpc_body_warehouse(stack: Stack) -> None:
    """CASE-SCOPE-004: keeper.hf POST /api/inventory/adjust with warehouse SH in the body -> 403; SH stock unchanged."""
    with stack.wms() as wms:
        before = wms.get("/api/inventory/SH/A01-01/SKU00001").json()["qty"]
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as c:
        resp = c.post("/api/inventory/adjust", json={"warehouse": "SH", "location": "A01-01", "sku": "SKU00001",
                                                      "delta": -5, "reason": "x"})
    body = assert_refused(resp, 403, "out_of_scope")
    assert not [e for e in stack.access_log.since(mark) if e["path"] == "/api/inventory/adjust"]
    with stack.wms() as wms:
        assert wms.get("/api/inventory/SH/A01-01/SKU00001").json()["qty"] == before
    assert stack.audit_record(body["decision_id"])["resource_id"] == "SH/A01-01/SKU00001"


def test_case_scope_005_sales_report_over_all_channels(stack: Stack) -> None:
    """CASE-SCOPE-005: ops.amazon GET /api/reports/sales without channel -> refused; never other channels' figures."""
    with stack.client("ops.amazon") as c:
        all_channels = c.get("/api/reports/sales")
        own = c.get("/api/reports/sales", params={"channel": "amazon"})
        other = c.get("/api/reports/sales", params={"channel": "taobao"})
        smuggled = c.get("/api/reports/sales?channel=amazon&channel=taobao")
        empty = c.get("/api/reports/sales?channel=")
        csv_all = c.get("/api/reports/sales.csv")
    assert_refused(all_channels, 403, "aggregate_needs_full_scope")
    assert own.status_code == 200 and {r["channel"] for r in own.json()["rows"]} == {"amazon"}
    assert_refused(other, 403, "out_of_scope")
    assert_refused(smuggled, 403, "out_of_scope")
    assert_refused(empty, 403, "out_of_scope")
    assert_refused(csv_all, 403, "aggregate_needs_full_scope")


def test_case_scope_006_batch_of_another_warehouse(stack: Stack) -> None:
    """CASE-SCOPE-006: keeper.hf GET /api/batches/{an SZ batch} -> 403."""
    with stack.wms() as wms:
        sz_batch = wms.get("/api/batches", params={"warehouse": "SZ", "page_size": 1}).json()["items"][0]
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as c:
        resp = c.get(f"/api/batches/{sz_batch['batch_no']}")
    assert_refused(resp, 403, "out_of_scope")
    assert not [e for e in stack.access_log.since(mark) if e["headers"].get("x-wms-user") == "keeper.hf"]


def test_case_scope_007_picker_sees_orders_without_amounts_or_contact_data(stack: Stack) -> None:
    """CASE-SCOPE-007: picker.hf GET /api/orders/{an HF order}: allowed (policy lets pickers view orders);
    amount and customer phone/address never visible."""
    order = stack.order(warehouse="HF")
    with stack.client("picker.hf") as c:
        single = c.get(f"/api/orders/{order['order_no']}")
        listing = c.get("/api/orders", params={"page_size": 20})
        legacy = c.get("/legacy/order_detail.do", params={"order_no": order["order_no"]})
    for doc in (single.json(), legacy.json(), *listing.json()["items"]):
        assert doc["amount"] is None
        assert doc["customer_phone"] == "***" and doc["address"] == "***" and doc["customer_name"] == "***"
        assert all(item["price"] is None for item in doc["items"])
        assert "amount" in doc and "customer_phone" in doc
    assert single.json()["order_no"] == order["order_no"]
    assert single.json()["items"][0]["sku"] == order["items"][0]["sku"]
    with stack.client("finance") as c:
        seen_by_finance = c.get(f"/api/orders/{order['order_no']}").json()
    assert seen_by_finance["amount"] == order["amount"]
    assert seen_by_finance["customer_phone"] == "***"


def test_out_of_scope_customs_declaration_answers_404_so_its_existence_does_not_leak(stack: Stack) -> None:
    """Existence-sensitive module (customs): keeper.hf asking for an SZ declaration gets 404, not 403."""
    sz = stack.order(warehouse="SZ", order_type="cross_border")
    hf = stack.order(warehouse="HF", order_type="cross_border")
    with stack.client("keeper.hf") as c:
        hidden = c.get(f"/api/customs/{sz['order_no']}")
        own = c.get(f"/api/customs/{hf['order_no']}")
        missing = c.get("/api/customs/SO2099010100001")
    body = assert_refused(hidden, 404, "not_found")
    assert "SZ" not in body["reason_en"] and "SZ" not in body["reason_zh"]
    record = stack.audit_record(body["decision_id"])
    assert record["http_status"] == 404 and record["reason_code"] == "out_of_scope" and record["warehouse"] == "SZ"
    assert own.status_code == 200 and own.json()["warehouse"] == "HF"
    assert own.json()["declared_value"] is None  # keepers do not see amounts
    assert_refused(missing, 404, "not_found")
    with stack.client("picker.hf") as c:
        assert_refused(c.get(f"/api/customs/{hf['order_no']}"), 403, "missing_permission")


def test_review_answer_embedding_an_order_is_masked_like_the_order(stack: Stack) -> None:
    """Review finding: POST /api/review/{no} answers the whole order; a reviewer must not see amounts
    or customer contact data in it (only the phone's first 3 and last 4 digits, to check the parcel)."""
    order = stack.order(warehouse="HF", status="picked")
    with stack.client("reviewer.hf") as c:
        resp = c.post(f"/api/review/{order['order_no']}", json={"result": "pass"})
    assert resp.status_code == 200
    doc, phone = resp.json(), order["customer_phone"]
    assert doc["status"] == "reviewed" and doc["amount"] is None and doc["customer_name"] == "***"
    assert doc["customer_phone"] == phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    assert all(item["price"] is None for item in doc["items"])


def test_warehouse_staff_cannot_read_customer_records_directly(stack: Stack) -> None:
    """Review finding: customers belong to no warehouse, so a packer of HF cannot enumerate them;
    the packer still sees the contact data on HF orders (labels)."""
    order = stack.order(warehouse="HF", status="reviewed")
    with stack.client("packer.hf") as c:
        assert_refused(c.get(f"/api/customers/{order['customer_id']}"), 404, "not_found")
        on_order = c.get(f"/api/orders/{order['order_no']}").json()
    assert on_order["customer_phone"] == order["customer_phone"] and on_order["amount"] is None


def test_bulk_requests_are_capped_before_any_lookup(stack: Stack) -> None:
    """Review finding: a bulk body with thousands of ids must not cause thousands of WMS lookups."""
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.post("/api/orders/batch_status", json={"order_nos": [f"SO{i}" for i in range(500)], "status": "x"})
    body = assert_refused(resp, 400, "bad_request_body")
    assert "200" in body["reason_en"]
    assert len(stack.access_log.since(mark)) == 0


def test_a_utf7_body_cannot_smuggle_another_warehouse(stack: Stack) -> None:
    """Review finding: the WMS decodes bodies with the declared charset; the gateway must not authorize
    one text while the WMS reads another."""
    smuggled = (b'{"warehouse":"HF","location":"A01-01","sku":"SKU00001","delta":1,'
                b'"reason":"x+ACIALAAi-warehouse+ACIAOgAi-SH"}')
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as c:
        utf7 = c.post("/api/inventory/adjust", content=smuggled,
                      headers={"Content-Type": "application/json; charset=utf-7"})
        text = c.post("/api/inventory/adjust", content=smuggled, headers={"Content-Type": "text/plain"})
        dup = c.post("/api/inventory/adjust", headers={"Content-Type": "application/json"},
                     content=b'{"warehouse":"HF","warehouse":"SH","location":"A01-01","sku":"SKU00001","delta":1,"reason":"x"}')
        gz = c.post("/api/inventory/adjust", content=b"\x1f\x8b", headers={"Content-Type": "application/json",
                                                                             "Content-Encoding": "gzip"})
    assert_refused(utf7, 415, "unsupported_media_type")
    assert_refused(text, 415, "unsupported_media_type")
    assert_refused(dup, 400, "bad_request_body")
    assert_refused(gz, 415, "unsupported_content_encoding")
    assert not [e for e in stack.access_log.since(mark) if e["path"] == "/api/inventory/adjust"]
