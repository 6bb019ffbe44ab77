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


SIDECAR = {"opa.evaluation": "sidecar"}
NO_BUNDLE = {"opa.wasm_bundle_url": DEAD + "/bundles/wms.wasm.tar.gz"}


@pytest.mark.parametrize("override, failing", [({"opa.url": DEAD, **SIDECAR}, "opa"), (NO_BUNDLE, "pdp"),
                                               ({"upstream.url": DEAD}, "wms"),
                                               ({"oidc.issuer": DEAD + "/realms/wms"}, "keycloak_keys")])
def test_health_is_503_naming_the_unreachable_dependency(stack: Stack, restore_proxy: None,
                                                         override: dict[str, str], failing: str) -> None:
    stack.stack.restart_proxy(override, require_healthy=False)
    resp = httpx.get(f"{stack.proxy}/_gateway/health", timeout=15)
    assert resp.status_code == 503
    assert resp.json()["failing"] == [failing]


@pytest.mark.parametrize("override", [{"opa.url": DEAD, **SIDECAR}, NO_BUNDLE], ids=["sidecar-opa-down", "no-bundle"])
def test_no_pdp_means_503_and_nothing_forwarded(stack: Stack, restore_proxy: None, override: dict[str, str]) -> None:
    stack.stack.restart_proxy(override, require_healthy=False)
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.get("/api/picking/tasks")
    body = assert_refused(resp, 503, "pdp_unavailable")
    assert resp.headers["Retry-After"]
    assert not [e for e in stack.access_log.since(mark) if e["path"].startswith("/api/picking")]
    assert stack.audit_record(body["decision_id"])["decision"] == "deny"


def test_in_process_decisions_go_on_while_opa_is_down(stack: Stack, restore_proxy: None) -> None:
    """With the policy evaluated in-process, OPA (kept for explain and who-can) being down is a
    warning, not an outage: the proxy's own bundle decides."""
    stack.stack.restart_proxy({"opa.url": DEAD}, require_healthy=False)
    health = httpx.get(f"{stack.proxy}/_gateway/health", timeout=15)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["checks"]["pdp"]["ok"] and body["checks"]["pdp"]["evaluation"] == "in_process"
    assert body["policy"]["active"] == body["checks"]["pdp"]["revision"]
    assert any("OPA is down" in w for w in body["warnings"])
    with stack.client("picker.hf") as c:
        assert c.get("/api/picking/tasks").status_code == 200
        assert_refused(c.get("/api/reports/finance"), 403, "missing_permission")


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
