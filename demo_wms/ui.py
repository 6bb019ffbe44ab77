"""The demo WMS's old server-rendered web pages (``/`` and ``/ui/...``)."""

from __future__ import annotations

import html
import sqlite3

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title} - 旧版 WMS / Legacy WMS</title></head>
<body><h1>{title}</h1><nav><a href="/">首页 Home</a> | <a href="/ui/orders">订单 Orders</a> |
<a href="/ui/inventory">库存 Inventory</a></nav>{body}</body></html>"""


def _page(title: str, body: str) -> web.Response:
    return web.Response(text=_PAGE.format(title=html.escape(title), body=body), content_type="text/html")


def _table(columns: list[str], rows: list[sqlite3.Row]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table border=1><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _filters(request: web.Request, columns: tuple[str, ...]) -> tuple[str, list[str]]:
    """``WHERE`` clause of the page's filters; a parameter may repeat (any of its values)."""
    clauses, args = [], []
    for column in columns:
        values = request.query.getall(column, [])
        if values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            args.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def add_routes(app: web.Application, db_key: web.AppKey[sqlite3.Connection]) -> None:
    """Register the HTML pages on ``app``; ``db_key`` names its SQLite connection."""

    async def index(request: web.Request) -> web.Response:
        return _page("仓库管理系统 Warehouse Management", "<p>请选择功能 / Choose a page.</p>")

    async def orders(request: web.Request) -> web.Response:
        db = request.app[db_key]
        where, args = _filters(request, ("warehouse", "channel", "order_type", "status"))
        rows = db.execute(f"SELECT * FROM orders{where} ORDER BY order_no LIMIT 50", args).fetchall()
        cols = ["order_no", "warehouse", "channel", "order_type", "status", "customer_name", "amount"]
        return _page("订单列表 Orders", _table(cols, rows))

    async def inventory(request: web.Request) -> web.Response:
        db = request.app[db_key]
        where, args = _filters(request, ("warehouse",))
        rows = db.execute(f"SELECT * FROM inventory{where} ORDER BY warehouse, location LIMIT 50", args).fetchall()
        return _page("库存 Inventory", _table(["warehouse", "location", "sku", "qty", "batch_no"], rows))

    app.router.add_get("/", index)
    app.router.add_get("/ui/orders", orders)
    app.router.add_get("/ui/inventory", inventory)
