"""Magnitude rules through the real proxy, OPA and demo WMS: an inventory adjustment always
needs step-up MFA, and four-eyes approval only above 100 units or above 5000 at the SKU's
unit cost (read fresh from the WMS's SKU master); one whose quantity cannot be read is held."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.stack import Stack, assert_refused


def _stock(stack: Stack, cheap: bool) -> tuple[dict[str, Any], float]:
    """An HF inventory row with at least 200 units whose SKU costs under 10 (``cheap``) or over 200, and its cost."""
    with stack.wms() as wms:
        for page in range(1, 11):
            rows = wms.get("/api/inventory", params={"warehouse": "HF", "page_size": 200, "page": page}).json()
            for row in rows["items"]:
                if row["qty"] < 200:
                    continue
                cost = float(wms.get(f"/api/skus/{row['sku']}").json()["cost"])
                if (cost < 10) if cheap else (cost > 200):
                    return row, cost
    raise AssertionError(f"no HF stock of a {'cheap' if cheap else 'dear'} SKU with 200+ units")


def _adjust(client: httpx.Client, row: dict[str, Any], delta: object) -> httpx.Response:
    return client.post("/api/inventory/adjust", json={"warehouse": row["warehouse"], "location": row["location"],
                                                      "sku": row["sku"], "delta": delta, "reason": "盘点差异"})


def _qty(stack: Stack, row: dict[str, Any]) -> int:
    with stack.wms() as wms:
        return int(wms.get(f"/api/inventory/{row['warehouse']}/{row['location']}/{row['sku']}").json()["qty"])


def _withdraw(client: httpx.Client, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    assert body["operation"] == "inventory_change" and body["status"] == "pending"
    client.post(f"/_gateway/approvals/{body['approval_id']}/withdraw")
    return body


def test_a_small_adjustment_needs_step_up_but_no_second_person(stack: Stack) -> None:
    row, cost = _stock(stack, cheap=True)
    before = _qty(stack, row)
    with stack.client("keeper.hf") as keeper:  # a password login: step up first
        challenge = assert_refused(_adjust(keeper, row, -2), 401, "step_up_required")
    assert "change an inventory quantity" in challenge["reason_en"]
    with stack.client("keeper.hf", mfa=True) as keeper:
        done = _adjust(keeper, row, -2)
    assert done.status_code == 200, done.text
    assert _qty(stack, row) == before - 2 and 2 * cost < 5000
    record = stack.audit_record(done.headers["X-Decision-Id"])
    assert record["decision"] == "allow" and record["approval_id"] is None


def test_an_adjustment_above_the_quantity_or_the_value_is_held_for_approval(stack: Stack) -> None:
    cheap, _ = _stock(stack, cheap=True)
    dear, cost = _stock(stack, cheap=False)
    before = (_qty(stack, cheap), _qty(stack, dear))
    with stack.client("keeper.hf", mfa=True) as keeper:
        _withdraw(keeper, _adjust(keeper, cheap, -150))  # 150 units, however cheap
        assert 30 * cost > 5000
        _withdraw(keeper, _adjust(keeper, dear, 30))  # 30 units worth more than 5000
        _withdraw(keeper, _adjust(keeper, cheap, "-5"))  # a quantity that is not a number: held, not judged small
        small = _adjust(keeper, dear, 1)
    assert small.status_code == 200, small.text  # 1 unit of the dear SKU is under both limits
    assert (_qty(stack, cheap), _qty(stack, dear)) == (before[0], before[1] + 1)
