"""Masking kinds through the real proxy, OPA and demo WMS: each person sees a field the way
their role allows (plain, partial, keyed hash, amount band, month, null or ***), the same in
JSON answers, legacy HTML tables and CSV and XLSX exports.

The demo policy (rego/demo/wms/masks) gives reviewers the phone's first 3 and last 4 digits,
channel operators order amounts as 100-yuan bands and everyone without customers:view a keyed
hash of customer_id. The CSV case edits the served policy (restored after the test).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from tests.support.alerting import detail_of
from tests.support.policy_edit import policy_dir, wait_for
from tests.support.stack import Stack

__all__ = ["policy_dir"]  # the fixture, imported for pytest

SALES_KINDS = """
reports.sales:
  - permission: order_amounts:view
    fields: ["rows[].revenue"]
    kind: band
    width: 1000
    modules: [reports.sales]
  - permission: order_amounts:view
    fields: ["rows[].currency"]
    kind: "null"
    modules: [reports.sales]
  - permission: order_amounts:view
    fields: [generated_at]
    kind: month
    modules: [reports.sales]
"""


def _band(amount: float, width: int) -> str:
    low = math.floor(Decimal(str(amount)) / width) * width
    return f"{low}~{low + width}"


def _orders_sharing_a_customer(stack: Stack, warehouse: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Two orders of one customer and one of another, all in ``warehouse`` (read from the WMS)."""
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with stack.wms() as wms:
        for page in range(1, 11):
            rows = wms.get("/api/orders", params={"warehouse": warehouse, "page_size": 200, "page": page}).json()
            for row in rows["items"]:
                by_customer[row["customer_id"]].append(row)
            shared = next((orders for orders in by_customer.values() if len(orders) >= 2), None)
            if shared is not None:
                other = next(orders[0] for cid, orders in by_customer.items() if cid != shared[0]["customer_id"])
                return shared[0], shared[1], other
    raise AssertionError(f"no two {warehouse} orders of one customer in the first 2000")


def test_a_picker_sees_customer_ids_as_a_keyed_hash_that_still_joins_orders(stack: Stack) -> None:
    first, second, other = _orders_sharing_a_customer(stack, "HF")
    with stack.client("picker.hf") as c:
        seen = [c.get(f"/api/orders/{o['order_no']}").json() for o in (first, second, other)]
        listing = c.get("/api/orders", params={"page_size": 200}).json()["items"]
    hashes = [doc["customer_id"] for doc in seen]
    assert all(h.startswith("h:") and len(h) == 18 for h in hashes), hashes
    assert hashes[0] == hashes[1] != hashes[2]  # joinable: the same customer, the same hash
    assert first["customer_id"] not in hashes and other["customer_id"] not in hashes
    # in a list answer too: equal ids hash alike, different ids differently, and alike across answers
    with stack.wms() as wms:
        raw = {r["order_no"]: r["customer_id"] for r in wms.get("/api/orders", params={
            "warehouse": "HF", "page_size": 200}).json()["items"]}
    pairs = {(raw[row["order_no"]], row["customer_id"]) for row in listing if row["order_no"] in raw}
    assert len(pairs) >= 20 and len({h for _, h in pairs}) == len({r for r, _ in pairs}) == len(pairs)
    assert (first["customer_id"], hashes[0]) in pairs or first["order_no"] not in raw
    assert seen[0]["customer_phone"] == "***" and seen[0]["amount"] is None  # still redacted for a picker
    with stack.client("packer.hf") as c:  # customers:view: the plain id
        assert c.get(f"/api/orders/{first['order_no']}").json()["customer_id"] == first["customer_id"]


