"""Health endpoint and fail-closed behaviour when a dependency is down (real processes, dead ports)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.stack import Stack, assert_refused

DEAD = "http://127.0.0.1:9"  # discard port: nothing listens there


def test_health_is_200_when_keycloak_opa_and_wms_answer(stack: Stack) -> None:
    resp = httpx.get(f"{stack.proxy}/_gateway/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert body["checks"]["keycloak_keys"]["keys"] >= 1


@pytest.fixture
def restore_proxy(stack: Stack) -> Iterator[None]:
    yield
    stack.stack.restart_proxy()


@pytest.mark.parametrize("override, failing", [({"opa.url": DEAD}, "opa"), ({"upstream.url": DEAD}, "wms"),
                                               ({"oidc.issuer": DEAD + "/realms/wms"}, "keycloak_keys")])
def test_health_is_503_naming_the_unreachable_dependency(stack: Stack, restore_proxy: None,
                                                         override: dict[str, str], failing: str) -> None:
    stack.stack.restart_proxy(override, require_healthy=False)
    resp = httpx.get(f"{stack.proxy}/_gateway/health", timeout=15)
    assert resp.status_code == 503
    assert resp.json()["failing"] == [failing]


def test_opa_down_means_503_and_nothing_forwarded(stack: Stack, restore_proxy: None) -> None:
    stack.stack.restart_proxy({"opa.url": DEAD}, require_healthy=False)
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.get("/api/picking/tasks")
    body = assert_refused(resp, 503, "pdp_unavailable")
    assert resp.headers["Retry-After"]
    assert not [e for e in stack.access_log.since(mark) if e["path"].startswith("/api/picking")]
    assert stack.audit_record(body["decision_id"])["decision"] == "deny"


def test_wms_down_means_502_with_an_audit_record(stack: Stack, restore_proxy: None) -> None:
    stack.stack.restart_proxy({"upstream.url": DEAD}, require_healthy=False)
    with stack.client("picker.hf") as c:
        listing = c.get("/api/picking/tasks")
        single = c.get("/api/orders/SO2024110100001")
    body = assert_refused(listing, 502, "upstream_unavailable")
    record = stack.audit_record(body["decision_id"])
    assert record["decision"] == "allow" and record["http_status"] == 502
    assert_refused(single, 502, "attribute_lookup_failed")


def test_per_warehouse_credentials_are_chosen_by_the_resource_warehouse(stack: Stack, restore_proxy: None) -> None:
    state = stack.stack.settings.state
    for wh in ("HF", "SH"):
        (state / f"wms-token-{wh}").write_text(f"token-of-{wh}\n", encoding="utf-8")
    stack.stack.restart_proxy({"upstream.credentials": [
        {"header": "X-WMS-Warehouse-Token",
         "per_warehouse": {wh: str(state / f"wms-token-{wh}") for wh in ("HF", "SH")}},
    ]})
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as c:
        row = c.get("/api/inventory/HF/A01-01/SKU00001")
        listing = c.get("/api/inventory", params={"page_size": 1})
    with stack.client("finance") as c:
        finance = c.get("/api/reports/finance")
    assert row.status_code == 200 and listing.status_code == 200
    sent = {e["path"].split("?")[0]: e["headers"].get("x-wms-warehouse-token") for e in stack.access_log.since(mark)}
    assert sent["/api/inventory/HF/A01-01/SKU00001"] == "token-of-HF"
    assert sent["/api/inventory"] == "token-of-HF"
    assert_refused(finance, 403, "no_upstream_credential")
