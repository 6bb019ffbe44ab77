"""The console's alerts page: security alerts for the people who handle them.

``GET  /_gateway/ui/alerts[?status=open|acknowledged|resolved|all]``   the list (``alerts:view``)
``POST /_gateway/ui/alerts/{id}/acknowledge|resolve``                  with an optional note (``alerts:update``)

Decided by the policy and audited like every console page; the work is done by the
alert API's client (:mod:`proxy.management.alerts`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.routes import Route
from authorizer.messages import TEXTS, Text
from proxy.console_pages import console_page
from proxy.gateway import Gateway
from proxy.lifecycle import context_of, sub_path
from proxy.management import alerts as alerts_api
from proxy.management.console import UI, Body, Form, console_view, identity_provider_origin
from proxy.pipeline import decide_or_refuse
from proxy.responses import refusal

ALERTS = f"{UI}/alerts"
_ID = re.compile(r"^[0-9a-f]{32}$")
STATUSES = {status: TEXTS[f"alert_{status}"] for status in ("open", "acknowledged", "resolved", "all")}
SEVERITIES = {level: TEXTS[f"severity_{level}"] for level in ("critical", "high", "medium", "low")}
_DONE = {"acknowledge": TEXTS["alert_acknowledged_done"], "resolve": TEXTS["alert_resolved_done"]}


def _client(gw: Gateway) -> alerts_api.AlertsClient:
    if gw.alerts is None:
        raise alerts_api.unavailable()
    return gw.alerts


async def _decide(request: web.Request, route: Route, resource: Resource) -> None:
    decision, _ = await decide_or_refuse(context_of(request), route, resource)
    if decision.obligations.approval is not None:
        raise alerts_api.approval_not_supported()


def _moves(alert: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(action, zh, en)`` of what can still be done to ``alert``."""
    moves = ["acknowledge"] if alert["status"] == "open" else []
    if alert["status"] != "resolved":
        moves.append("resolve")
    return [(move, TEXTS[f"alert_{move}"].zh, TEXTS[f"alert_{move}"].en) for move in moves]


@console_view
async def alerts_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                      form: Form, csrf: str) -> web.Response:
    """The alerts of one status (open by default), most recently seen first, with their actions."""
    status = request.query.get("status", "open")
    if status not in STATUSES:
        raise refusal("bad_alert_query")
    await _decide(request, alerts_api.LIST, Resource(kind="list"))
    query = {"limit": "200", **({"status": status} if status != "all" else {})}
    doc = await alerts_api.fetch(_client(gw), "GET", "/alerts", query)
    rows = [{**a, "severity_text": SEVERITIES.get(a["severity"], Text(a["severity"], a["severity"])),
             "status_text": STATUSES.get(a["status"], Text(a["status"], a["status"])),
             "who": a.get("resolved_by") or a.get("acknowledged_by"), "note": a.get("note"), "moves": _moves(a)}
            for a in doc["alerts"]]
    return console_page(request, TEXTS["title_alerts"], "alerts",
                        {"statuses": list(STATUSES.items()), "status": status, "counts": doc.get("counts", {}),
                         "done": _DONE.get(request.query.get("done", "")), "rows": rows, "csrf": csrf},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


def _change(route: Route) -> Body:
    async def change(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
        alert_id = request.match_info["alert_id"]
        if not _ID.match(alert_id):
            raise refusal("alert_not_found")
        await _decide(request, route, Resource(kind="item", id=alert_id))
        note = form.get("note", "").strip()[:alerts_api.MAX_NOTE] or None
        action = "acknowledge" if route is alerts_api.ACKNOWLEDGE else "resolve"
        record.detail["alert_action"] = action
        await alerts_api.change(_client(gw), route, alert_id, principal.username, note)
        return web.Response(status=303, headers={"Location": f"{ALERTS}?{urlencode({'done': action})}",
                                                 "Cache-Control": "no-store", "X-Decision-Id": record.decision_id})

    change.__doc__ = f"{route.verb}: an alert from the console."
    return change


def add_routes(app: web.Application) -> None:
    """Register the alerts page and its forms (with the console: it needs browser sessions)."""
    app.router.add_get(sub_path(ALERTS), alerts_page)
    app.router.add_post(sub_path(ALERTS + "/{alert_id}/acknowledge"), console_view(_change(alerts_api.ACKNOWLEDGE)))
    app.router.add_post(sub_path(ALERTS + "/{alert_id}/resolve"), console_view(_change(alerts_api.RESOLVE)))