def test_a_reviewer_sees_the_phones_first_three_and_last_four_digits(stack: Stack) -> None:
    order = stack.order(warehouse="HF")
    phone = order["customer_phone"]
    with stack.client("reviewer.hf") as c:
        resp = c.get(f"/api/orders/{order['order_no']}")
    doc = resp.json()
    assert doc["customer_phone"] == phone[:3] + "*" * (len(phone) - 7) + phone[-4:], (doc["customer_phone"], phone)
    assert doc["customer_name"] == "***" and doc["address"] == "***"
    record = stack.audit_record(resp.headers["X-Decision-Id"])
    assert "customer_phone" in detail_of(record)["masked"]
    assert phone not in str(record)  # the audit trail never holds the plain value


def test_a_channel_operator_sees_amounts_as_bands_in_json_and_in_the_legacy_html_table(stack: Stack) -> None:
    order = stack.order(channel="amazon")
    with stack.client("ops.amazon") as c:
        doc = c.get(f"/api/orders/{order['order_no']}").json()
        page = c.get("/ui/orders", params={"channel": "amazon", "page_size": 50})
    assert doc["amount"] == _band(order["amount"], 100)
    assert [i["price"] for i in doc["items"]] == [_band(i["price"], 100) for i in order["items"]]
    assert doc["customer_phone"] == "***"  # no kind for channel operators: redacted

    assert page.status_code == 200
    table = _Table()
    table.feed(page.text)
    header, rows = table.rows[0], table.rows[1:]
    amounts = [row[header.index("amount")] for row in rows]
    assert rows and all("~" in a for a in amounts), amounts[:5]
    with stack.wms() as wms:
        plain = {r["order_no"]: r["amount"] for r in wms.get("/api/orders", params={
            "channel": "amazon", "page_size": 200}).json()["items"]}
    for row in rows:
        number = row[header.index("order_no")]
        if number in plain:
            assert row[header.index("amount")] == _band(plain[number], 100)


def test_a_policy_edit_gives_bands_null_and_month_in_json_and_csv_exports(stack: Stack, policy_dir: Path) -> None:
    masks = policy_dir / "wms" / "masks" / "data.yaml"
    masks.write_text(masks.read_text(encoding="utf-8") + SALES_KINDS, encoding="utf-8")

    def sales() -> dict[str, Any]:
        with stack.client("ops.amazon") as c:
            return c.get("/api/reports/sales", params={"channel": "amazon"}).json()  # type: ignore[no-any-return]

    wait_for(lambda: all(r["currency"] is None for r in sales()["rows"]), 15, "the new masks to apply")
    with stack.client("finance") as c:
        plain = c.get("/api/reports/sales", params={"channel": "amazon"}).json()
    banded = sales()
    assert banded["generated_at"] == plain["generated_at"][:7]
    assert [r["revenue"] for r in banded["rows"]] == [_band(r["revenue"], 1000) for r in plain["rows"]]
    assert [r["channel"] for r in banded["rows"]] == [r["channel"] for r in plain["rows"]]

    with stack.client("ops.amazon") as c:
        text = c.get("/api/reports/sales.csv", params={"channel": "amazon"}).text
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("channel") == "amazon"]
    assert [r["revenue"] for r in rows] == [_band(r["revenue"], 1000) for r in plain["rows"]]
    assert all(r["currency"] == "" for r in rows)

    with stack.client("ops.amazon") as c:  # the same report as an Excel workbook: the same kinds
        workbook = c.get("/api/reports/sales.xlsx", params={"channel": "amazon"})
    assert workbook.status_code == 200, workbook.text
    [sheet] = load_workbook(io.BytesIO(workbook.content)).worksheets
    header, *cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    table = [dict(zip(header, r, strict=True)) for r in cells]
    assert [r["revenue"] for r in table] == [_band(r["revenue"], 1000) for r in plain["rows"]]
    assert all(r["currency"] is None for r in table)
    mark = f"wmsgate:{workbook.headers['X-Decision-Id']}"
    assert header[-1] == "wmsgate_watermark" and all(r["wmsgate_watermark"] == mark for r in table)
    record = detail_of(stack.audit_record(workbook.headers["X-Decision-Id"]))
    assert record["export"]["rows"] == len(table) and record["export"]["watermark"] == mark


class _Table(HTMLParser):
    """The cell texts of a page's table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
