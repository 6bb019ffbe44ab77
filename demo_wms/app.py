"""The demo legacy WMS: an unauthenticated JSON API over SQLite.

It implements ``legacy-wms-api.md`` as given, warts included: it trusts every
caller, takes the operator's name from ``X-WMS-User`` and reports over all
channels when no channel is named. It is a stand-in for the customer's system and
knows nothing about the gateway.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from openpyxl import Workbook

from demo_wms import ui

DB_KEY = web.AppKey("db", sqlite3.Connection)
ACCESS_LOG_KEY = web.AppKey("access_log", object)

MAX_PAGE_SIZE = 200
ORDER_STATUSES = {"pending_pick", "picking", "picked", "reviewed", "packed", "shipped", "cancelled", "exception"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """A client error the WMS answers with 400 ``{"error": "bad_request", "detail": ...}``."""


def _now() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _not_found() -> web.Response:
    return _json({"error": "not_found"}, 404)


def _user(request: web.Request) -> str:
    return request.headers.get("X-WMS-User", "")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _page(request: web.Request) -> tuple[int, int]:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", "50"))
    except ValueError as exc:
        raise BadRequest("page and page_size must be integers") from exc
    if page < 1 or size < 1 or size > MAX_PAGE_SIZE:
        raise BadRequest(f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")
    return page, size


def _filters(request: web.Request, columns: dict[str, str]) -> tuple[str, list[Any]]:
    """WHERE clause for repeatable query filters ``{param: column}``."""
    clauses, args = [], []
    for param, column in columns.items():
        values = request.query.getall(param, [])
        if values:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _list(db: sqlite3.Connection, request: web.Request, table: str, filters: dict[str, str],
          order_by: str, extra_where: str = "") -> dict[str, Any]:
    page, size = _page(request)
    where, args = _filters(request, filters)
    if extra_where:
        where = (where + " AND " if where else " WHERE ") + extra_where
    total = db.execute(f"SELECT COUNT(*) FROM {table}{where}", args).fetchone()[0]
    rows = db.execute(
        f"SELECT * FROM {table}{where} ORDER BY {order_by} LIMIT ? OFFSET ?", [*args, size, (page - 1) * size]
    ).fetchall()
    return {"items": [dict(r) for r in rows], "total": total, "page": page, "page_size": size}


def _order(db: sqlite3.Connection, order_no: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM orders WHERE order_no = ?", (order_no,)).fetchone()
    if row is None:
        return None
    order = dict(row)
    order["items"] = [
        dict(r) for r in db.execute(
            "SELECT sku, qty, price FROM order_items WHERE order_no = ? ORDER BY line", (order_no,))
    ]
    return order


def _with_items(db: sqlite3.Connection, listing: dict[str, Any]) -> dict[str, Any]:
    for order in listing["items"]:
        order["items"] = [
            dict(r) for r in db.execute(
                "SELECT sku, qty, price FROM order_items WHERE order_no = ? ORDER BY line", (order["order_no"],))
        ]
    return listing


def _set_status(db: sqlite3.Connection, order_no: str, status: str, user: str) -> None:
    db.execute("UPDATE orders SET status = ?, updated_at = ?, updated_by = ? WHERE order_no = ?",
               (status, _now(), user, order_no))


ORDER_FILTERS = {"warehouse": "warehouse", "channel": "channel", "order_type": "order_type", "status": "status"}


# --- orders -----------------------------------------------------------------

async def list_orders(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    return _json(_with_items(db, _list(db, request, "orders", ORDER_FILTERS, "order_no")))


async def get_order(request: web.Request) -> web.Response:
    order = _order(request.app[DB_KEY], request.match_info["order_no"])
    return _json(order) if order else _not_found()


async def legacy_order_detail(request: web.Request) -> web.Response:
    order_no = request.query.get("order_no")
    if not order_no:
        raise BadRequest("order_no is required")
    order = _order(request.app[DB_KEY], order_no)
    return _json(order) if order else _not_found()


async def patch_order(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    if _order(db, order_no) is None:
        return _not_found()
    sets, args = [], []
    if "status" in body:
        if body["status"] not in ORDER_STATUSES:
            raise BadRequest(f"unknown status {body['status']!r}")
        sets.append("status = ?")
        args.append(body["status"])
    if "amount" in body:
        if not isinstance(body["amount"], (int, float)):
            raise BadRequest("amount must be a number")
        sets.append("amount = ?")
        args.append(body["amount"])
    if "address" in body:
        sets.append("address = ?")
        args.append(str(body["address"]))
    if "items" in body:
        items = body["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) and "sku" in i for i in items):
            raise BadRequest("items must be a list of {sku, qty, price}")
        db.execute("DELETE FROM order_items WHERE order_no = ?", (order_no,))
        db.executemany("INSERT INTO order_items VALUES (?,?,?,?,?)",
                       [(order_no, n, i["sku"], i.get("qty", 1), i.get("price", 0)) for n, i in enumerate(items, 1)])
    if not sets and "items" not in body:
        raise BadRequest("body must contain any of status, amount, items, address")
    sets += ["updated_at = ?", "updated_by = ?"]
    db.execute(f"UPDATE orders SET {', '.join(sets)} WHERE order_no = ?", [*args, _now(), _user(request), order_no])
    db.commit()
    return _json(_order(db, order_no))


async def delete_order(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    cur = db.execute("DELETE FROM orders WHERE order_no = ?", (order_no,))
    if cur.rowcount == 0:
        return _not_found()
    db.execute("DELETE FROM order_items WHERE order_no = ?", (order_no,))
    db.commit()
    return web.Response(status=204)


def _order_nos(body: dict[str, Any]) -> list[str]:
    nos = body.get("order_nos")
    if not isinstance(nos, list) or not nos or not all(isinstance(n, str) for n in nos):
        raise BadRequest("order_nos must be a non-empty list of strings")
    return nos


async def batch_delete(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    nos = _order_nos(await _body(request))
    deleted = 0
    for no in nos:
        deleted += db.execute("DELETE FROM orders WHERE order_no = ?", (no,)).rowcount
        db.execute("DELETE FROM order_items WHERE order_no = ?", (no,))
    db.commit()
    return _json({"deleted": deleted})


async def batch_status(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    body = await _body(request)
    nos = _order_nos(body)
    if body.get("status") not in ORDER_STATUSES:
        raise BadRequest("status must be a known order status")
    updated = 0
    for no in nos:
        updated += db.execute("UPDATE orders SET status = ?, updated_at = ?, updated_by = ? WHERE order_no = ?",
                              (body["status"], _now(), _user(request), no)).rowcount
    db.commit()
    return _json({"updated": updated})


# --- picking, review, packing, shipping, exceptions ---------------------------

async def picking_tasks(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    return _json(_list(db, request, "orders", {"warehouse": "warehouse"}, "order_no", "status = 'pending_pick'"))


async def picking_scan(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    if not isinstance(body.get("sku"), str) or not isinstance(body.get("qty"), int):
        raise BadRequest("body must be {sku: string, qty: integer}")
    order = _order(db, order_no)
    if order is None:
        return _not_found()
    if order["status"] not in ("pending_pick", "picking"):
        raise BadRequest(f"order is {order['status']}, not pickable")
    db.execute("INSERT INTO picking_scans VALUES (?,?,?,?,?)",
               (order_no, body["sku"], body["qty"], _user(request), _now()))
    _set_status(db, order_no, "picking", _user(request))
    db.commit()
    return _json({"order_no": order_no, "status": "picking", "scanned": {"sku": body["sku"], "qty": body["qty"]}})


def _transition(allowed_from: tuple[str, ...], to: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        db = request.app[DB_KEY]
        order_no = request.match_info["order_no"]
        order = _order(db, order_no)
        if order is None:
            return _not_found()
        if order["status"] not in allowed_from:
            raise BadRequest(f"order is {order['status']}; expected one of {', '.join(allowed_from)}")
        _set_status(db, order_no, to, _user(request))
        db.commit()
        return _json(_order(db, order_no))
    return handler


picking_confirm = _transition(("pending_pick", "picking"), "picked")
packing = _transition(("reviewed",), "packed")


async def review(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    if body.get("result") not in ("pass", "fail"):
        raise BadRequest('result must be "pass" or "fail"')
    order = _order(db, order_no)
    if order is None:
        return _not_found()
    db.execute("INSERT INTO review_records (order_no, warehouse, result, note, reviewer, created_at) "
               "VALUES (?,?,?,?,?,?)",
               (order_no, order["warehouse"], body["result"], str(body.get("note", "")), _user(request), _now()))
    _set_status(db, order_no, "reviewed" if body["result"] == "pass" else "exception", _user(request))
    db.commit()
    return _json(_order(db, order_no))


async def review_records(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    return _json(_list(db, request, "review_records", {"order_no": "order_no", "warehouse": "warehouse"}, "record_id"))


async def delete_review_record(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    try:
        record_id = int(request.match_info["record_id"])
    except ValueError:
        return _not_found()
    if db.execute("DELETE FROM review_records WHERE record_id = ?", (record_id,)).rowcount == 0:
        return _not_found()
    db.commit()
    return web.Response(status=204)


async def shipping(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    if not body.get("carrier") or not body.get("tracking_no"):
        raise BadRequest("carrier and tracking_no are required")
    order = _order(db, order_no)
    if order is None:
        return _not_found()
    if order["status"] != "packed":
        raise BadRequest(f"order is {order['status']}, not packed")
    db.execute("INSERT OR REPLACE INTO shipments VALUES (?,?,?,?)",
               (order_no, body["carrier"], body["tracking_no"], _now()))
    _set_status(db, order_no, "shipped", _user(request))
    db.commit()
    return _json(_order(db, order_no))


async def exceptions(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    return _json(_list(db, request, "orders", {"warehouse": "warehouse"}, "order_no", "status = 'exception'"))


async def resolve_exception(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    action = body.get("action")
    targets = {"repick": "pending_pick", "cancel": "cancelled", "release": "reviewed"}
    if action not in targets:
        raise BadRequest(f"action must be one of {', '.join(targets)}")
    order = _order(db, order_no)
    if order is None:
        return _not_found()
    if order["status"] != "exception":
        raise BadRequest(f"order is {order['status']}, not exception")
    _set_status(db, order_no, targets[action], _user(request))
    db.commit()
    return _json(_order(db, order_no))


# --- inventory, locations, stocktakes, batches -------------------------------

async def list_inventory(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    filters = {"warehouse": "warehouse", "sku": "sku", "location": "location"}
    return _json(_list(db, request, "inventory", filters, "warehouse, location, sku"))


def _inventory_row(db: sqlite3.Connection, warehouse: str, location: str, sku: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM inventory WHERE warehouse = ? AND location = ? AND sku = ?",
                     (warehouse, location, sku)).fetchone()
    return dict(row) if row else None


async def get_inventory(request: web.Request) -> web.Response:
    m = request.match_info
    row = _inventory_row(request.app[DB_KEY], m["warehouse"], m["location"], m["sku"])
    return _json(row) if row else _not_found()


async def delete_inventory(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    m = request.match_info
    cur = db.execute("DELETE FROM inventory WHERE warehouse = ? AND location = ? AND sku = ?",
                     (m["warehouse"], m["location"], m["sku"]))
    if cur.rowcount == 0:
        return _not_found()
    db.commit()
    return web.Response(status=204)


def _require(body: dict[str, Any], fields: dict[str, type]) -> None:
    for name, kind in fields.items():
        if not isinstance(body.get(name), kind) or isinstance(body.get(name), bool):
            raise BadRequest(f"{name} must be {kind.__name__}")


async def adjust_inventory(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    body = await _body(request)
    _require(body, {"warehouse": str, "location": str, "sku": str, "delta": int, "reason": str})
    row = _inventory_row(db, body["warehouse"], body["location"], body["sku"])
    if row is None:
        return _not_found()
    if row["qty"] + body["delta"] < 0:
        raise BadRequest("quantity would become negative")
    db.execute("UPDATE inventory SET qty = qty + ?, updated_at = ?, updated_by = ? "
               "WHERE warehouse = ? AND location = ? AND sku = ?",
               (body["delta"], _now(), _user(request), body["warehouse"], body["location"], body["sku"]))
    db.commit()
    return _json(_inventory_row(db, body["warehouse"], body["location"], body["sku"]))


def _move_stock(request: web.Request, sku: str, qty: int, source: tuple[str, str],
                target: tuple[str, str]) -> web.Response:
    """Move ``qty`` of ``sku`` from ``source`` to ``target`` (``(warehouse, location)`` each)."""
    db = request.app[DB_KEY]
    src = _inventory_row(db, source[0], source[1], sku)
    if src is None:
        return _not_found()
    if qty <= 0 or src["qty"] < qty:
        raise BadRequest("qty must be positive and at most the source quantity")
    user, now = _user(request), _now()
    db.execute("UPDATE inventory SET qty = qty - ?, updated_at = ?, updated_by = ? "
               "WHERE warehouse = ? AND location = ? AND sku = ?", (qty, now, user, source[0], source[1], sku))
    db.execute("INSERT INTO inventory VALUES (?,?,?,?,?,?,?) ON CONFLICT (warehouse, location, sku) "
               "DO UPDATE SET qty = qty + excluded.qty, updated_at = excluded.updated_at, "
               "updated_by = excluded.updated_by",
               (target[0], target[1], sku, qty, src["batch_no"], now, user))
    db.commit()
    return _json({"from": _inventory_row(db, source[0], source[1], sku),
                  "to": _inventory_row(db, target[0], target[1], sku)})


async def move_location(request: web.Request) -> web.Response:
    body = await _body(request)
    _require(body, {"warehouse": str, "sku": str, "from_location": str, "to_location": str, "qty": int})
    return _move_stock(request, body["sku"], body["qty"], (body["warehouse"], body["from_location"]),
                       (body["warehouse"], body["to_location"]))


async def transfer_stock(request: web.Request) -> web.Response:
    """Move stock from one warehouse's location to another warehouse's location."""
    body = await _body(request)
    _require(body, {"sku": str, "qty": int, "from_warehouse": str, "from_location": str, "to_warehouse": str,
                    "to_location": str})
    return _move_stock(request, body["sku"], body["qty"], (body["from_warehouse"], body["from_location"]),
                       (body["to_warehouse"], body["to_location"]))


async def stocktake(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    body = await _body(request)
    _require(body, {"warehouse": str, "location": str, "counts": list})
    cur = db.execute("INSERT INTO stocktakes (warehouse, location, counts, created_by, created_at) VALUES (?,?,?,?,?)",
                     (body["warehouse"], body["location"], json.dumps(body["counts"]), _user(request), _now()))
    db.commit()
    return _json({"stocktake_id": cur.lastrowid, "warehouse": body["warehouse"], "location": body["location"],
                  "counts": body["counts"]}, 201)


async def list_batches(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    return _json(_list(db, request, "batches", {"warehouse": "warehouse", "sku": "sku"}, "batch_no"))


async def get_batch(request: web.Request) -> web.Response:
    row = request.app[DB_KEY].execute("SELECT * FROM batches WHERE batch_no = ?",
                                      (request.match_info["batch_no"],)).fetchone()
    return _json(dict(row)) if row else _not_found()


async def patch_batch(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    batch_no = request.match_info["batch_no"]
    body = await _body(request)
    sets, args = [], []
    for field in ("lot", "expiry_date"):
        if field in body:
            sets.append(f"{field} = ?")
            args.append(str(body[field]))
    if not sets:
        raise BadRequest("body must contain lot or expiry_date")
    cur = db.execute(f"UPDATE batches SET {', '.join(sets)}, updated_by = ? WHERE batch_no = ?",
                     [*args, _user(request), batch_no])
    if cur.rowcount == 0:
        return _not_found()
    db.commit()
    return await get_batch(request)


# --- SKU master data, customers, customs --------------------------------------

async def get_sku(request: web.Request) -> web.Response:
    """The SKU master record: name, list price and unit cost (what an inventory change is worth)."""
    row = request.app[DB_KEY].execute("SELECT * FROM skus WHERE sku = ?", (request.match_info["sku"],)).fetchone()
    return _json(dict(row)) if row else _not_found()


async def get_customer(request: web.Request) -> web.Response:
    row = request.app[DB_KEY].execute("SELECT * FROM customers WHERE customer_id = ?",
                                      (request.match_info["customer_id"],)).fetchone()
    return _json(dict(row)) if row else _not_found()


async def get_customs(request: web.Request) -> web.Response:
    row = request.app[DB_KEY].execute("SELECT * FROM customs WHERE order_no = ?",
                                      (request.match_info["order_no"],)).fetchone()
    return _json(dict(row)) if row else _not_found()


async def put_customs(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    order_no = request.match_info["order_no"]
    body = await _body(request)
    _require(body, {"hs_code": str, "currency": str, "origin_country": str})
    if not isinstance(body.get("declared_value"), (int, float)):
        raise BadRequest("declared_value must be a number")
    cur = db.execute("UPDATE customs SET hs_code = ?, declared_value = ?, currency = ?, origin_country = ? "
                     "WHERE order_no = ?",
                     (body["hs_code"], body["declared_value"], body["currency"], body["origin_country"], order_no))
    if cur.rowcount == 0:
        return _not_found()
    db.execute("UPDATE orders SET updated_at = ?, updated_by = ? WHERE order_no = ?",
               (_now(), _user(request), order_no))
    db.commit()
    return await get_customs(request)


# --- reports ----------------------------------------------------------------

def _date_range(request: web.Request) -> tuple[str, list[str]]:
    clauses, args = [], []
    if request.query.get("date_from"):
        clauses.append("created_at >= ?")
        args.append(request.query["date_from"])
    if request.query.get("date_to"):
        clauses.append("created_at < ?")
        args.append(request.query["date_to"] + "T99")
    return " AND ".join(clauses), args


def _report_where(request: web.Request, params: tuple[str, ...]) -> tuple[str, list[str]]:
    clauses, args = [], []
    for param in params:
        value = request.query.get(param)
        if value:
            clauses.append(f"{param} = ?")
            args.append(value)
    dates, date_args = _date_range(request)
    if dates:
        clauses.append(dates)
        args += date_args
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def report_warehouse(request: web.Request) -> web.Response:
    db = request.app[DB_KEY]
    where, args = _report_where(request, ("warehouse",))
    rows = [dict(r) for r in db.execute(
        f"SELECT warehouse, COUNT(*) AS orders, SUM(status = 'shipped') AS shipped, "
        f"SUM(status = 'exception') AS exceptions FROM orders{where} GROUP BY warehouse ORDER BY warehouse", args)]
    stock = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT warehouse, SUM(qty), COUNT(DISTINCT sku) FROM inventory GROUP BY warehouse")}
    for row in rows:
        row["inventory_qty"], row["sku_count"] = stock.get(row["warehouse"], (0, 0))
    return _json({"report": "warehouse", "rows": rows, "generated_at": _now()})


def _sales_rows(request: web.Request) -> list[dict[str, Any]]:
    where, args = _report_where(request, ("channel",))
    where = (where + " AND " if where else " WHERE ") + "status != 'cancelled'"
    return [dict(r) for r in request.app[DB_KEY].execute(
        f"SELECT channel, warehouse, currency, COUNT(*) AS orders, ROUND(SUM(amount), 2) AS revenue "
        f"FROM orders{where} GROUP BY channel, warehouse, currency ORDER BY channel, warehouse, currency", args)]


async def report_sales(request: web.Request) -> web.Response:
    return _json({"report": "sales", "rows": _sales_rows(request), "generated_at": _now()})


async def report_sales_xlsx(request: web.Request) -> web.Response:
    """The sales report as an Excel workbook (one sheet, a header row), as legacy WMSs export it."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "sales"
    columns = ["channel", "warehouse", "currency", "orders", "revenue"]
    sheet.append(columns)
    for row in _sales_rows(request):
        sheet.append([row[c] for c in columns])
    out = io.BytesIO()
    book.save(out)
    return web.Response(body=out.getvalue(),
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


async def report_sales_csv(request: web.Request) -> web.Response:
    rows = _sales_rows(request)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["channel", "warehouse", "currency", "orders", "revenue"])
    writer.writeheader()
    writer.writerows(rows)
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")


