"""Deterministic seed data for the demo legacy WMS.

The same seed always yields the same database, so demos and tests are
reproducible. Sizes follow ``legacy-wms-api.md``: 20,000 orders, 2,000 SKUs,
10,000 inventory rows, 3,000 batches, 5,000 customers.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

WAREHOUSES: tuple[str, ...] = ("HF", "SH", "GZ", "SZ")
CHANNELS: tuple[str, ...] = ("taobao", "tmall", "douyin", "jd", "pdd", "amazon")
ORDER_TYPES: tuple[str, ...] = ("b2c", "b2b", "cross_border")
STATUSES: tuple[str, ...] = (
    "pending_pick",
    "picking",
    "picked",
    "reviewed",
    "packed",
    "shipped",
    "cancelled",
    "exception",
)

SEED = 20241111
N_ORDERS = 20_000
N_SKUS = 2_000
N_INVENTORY = 10_000
N_BATCHES = 3_000
N_CUSTOMERS = 5_000

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
_CITIES = {
    "HF": "安徽省合肥市蜀山区",
    "SH": "上海市浦东新区",
    "GZ": "广东省广州市天河区",
    "SZ": "广东省深圳市南山区",
}

SCHEMA = """
CREATE TABLE skus (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, cost REAL NOT NULL);
CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, phone TEXT, address TEXT, channel TEXT);
CREATE TABLE orders (
  order_no TEXT PRIMARY KEY, warehouse TEXT NOT NULL, channel TEXT NOT NULL, order_type TEXT NOT NULL,
  status TEXT NOT NULL, customer_id TEXT, customer_name TEXT, customer_phone TEXT, address TEXT,
  amount REAL, currency TEXT, created_at TEXT, updated_at TEXT, updated_by TEXT);
CREATE INDEX orders_filter ON orders (warehouse, channel, order_type, status);
CREATE INDEX orders_status ON orders (status, warehouse);
CREATE TABLE order_items (order_no TEXT NOT NULL, line INTEGER NOT NULL, sku TEXT, qty INTEGER, price REAL,
  PRIMARY KEY (order_no, line));
CREATE TABLE inventory (warehouse TEXT NOT NULL, location TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
  batch_no TEXT, updated_at TEXT, updated_by TEXT, PRIMARY KEY (warehouse, location, sku));
CREATE INDEX inventory_sku ON inventory (sku);
CREATE TABLE batches (batch_no TEXT PRIMARY KEY, warehouse TEXT NOT NULL, sku TEXT NOT NULL, lot TEXT,
  expiry_date TEXT, qty INTEGER, updated_by TEXT);
CREATE INDEX batches_wh ON batches (warehouse, sku);
CREATE TABLE review_records (record_id INTEGER PRIMARY KEY AUTOINCREMENT, order_no TEXT NOT NULL,
  warehouse TEXT NOT NULL, result TEXT, note TEXT, reviewer TEXT, created_at TEXT);
CREATE INDEX review_order ON review_records (order_no);
CREATE TABLE customs (order_no TEXT PRIMARY KEY, warehouse TEXT, channel TEXT, hs_code TEXT,
  declared_value REAL, currency TEXT, origin_country TEXT, status TEXT);
CREATE TABLE picking_scans (order_no TEXT, sku TEXT, qty INTEGER, scanned_by TEXT, scanned_at TEXT);
CREATE TABLE shipments (order_no TEXT PRIMARY KEY, carrier TEXT, tracking_no TEXT, shipped_at TEXT);
CREATE TABLE stocktakes (stocktake_id INTEGER PRIMARY KEY AUTOINCREMENT, warehouse TEXT, location TEXT,
  counts TEXT, created_by TEXT, created_at TEXT);
