"""The JSON management API's handlers for access changes, the audit trail and alerts.

``POST /_gateway/access/{offboard|set-roles|bulk-grant|revoke-grant}``  see :mod:`proxy.management.access`
``GET  /_gateway/access/usage``                                          see :mod:`proxy.management.access_usage`
``GET|POST /_gateway/access/reviews[/{id}[/items/{n}|close|result]]``    see :mod:`proxy.management.reviews`
``GET  /_gateway/audit/{records|export}``                                see :mod:`proxy.management.audit`
``GET|POST /_gateway/alerts[/{id}[/acknowledge|resolve]]``               see :mod:`proxy.management.alerts`
``POST /_gateway/reveals``                                               see :mod:`proxy.management.reveals`

Each is decided by the policy like any request (module ``iam``, ``audit``, ``alerts``) and runs
in the one audited-request path (:mod:`proxy.lifecycle`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from authorizer.authz.attributes import Resource
from authorizer.authz.routes import Route
from proxy.lifecycle import API, endpoint, sub_path
from proxy.management import access as access_api
from proxy.management import access_usage as usage_api
from proxy.management import alerts as alerts_api
from proxy.management import audit as audit_api
from proxy.management import reveals as reveals_api
from proxy.management import reviews as reviews_api
from proxy.pipeline import authenticated, decide_or_refuse, hold, read_body
from proxy.responses import refusal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ALERT_ID = re.compile(r"^[0-9a-f]{32}$")


def _access_change(route: Route) -> Handler:
    @endpoint(API)
    async def handler(request: web.Request) -> web.StreamResponse:
        """An access change (module iam): decided like any request; held for approval when widening."""
        ctx, target = await authenticated(request)
        ctx.classify(route)
        gw = ctx.gw
        if gw.access is None:
            raise refusal("access_management_unavailable")
        body_bytes, body = await read_body(request, gw)
        resource = access_api.resource_for(route.template, body)
        decision, policy_input = await decide_or_refuse(ctx, route, resource, body)
        await access_api.check_separation(gw.access, route.template, body)
        if decision.obligations.approval is not None:
            return await hold(ctx, target, body_bytes, policy_input)
        assert ctx.principal is not None
        report = await access_api.apply_change(gw.access, route.template, body, ctx.principal.username)
        ctx.record.detail.update({"report": report} if isinstance(report, list) else report.document())
        return access_api.respond(report, ctx.record.decision_id)

    return handler


def _audit_read(route: Route) -> Handler:
    @endpoint(API)
    async def handler(request: web.Request) -> web.StreamResponse:
        """A search or export of the audit trail (module audit): decided like any request."""
        ctx, _ = await authenticated(request)
        ctx.classify(route)
        paged = route is audit_api.RECORDS
        query = audit_api.parse_query(request.query, paged)
        fmt = None if paged else audit_api.export_format(request.query)
        decision, _ = await decide_or_refuse(ctx, route, Resource(kind="list"))
        if decision.obligations.approval is not None:
            raise audit_api.approval_not_supported()
        if fmt is None:
            try:
                return await audit_api.records_response(ctx.gw.audit_store, query, ctx.record.decision_id)
            except SQLAlchemyError:
                raise refusal("audit_store_unavailable") from None
        response, error = await audit_api.export_response(request, ctx.gw.audit_store, query, fmt,
                                                          ctx.record.decision_id)
        if error is not None:
            ctx.record.detail["export_error"] = error
        return response

    return handler


@endpoint(API)
async def _access_usage(request: web.Request) -> web.StreamResponse:
    """What people hold and when they last used it (module iam, verb view): decided like any request."""
    ctx, _ = await authenticated(request)
    route = usage_api.USAGE
    ctx.classify(route)
    query = usage_api.parse_query(request.query)
    resource = Resource(kind="list") if query.user is None else Resource(kind="item", id=query.user)
    decision, _ = await decide_or_refuse(ctx, route, resource)
    if decision.obligations.approval is not None:
        raise audit_api.approval_not_supported()
    if ctx.gw.access is None:
        raise refusal("access_management_unavailable")
    report = await usage_api.usage_report(ctx.gw, ctx.gw.access, query)
    ctx.record.detail["usage"] = {"days": query.days, "people": len(report["people"])}
    return web.json_response({**report, "decision_id": ctx.record.decision_id},
                             headers={"Cache-Control": "no-store"})


def _review_call(route: Route) -> Handler:
    @endpoint(API)
    async def handler(request: web.Request) -> web.StreamResponse:
        """An access review call (module iam): decided like any request, then carried out."""
        ctx, _ = await authenticated(request)
        ctx.classify(route)
        body = (await read_body(request, ctx.gw))[1] if route.needs_body else None
        review_id = request.match_info.get("review_id")
        resource = Resource(kind="list") if review_id is None else Resource(kind="item", id=review_id)
        decision, _ = await decide_or_refuse(ctx, route, resource, body)
        if decision.obligations.approval is not None:
            raise refusal("reviews_approval_not_supported")
        assert ctx.principal is not None
        doc, detail = await reviews_api.respond(ctx.gw, route, request.match_info, body, ctx.principal.username)
        ctx.record.detail.update(detail)
        return web.json_response({**doc, "decision_id": ctx.record.decision_id}, headers={"Cache-Control": "no-store"})

    return handler


def _alerts_call(route: Route) -> Handler:
    @endpoint(API)
    async def handler(request: web.Request) -> web.StreamResponse:
        """A call of the alert API (module alerts): decided like any request, then passed to the alerting service."""
        ctx, _ = await authenticated(request)
        ctx.classify(route)
        alert_id = request.match_info.get("alert_id")
        if alert_id is not None and not _ALERT_ID.match(alert_id):
            raise refusal("alert_not_found")
        decision, _ = await decide_or_refuse(ctx, route, Resource(kind=route.kind, id=alert_id))
        if decision.obligations.approval is not None:
            raise alerts_api.approval_not_supported()
        if ctx.gw.alerts is None:
            raise alerts_api.unavailable()
        assert ctx.principal is not None
        response, detail = await alerts_api.respond(ctx.gw.alerts, route, alert_id, request, ctx.principal.username,
                                                    ctx.record.decision_id)
        ctx.record.detail.update(detail)
        return response

    return handler


def add_routes(app: web.Application) -> None:
    """Register the handlers on the gateway's ``/_gateway`` sub-application ``app``."""
    for route in access_api.ROUTES.values():
        app.router.add_post(sub_path(route.template), _access_change(route))
    app.router.add_get(sub_path(usage_api.USAGE.template), _access_usage)
    for route in reviews_api.ROUTES:
        app.router.add_route(route.method, sub_path(route.template), _review_call(route))
    for route in audit_api.ROUTES.values():
        app.router.add_get(sub_path(route.template), _audit_read(route))
    for route in (alerts_api.LIST, alerts_api.ITEM, alerts_api.ACKNOWLEDGE, alerts_api.RESOLVE):
        app.router.add_route(route.method, sub_path(route.template), _alerts_call(route))
    app.router.add_post(sub_path(reveals_api.PATH), reveals_api.create_reveal)
