"""The alert API, for the gateway's management API (``/_gateway/alerts``) and operators.

``GET /alerts?status=&rule=&limit=&offset=``, ``GET /alerts/{id}`` (with deliveries),
``POST /alerts/{id}/acknowledge`` and ``POST /alerts/{id}/resolve`` (JSON body
``{"by": "<username>", "note": "..."}``), ``GET /status``, ``GET /step-up-demands`` (the
people unresolved alerts of rules with ``demand_step_up`` name, polled by the gateway). Every call needs
``Authorization: Bearer <api token>``: the gateway, which authorizes the person
through the policy first, holds it. ``GET /health`` is open.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from alerting.answers import document, problem
from alerting.store import ACKNOWLEDGED, OPEN, RESOLVED, AlertConflict, AlertStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
#: How far back an unresolved alert still demands a step-up (ms): a day.
DEMAND_LOOKBACK_MS = 24 * 3600 * 1000


def _bad(name: str, zh: str, en: str) -> web.Response:
    return problem(400, "bad_alert_query", f"参数 {name} 有误:{zh}", f"parameter {name}: {en}")


class AlertApi:
    """Handlers of the alert API.

    Args:
        store: the alert store.
        token: the bearer token callers must present.
        status_of: returns the service's status document (sources, checkpoints, deliveries).
    """

    def __init__(self, store: AlertStore, token: str, status_of: Callable[[], Awaitable[dict]],
                 step_up_rules: frozenset[str] = frozenset()) -> None:
        self._store = store
        self._token = token
        self._status_of = status_of
        self._step_up_rules = step_up_rules

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header.isascii() and \
            hmac.compare_digest(header[7:].strip().encode(), self._token.encode())

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the bearer token; store failures answer 503."""
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return problem(401, "unauthorized", "需要告警 API 令牌", "the alert API token is required")
            try:
                return await handler(request)
            except SQLAlchemyError:
                return problem(503, "store_unavailable", "告警存储暂不可用", "the alert store is unavailable")
        return wrapper

    async def list_alerts(self, request: web.Request) -> web.Response:
        """One page of alerts, most recently seen first, with counts per status."""
        q = request.query
        unknown = sorted(set(q) - {"status", "rule", "limit", "offset"})
        if unknown:
            return _bad(unknown[0], "不支持的参数", "unknown parameter")
        status = q.get("status")
        if status is not None and status not in STATUSES:
            return _bad("status", "只能是 open、acknowledged 或 resolved", "must be open, acknowledged or resolved")
        try:
            limit, offset = int(q.get("limit", "100")), int(q.get("offset", "0"))
        except ValueError:
            return _bad("limit", "必须是整数", "limit and offset must be integers")
        if not 1 <= limit <= 1000 or not 0 <= offset <= 10_000_000:
            return _bad("limit", "limit 须在 1 到 1000 之间,offset 须在 0 到 10000000 之间",
                        "limit must be 1-1000 and offset 0-10000000")
        rows = await self._store.alerts(status=status, rule=q.get("rule"), limit=limit, offset=offset)
        return document({"alerts": rows, "counts": await self._store.counts(), "limit": limit, "offset": offset,
                         "next_offset": offset + limit if len(rows) == limit else None})

    async def get_alert(self, request: web.Request) -> web.Response:
        """One alert with its deliveries."""
        alert = await self._store.alert(request.match_info["alert_id"])
        if alert is None:
            return problem(404, "alert_not_found", "没有这条告警", "no such alert")
        alert["deliveries"] = await self._store.deliveries(alert["alert_id"])
        return document(alert)

    def change(self, to: str) -> Handler:
        """The handler moving an alert to ``to`` (``acknowledged`` or ``resolved``)."""
        async def handler(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                body = None
            note = body.get("note") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(body.get("by"), str) or not body["by"].strip() \
                    or not isinstance(note or "", str) or len(note or "") > 2000:
                return problem(400, "bad_body", "请求体须为 {\"by\": 用户名, \"note\": 备注(可选,至多 2000 字)}",
                               'the body must be {"by": username, "note": optional, at most 2000 characters}')
            try:
                alert = await self._store.change_status(request.match_info["alert_id"], to, body["by"].strip(),
                                                        note or None)
            except KeyError:
                return problem(404, "alert_not_found", "没有这条告警", "no such alert")
            except AlertConflict as exc:
                return problem(409, "alert_state_conflict", f"告警当前状态为 {exc},不能改为 {to}",
                               f"the alert is {exc}; it cannot become {to}")
            return document(alert)
        return handler

    async def step_up_demands(self, _request: web.Request) -> web.Response:
        """``{"demands": [...]}``: people whose unresolved alerts (of rules with ``demand_step_up``,
        seen within a day) demand a step-up on their next high-risk request; the gateway polls it."""
        since = int(time.time() * 1000) - DEMAND_LOOKBACK_MS
        return document({"demands": await self._store.step_up_demands(self._step_up_rules, since)})

    async def status(self, _request: web.Request) -> web.Response:
        """The service's status: sources and their checkpoints, pending deliveries."""
        return document(await self._status_of())

    def add_routes(self, app: web.Application) -> None:
        """Register the API's routes on ``app``."""
        app.router.add_get("/alerts", self.guarded(self.list_alerts))
        app.router.add_get("/alerts/{alert_id}", self.guarded(self.get_alert))
        app.router.add_post("/alerts/{alert_id}/acknowledge", self.guarded(self.change(ACKNOWLEDGED)))
        app.router.add_post("/alerts/{alert_id}/resolve", self.guarded(self.change(RESOLVED)))
        app.router.add_get("/status", self.guarded(self.status))
        app.router.add_get("/step-up-demands", self.guarded(self.step_up_demands))
