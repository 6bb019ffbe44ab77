"""Transfer rights through the real proxy, OPA, Keycloak and demo WMS: moving stock between
warehouses needs the ship right in the source warehouse and the receive right in the target
(``also_at`` in the route map); a keeper of one warehouse cannot move stock alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.stack import Stack, assert_refused

TRANSFERS = "/api/transfers"


def _source(stack: Stack, warehouse: str) -> dict[str, Any]:
    with stack.wms() as wms:
        rows = wms.get("/api/inventory", params={"warehouse": warehouse, "page_size": 200}).json()["items"]
    return next(r for r in rows if r["qty"] >= 10)


def _qty(stack: Stack, warehouse: str, location: str, sku: str) -> int:
    with stack.wms() as wms:
        resp = wms.get(f"/api/inventory/{warehouse}/{location}/{sku}")
    return int(resp.json()["qty"]) if resp.status_code == 200 else 0


def _body(row: dict[str, Any], to_warehouse: str) -> dict[str, Any]:
    return {"sku": row["sku"], "qty": 3, "from_warehouse": row["warehouse"], "from_location": row["location"],
            "to_warehouse": to_warehouse, "to_location": "T01-01"}


def test_a_keeper_of_both_warehouses_transfers_and_a_keeper_of_one_is_refused(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    row = _source(stack, "HF")
    before = (_qty(stack, "HF", row["location"], row["sku"]), _qty(stack, "SH", "T01-01", row["sku"]))
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as keeper:  # ship right in HF, but SH is outside their scope
        body = assert_refused(keeper.post(TRANSFERS, json=_body(row, "SH")), 403, "place_out_of_scope")
    assert "inventory:receive" in body["reason_en"] and "SH" in body["reason_en"] and "SH" in body["reason_zh"]
    with stack.client("keeper.sh") as keeper:  # receive right in SH, but the stock leaves HF
        assert_refused(keeper.post(TRANSFERS, json=_body(row, "SH")), 403, "out_of_scope")
    with stack.client("picker.hf") as picker:
        assert_refused(picker.post(TRANSFERS, json=_body(row, "HF")), 403, "missing_permission")
    assert not [e for e in stack.access_log.since(mark) if e["path"] == TRANSFERS]  # nothing reached the WMS

    username, _ = throwaway_user("regional", roles=("warehouse_keeper",), warehouses=("HF", "SH"))
    with stack.client(username) as regional:
        done = regional.post(TRANSFERS, json=_body(row, "SH"))
        nowhere = regional.post(TRANSFERS, json={**_body(row, "SH"), "to_warehouse": "GZ"})
    assert done.status_code == 200, done.text
    assert (_qty(stack, "HF", row["location"], row["sku"]), _qty(stack, "SH", "T01-01", row["sku"])) == (
        before[0] - 3, before[1] + 3)
    assert_refused(nowhere, 403, "place_out_of_scope")
    record = stack.audit_record(done.headers["X-Decision-Id"])
    assert record["verb"] == "ship" and record["warehouse"] == "HF" and record["username"] == username
