"""The one audited-request path: every request the gateway answers, the PEP's and every
``/_gateway/*`` endpoint's, runs through :func:`audited_requests`.

For each request the middleware

1. opens a :class:`RequestContext` with a fresh audit record (denied until decided);
2. refuses at once (503) when the audit trail cannot take another record;
3. runs the handler, which fills the context (principal, route, resource, decision, record);
4. turns whatever the handler raised into an answer: a :class:`~proxy.responses.Refusal`
   as itself, the router's 404/405 as bilingual refusals, anything else as the bilingual
   500 ``internal_error`` (logged with the decision id);
5. writes the record exactly once: committed (durable before the answer leaves) for
   approvals and access changes (``module=iam``), queued otherwise; when a commit fails the
   client is told 503 instead of an answer that claims an unrecorded step.

How an endpoint's refusals look and what its record keeps is its :class:`Endpoint`, set with
:func:`endpoint` on the handler; a handler without one is the PEP (``/_gateway/*`` handlers
without one answer as the JSON API).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from aiohttp import web

from authorizer.audit import AuditBackpressure, AuditRecord, AuditUnavailable
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.pdp import Decision
from authorizer.authz.routes import Route
from proxy import browser, responses
from proxy.browser_pages import login_href
from proxy.gateway import GATEWAY, Gateway, new_record
from proxy.redirects import safe_return_to
from proxy.responses import Refusal, refusal, refusal_response
from proxy.upstream_answer import UpstreamFailure

log = logging.getLogger(__name__)

#: The prefix of the gateway's own endpoints (one sub-application).
PREFIX = "/_gateway"
#: Under this prefix a query may carry login codes and states: never stored, whatever matched.
SECRET_QUERY_PREFIX = f"{PREFIX}/auth/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])
Style = Literal["pep", "api", "console"]


@dataclass(frozen=True)
class Endpoint:
    """How an audited endpoint answers refusals and what its audit record keeps.

    Attributes:
        style: ``pep`` (JSON, or for a browser a login redirect or a friendly page), ``api``
            (always JSON: the management API), ``console`` (pages; a form post that needs a
            step-up goes to the login and back to its page).
        path_limit: characters of the path and query kept in the record.
        keep_query: False where the query carries secrets (the login callback's code and state).
        quiet: the request is recorded only when its handler says so (:meth:`RequestContext.note`),
            or it is refused or fails unexpectedly (the health probe, the login pages); the audit
            trail's backpressure does not refuse it.
        console_back: the console page a refused form post returns to after a step-up.
    """

    style: Style = "api"
    path_limit: int = 300
    keep_query: bool = True
    quiet: bool = False
    console_back: str = f"{PREFIX}/ui/approvals"


PEP = Endpoint(style="pep", path_limit=2048)
API = Endpoint()
CONSOLE = Endpoint(style="console")
QUIET = Endpoint(quiet=True)
_ENDPOINT_ATTR = "__wmsgate_endpoint__"


def endpoint(kind: Endpoint) -> Callable[[H], H]:
    """Decorator: ``handler`` is an audited endpoint of ``kind`` (see :class:`Endpoint`)."""

    def mark(handler: H) -> H:
        setattr(handler, _ENDPOINT_ATTR, kind)
        return handler

    return mark


@dataclass
class RequestContext:
    """One audited request, from its first byte to its audit record.

    Attributes:
        request: the aiohttp request.
        gw: the gateway's collaborators.
        record: the request's audit record (written once, by the middleware).
        endpoint: how the endpoint answers refusals.
        principal: who is calling, once authenticated.
        route: what the request is (module, verb), once classified.
        resource: the resource's id and scope attributes, once resolved.
        decision: the PDP's decision, once asked.
        noted: a quiet endpoint's handler asked for the record to be written.
        decision_seconds: the PDP's round trip, once asked (for the metrics).
        streaming: a response the handler prepared and streams (an export): an error after that
            ends it instead of answering again.
    """

    request: web.Request
    gw: Gateway
    record: AuditRecord
    endpoint: Endpoint
    principal: Principal | None = None
    route: Route | None = None
    resource: Resource | None = None
    decision: Decision | None = None
    noted: bool = False
    decision_seconds: float | None = None
    streaming: web.StreamResponse | None = None

    def identify(self, principal: Principal) -> None:
        """Record who is calling (user id, name, roles)."""
        self.principal = principal
        self.record.user_id, self.record.username = principal.user_id, principal.username
        self.record.roles = ",".join(principal.roles)

    def classify(self, route: Route) -> None:
        """Record what the request is (its route's module and verb)."""
        self.route = route
        self.record.module, self.record.verb = route.module, route.verb

    def note(self) -> None:
        """Write the record of a quiet endpoint's request (a login, a logout)."""
        self.noted = True


REQUEST_CONTEXT = web.RequestKey("wmsgate_request_context", RequestContext)


def context_of(request: web.Request) -> RequestContext:
    """The request's context, opened by :func:`audited_requests`.

    Raises:
        RuntimeError: the request did not pass through the middleware (a wiring bug).
    """
    ctx: RequestContext | None = request.get(REQUEST_CONTEXT)
    if ctx is None:
        raise RuntimeError("the request has no context: audited_requests is not installed")
    return ctx


def _endpoint_of(request: web.Request) -> Endpoint:
    kind = getattr(request.match_info.handler, _ENDPOINT_ATTR, None)
    if isinstance(kind, Endpoint):
        return kind
    return API if request.path == PREFIX or request.path.startswith(PREFIX + "/") else PEP


def _router_refusal(exc: web.HTTPException) -> Refusal:
    """The router's own answers under ``/_gateway`` (no such endpoint, wrong method) as refusals."""
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return refusal("method_not_allowed", headers={"Allow": allowed} if allowed else {})
    if exc.status == 404:
        return refusal("gateway_endpoint_not_found")
    generic = refusal("bad_request", detail=exc.reason or exc.status)
    generic.status = exc.status
    return generic


def record_refusal(record: AuditRecord, refusal: Refusal) -> None:
    """The refusal in the record: who used a revoked token, and the real reason when the client
    is told less (a 404). A 4xx the gateway answers after the policy allowed (no WMS identity
    for the caller, a masked filter) makes the record a deny; an outage after the decision
    (5xx) and a WMS refusal keep the policy's allow."""
    if refusal.subject is not None and not record.user_id:
        record.user_id, record.username, record.roles = refusal.subject
    if record.decision != "deny" and refusal.status < 500 and not isinstance(refusal, UpstreamFailure):
        record.decision = "deny"
    record_reason(record, refusal)


def record_reason(record: AuditRecord, refusal: Refusal) -> None:
    """The refusal's reason in the record: the real one when the client is told less (a 404)."""
    reason = refusal.audit_reason
    if reason is not None:
        record.reason_code, record.reason_zh, record.reason_en = reason.code, reason.zh, reason.en
    else:
        record.reason_code, record.reason_zh, record.reason_en = refusal.code, refusal.zh, refusal.en


def render_refusal(ctx: RequestContext, refusal: Refusal) -> web.Response:
    """The answer to a refusal in the endpoint's style (see :class:`Endpoint`)."""
    request, record = ctx.request, ctx.record
    origin = ctx.gw.sso.origin if ctx.gw.sso is not None else None
    style = ctx.endpoint.style
    if style == "console" and refusal.step_up is not None and request.method == "POST":
        back = safe_return_to(request.query.get("back") or ctx.endpoint.console_back)
        max_age = refusal.step_up.max_age
        return web.Response(status=303, headers={
            "Location": login_href(back, refusal.step_up.acr_values, max_age if max_age >= 0 else None),
            "Cache-Control": "no-store", "X-Decision-Id": record.decision_id})
    if style == "console" or (style == "pep" and browser.wants_page(request)):
        return browser.refusal_answer(request, refusal, record.decision_id, record.username or None, origin)
    return refusal_response(refusal, record.decision_id)


def _must_commit(ctx: RequestContext) -> bool:
    """Approval steps and access changes are durable before they are answered."""
    return ctx.record.approval_id is not None or ctx.record.module == "iam"


@web.middleware
async def audited_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The aiohttp middleware that runs every request's lifecycle (see the module's docstring).

    Args:
        request: any request to the proxy's public listener.
        handler: the routed handler (the PEP, a ``/_gateway`` endpoint, or the router's 404/405).

    Returns:
        The handler's answer, or the refusal in the endpoint's style; never raises.
    """
    gw = request.config_dict[GATEWAY]
    kind = _endpoint_of(request)
    record = new_record(request, gw, kind.path_limit)
    if not kind.keep_query or request.path.startswith(SECRET_QUERY_PREFIX):  # codes and states are secrets
        record.query = ""
    ctx = RequestContext(request, gw, record, kind)
    request[REQUEST_CONTEXT] = ctx
    try:
        return await _lifecycle(ctx, handler)
    finally:  # the context refers to the request: without this the pair is a reference cycle, and
        request.pop(REQUEST_CONTEXT, None)  # every request's objects would wait for the garbage collector


async def _lifecycle(ctx: RequestContext, handler: Handler) -> web.StreamResponse:
    """Run the handler and write the record (the body of :func:`audited_requests`)."""
    request, gw, record, kind = ctx.request, ctx.gw, ctx.record, ctx.endpoint
    started = time.perf_counter()
    try:
        if not kind.quiet:  # a probe still answers (its audit check says why) when the trail is full
            gw.audit.check_capacity()
        response = await handler(request)
        if not isinstance(response, web.StreamResponse):
            raise TypeError(f"the handler answered {type(response).__name__}, not a response")
    except AuditBackpressure:
        response = _refused(ctx, responses.audit_unavailable())
    except Refusal as refusal:
        response, ctx.noted = _refused(ctx, refusal), True
    except web.HTTPException as exc:  # the router: no such /_gateway endpoint, or the wrong method
        response, ctx.noted = _refused(ctx, _router_refusal(exc)), True
    except Exception as exc:
        streamed = ctx.streaming
        if streamed is not None and streamed.prepared:  # the answer is under way: end it, keep its status
            log.warning("request %s failed while streaming: %r", record.decision_id, exc)
            record.detail["stream_error"] = type(exc).__name__
            response = streamed
        else:
            log.exception("request %s failed unexpectedly", record.decision_id)
            response = _refused(ctx, responses.internal_error())
        ctx.noted = True
    except BaseException:  # cancelled (the client went away, or shutdown): the record is still written
        record.http_status, record.detail["cancelled"] = 499, True
        record.total_ms = round((time.perf_counter() - started) * 1000, 3)
        gw.audit.submit(record)
        raise
    record.http_status = response.status
    record.total_ms = round((time.perf_counter() - started) * 1000, 3)
    if kind.quiet and not ctx.noted:
        _observe(ctx)
        return response
    if not _must_commit(ctx):
        gw.audit.submit(record)
        _observe(ctx)
        return response
    try:  # the record is durable (database or spool) before the client sees the answer
        await gw.audit.commit(record)
    except AuditUnavailable:  # the writer keeps the record queued; do not answer as if recorded
        record.http_status, record.detail["answered"] = 503, "audit_unavailable"  # the queued record says so
        _observe(ctx)
        return render_refusal(ctx, responses.audit_unavailable())
    _observe(ctx)
    return response


def _observe(ctx: RequestContext) -> None:
    if ctx.gw.metrics is not None:
        ctx.gw.metrics.observe(ctx.record, ctx.decision_seconds)


def _refused(ctx: RequestContext, refusal: Refusal) -> web.Response:
    record_refusal(ctx.record, refusal)
    return render_refusal(ctx, refusal)


def sub_path(full_path: str) -> str:
    """A ``/_gateway/...`` path as registered on the gateway's sub-application (``/...``)."""
    if not full_path.startswith(PREFIX + "/"):
        raise ValueError(f"{full_path} is not under {PREFIX}/")
    return full_path[len(PREFIX):]
