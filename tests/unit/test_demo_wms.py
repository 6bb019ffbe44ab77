"""The demo WMS: deterministic seed and the API as handed over (warts included)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from demo_wms.app import create_app
from demo_wms.seed import create_database


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wms") / "wms.db"
    create_database(path)
    return path


def _digest(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM orders ORDER BY order_no").fetchall()
        rows += conn.execute("SELECT * FROM inventory ORDER BY warehouse, location, sku").fetchall()
    finally:
        conn.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_seed_sizes_and_determinism(db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("orders", "skus", "inventory", "batches", "customers")}
    conn.close()
    assert counts == {"orders": 20000, "skus": 2000, "inventory": 10000, "batches": 3000, "customers": 5000}
    again = tmp_path / "again.db"
    create_database(again)
    assert _digest(again) == _digest(db)


def _call(db: Path, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async def run() -> tuple[int, Any]:
        async with TestClient(TestServer(create_app(db))) as client:
            resp = await client.request(method, path, **kwargs)
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body
    return asyncio.run(run())


def test_orders_filter_repeats_and_pagination(db: Path) -> None:
    status, body = _call(db, "GET", "/api/orders?warehouse=HF&warehouse=SH&page_size=200&page=2")
    assert status == 200 and body["page"] == 2 and len(body["items"]) == 200
    assert {o["warehouse"] for o in body["items"]} <= {"HF", "SH"} and body["total"] == 10000
    assert _call(db, "GET", "/api/orders?page_size=201")[0] == 400


def test_order_numbers_look_legacy(db: Path) -> None:
    status, order = _call(db, "GET", "/api/orders/SO2024111100012")
    assert status == 200 and order["items"] and "customer_phone" in order and "amount" in order


def test_sales_report_without_channel_covers_every_channel(db: Path) -> None:
    _, body = _call(db, "GET", "/api/reports/sales")
    assert {r["channel"] for r in body["rows"]} == {"taobao", "tmall", "douyin", "jd", "pdd", "amazon"}


def test_operator_name_comes_from_the_header_blindly(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "w.db"
    copy.write_bytes(db.read_bytes())
    status, body = _call(copy, "POST", "/api/inventory/adjust", headers={"X-WMS-User": "anyone"},
                         json={"warehouse": "HF", "location": "A01-01", "sku": "SKU00001", "delta": 1, "reason": "t"})
    assert status == 200 and body["updated_by"] == "anyone"


def test_errors_have_the_legacy_shape(db: Path) -> None:
    assert _call(db, "GET", "/api/orders/NOPE") == (404, {"error": "not_found"})
    status, body = _call(db, "POST", "/api/picking/SO2024111100012/scan", data=b"[1]",
                         headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"] == "bad_request"
    assert _call(db, "GET", "/api/customs/SO2024110100001")[0] in (200, 404)