async def report_finance(request: web.Request) -> web.Response:
    rows = [dict(r) for r in request.app[DB_KEY].execute(
        "SELECT o.warehouse, o.channel, ROUND(SUM(i.qty * i.price), 2) AS revenue, "
        "ROUND(SUM(i.qty * s.cost), 2) AS cost, ROUND(SUM(i.qty * (i.price - s.cost)), 2) AS margin "
        "FROM orders o JOIN order_items i ON i.order_no = o.order_no JOIN skus s ON s.sku = i.sku "
        "WHERE o.status != 'cancelled' GROUP BY o.warehouse, o.channel ORDER BY o.warehouse, o.channel")]
    return _json({"report": "finance", "rows": rows, "generated_at": _now()})


async def report_fulfillment(request: web.Request) -> web.Response:
    where, args = _report_where(request, ("warehouse", "channel"))
    rows = [dict(r) for r in request.app[DB_KEY].execute(
        f"SELECT warehouse, channel, COUNT(*) AS orders, SUM(status = 'shipped') AS shipped, "
        f"SUM(status IN ('pending_pick', 'picking', 'picked', 'reviewed', 'packed')) AS in_progress, "
        f"SUM(status = 'exception') AS exceptions FROM orders{where} "
        f"GROUP BY warehouse, channel ORDER BY warehouse, channel", args)]
    for row in rows:
        row["fulfillment_rate"] = round(row["shipped"] / row["orders"], 4) if row["orders"] else 0.0
    return _json({"report": "fulfillment", "rows": rows, "generated_at": _now()})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