"""

_EPOCH = dt.datetime(2024, 11, 1, 8, 0, 0)


def _iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def sku_code(n: int) -> str:
    """SKU code for the 1-based number ``n``, e.g. ``SKU00001``."""
    return f"SKU{n:05d}"


def location_code(j: int) -> str:
    """Location for the j-th (0-based) inventory slot of a warehouse, e.g. ``A01-01``."""
    zone = "ABCDEFGH"[j // 625 % 8]
    rest = j % 625
    return f"{zone}{rest // 25 + 1:02d}-{rest % 25 + 1:02d}"


def create_database(path: Path, seed: int = SEED) -> None:
    """Create (replacing any existing file) and fill the demo database at ``path``.

    Args:
        path: SQLite file to write; its parent directory must exist.
        seed: random seed; the same seed always produces identical data.
    """
    tmp = path.with_suffix(".seeding")
    if tmp.exists():
        tmp.unlink()
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(SCHEMA)
        _fill(conn, random.Random(seed))
        conn.commit()
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            side.unlink()
    tmp.replace(path)


def _fill(conn: sqlite3.Connection, rng: random.Random) -> None:
    skus = []
    for n in range(1, N_SKUS + 1):
        price = round(rng.uniform(5, 500), 2)
        skus.append((sku_code(n), f"商品{n:05d}", price, round(price * rng.uniform(0.4, 0.8), 2)))
    conn.executemany("INSERT INTO skus VALUES (?,?,?,?)", skus)
    prices = {s[0]: s[2] for s in skus}

    customers: dict[str, list[tuple[str, str, str, str]]] = {c: [] for c in CHANNELS}
    rows = []
    for n in range(1, N_CUSTOMERS + 1):
        channel = CHANNELS[n % len(CHANNELS)]
        wh = WAREHOUSES[n % len(WAREHOUSES)]
        row = (f"C{n:06d}", _name(rng), _phone(rng), f"{_CITIES[wh]}{rng.randrange(1, 999)}号", channel)
        rows.append(row)
        customers[channel].append(row[:4])
    conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?)", rows)

    _fill_orders(conn, rng, customers, prices)
    _fill_stock(conn, rng)


def _fill_orders(
    conn: sqlite3.Connection,
    rng: random.Random,
    customers: dict[str, list[tuple[str, str, str, str]]],
    prices: dict[str, float],
) -> None:
    orders, items, reviews, customs = [], [], [], []
    status_weights = (30, 8, 8, 8, 8, 30, 4, 4)
    for i in range(N_ORDERS):
        created = _EPOCH + dt.timedelta(days=i // 1000, seconds=(i % 1000) * 40)
        order_no = f"SO{created:%Y%m%d}{i % 1000 + 1:05d}"
        warehouse = WAREHOUSES[i % len(WAREHOUSES)]
        channel = CHANNELS[(i // len(WAREHOUSES)) % len(CHANNELS)]
        order_type = rng.choices(ORDER_TYPES, weights=(70, 15, 15))[0]
        status = rng.choices(STATUSES, weights=status_weights)[0]
        cust = rng.choice(customers[channel])
        amount = 0.0
        for line in range(1, rng.randint(1, 4) + 1):
            sku = sku_code(rng.randint(1, N_SKUS))
            qty = rng.randint(1, 5)
            items.append((order_no, line, sku, qty, prices[sku]))
            amount += qty * prices[sku]
        currency = "USD" if order_type == "cross_border" else "CNY"
        orders.append(
            (order_no, warehouse, channel, order_type, status, cust[0], cust[1], cust[2], cust[3],
             round(amount, 2), currency, _iso(created), _iso(created), "seed")
        )
        if status in ("reviewed", "packed", "shipped"):
            reviews.append((order_no, warehouse, "pass", "", "seed", _iso(created + dt.timedelta(hours=2))))
        if order_type == "cross_border":
            customs.append(
                (order_no, warehouse, channel, f"{rng.randrange(10**9, 10**10)}", round(amount, 2), currency,
                 rng.choice(("CN", "JP", "KR", "US", "DE")), "declared" if status == "shipped" else "draft")
            )
    conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?)", items)
    conn.executemany(
        "INSERT INTO review_records (order_no, warehouse, result, note, reviewer, created_at) VALUES (?,?,?,?,?,?)",
        reviews,
    )
    conn.executemany("INSERT INTO customs VALUES (?,?,?,?,?,?,?,?)", customs)


def _fill_stock(conn: sqlite3.Connection, rng: random.Random) -> None:
    batches = []
    for n in range(1, N_BATCHES + 1):
        warehouse = WAREHOUSES[n % len(WAREHOUSES)]
        expiry = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(0, 730))
        batches.append(
            (f"B2024{n:06d}", warehouse, sku_code(rng.randint(1, N_SKUS)), f"LOT{rng.randrange(10**6):06d}",
             expiry.isoformat(), rng.randint(10, 1000), "seed")
        )
    conn.executemany("INSERT INTO batches VALUES (?,?,?,?,?,?,?)", batches)
    per_wh = N_INVENTORY // len(WAREHOUSES)
    inventory = []
    for warehouse in WAREHOUSES:
        wh_batches = [b for b in batches if b[1] == warehouse]
        for j in range(per_wh):
            inventory.append(
                (warehouse, location_code(j), sku_code(j % N_SKUS + 1), rng.randint(0, 500),
                 rng.choice(wh_batches)[0], _iso(_EPOCH), "seed")
            )
    conn.executemany("INSERT INTO inventory VALUES (?,?,?,?,?,?,?)", inventory)