# --- application ------------------------------------------------------------

@web.middleware
async def _errors_and_access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except BadRequest as exc:
        response = _json({"error": "bad_request", "detail": str(exc)}, 400)
    except web.HTTPNotFound:
        response = _not_found()
    except web.HTTPMethodNotAllowed:
        response = _json({"error": "method_not_allowed"}, 405)
    log = request.app[ACCESS_LOG_KEY]
    if log is not None:
        entry = {"ts": time.time(), "method": request.method, "path": request.raw_path,
                 "status": response.status, "ms": round((time.perf_counter() - started) * 1000, 3),
                 "headers": {k.lower(): v for k, v in request.headers.items()}}
        log.write(json.dumps(entry, ensure_ascii=False) + "\n")  # type: ignore[attr-defined]
        log.flush()  # type: ignore[attr-defined]
    return response


def create_app(db_path: Path, access_log: Path | None = None) -> web.Application:
    """Build the demo WMS application.

    Args:
        db_path: an existing SQLite database made by :func:`demo_wms.seed.create_database`.
        access_log: optional file that receives one JSON line per request
            (time, method, raw path, status, latency in ms, request headers), like
            a legacy server's access log.

    Returns:
        The aiohttp application; its database connection closes on cleanup.
    """
    app = web.Application(middlewares=[_errors_and_access_log])
    conn = sqlite3.connect(db_path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    app[DB_KEY] = conn
    app[ACCESS_LOG_KEY] = open(access_log, "a", encoding="utf-8") if access_log else None

    async def _close(app: web.Application) -> None:
        conn.close()
        if app[ACCESS_LOG_KEY] is not None:
            app[ACCESS_LOG_KEY].close()  # type: ignore[attr-defined]

    app.on_cleanup.append(_close)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/api/orders", list_orders)
    r.add_post("/api/orders/batch_delete", batch_delete)
    r.add_post("/api/orders/batch_status", batch_status)
    r.add_get("/api/orders/{order_no}", get_order)
    r.add_patch("/api/orders/{order_no}", patch_order)
    r.add_delete("/api/orders/{order_no}", delete_order)
    r.add_get("/api/picking/tasks", picking_tasks)
    r.add_post("/api/picking/{order_no}/scan", picking_scan)
    r.add_post("/api/picking/{order_no}/confirm", picking_confirm)
    r.add_get("/api/review/records", review_records)
    r.add_delete("/api/review/records/{record_id}", delete_review_record)
    r.add_post("/api/review/{order_no}", review)
    r.add_post("/api/packing/{order_no}", packing)
    r.add_post("/api/shipping/{order_no}", shipping)
    r.add_get("/api/exceptions", exceptions)
    r.add_post("/api/exceptions/{order_no}/resolve", resolve_exception)
    r.add_get("/api/inventory", list_inventory)
    r.add_post("/api/inventory/adjust", adjust_inventory)
    r.add_get("/api/inventory/{warehouse}/{location}/{sku}", get_inventory)
    r.add_delete("/api/inventory/{warehouse}/{location}/{sku}", delete_inventory)
    r.add_post("/api/locations/move", move_location)
    r.add_post("/api/transfers", transfer_stock)
    r.add_post("/api/stocktakes", stocktake)
    r.add_get("/api/batches", list_batches)
    r.add_get("/api/batches/{batch_no}", get_batch)
    r.add_patch("/api/batches/{batch_no}", patch_batch)
    r.add_get("/api/skus/{sku}", get_sku)
    r.add_get("/api/customers/{customer_id}", get_customer)
    r.add_get("/api/customs/{order_no}", get_customs)
    r.add_put("/api/customs/{order_no}", put_customs)
    r.add_get("/api/reports/warehouse", report_warehouse)
    r.add_get("/api/reports/sales", report_sales)
    r.add_get("/api/reports/sales.csv", report_sales_csv)
    r.add_get("/api/reports/sales.xlsx", report_sales_xlsx)
    r.add_get("/api/reports/finance", report_finance)
    r.add_get("/api/reports/fulfillment", report_fulfillment)
    r.add_get("/legacy/order_detail.do", legacy_order_detail)
    ui.add_routes(app, DB_KEY)
    return app
