"""The request path of the PEP, top to bottom.

1. hygiene: refuse ambiguous request lines and headers (400)
2. authenticate the bearer token (401)
3. classify with the route map (403 ``route_not_mapped``)
4. resolve the resource's scope attributes (path, query, body, WMS lookup)
5. ask the PDP once (403/404 deny, 503 when it cannot answer)
6. narrow list queries to the caller's scope
7. forward with the gateway's identity headers; stream or rewrite the answer
8. record the audit entry (always, allowed or refused)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from authorizer.access import AccessService
from authorizer.approvals import Approval, ApprovalStore, HeldRequest
from authorizer.attributes import (AttributeResolver, BadResourceInput, LookupFailed, RequestParts, Resource,
                                   source_values)
from authorizer.audit import AuditBackpressure, AuditRecord, AuditStore, AuditUnavailable, AuditWriter
from authorizer.config import GatewayConfig
from authorizer.enforcement import EnforcementModes
from authorizer.identity import AuthenticationError, IssuerUnavailable, Principal, TokenVerifier, bearer_token
from authorizer.html_tables import rewrite_tables
from authorizer.obligations import ALL, column_names, filter_rows, mask_csv, mask_document, narrow_query, row_in_scope
from authorizer.pdp import Decision, Obligations, OpaClient, PdpUnavailable
from authorizer.policy_input import build_policy_input
from authorizer.query_params import masked_lookups, refused_parameters
from authorizer.revocation import RevocationCache
from authorizer.tenancy import TenantError, choose_tenant
from authorizer.routes import Route, RouteMap, RouteMatch
from proxy import browser, responses
from proxy.body_identity import enforce_body_identity
from proxy.browser_pages import nothing_in_scope_page
from proxy.management import access as access_api
from proxy.management import alerts as alerts_api
from proxy.management import audit as audit_api
from proxy.sso import SESSION_COOKIE, SsoService
from proxy.forward import Forwarder, Rewrite, upstream_request_headers
from proxy.upstream_identity import UpstreamIdentity
from proxy.upstream_answer import UpstreamFailure
from proxy.hygiene import CleanTarget, HygieneError, check_headers, check_target
from proxy.replay import ApprovalExecutor
from proxy.responses import Refusal, refusal_response


@dataclass
class Gateway:
    """The PEP's collaborators, built once per app by :func:`proxy.app.create_app`."""

    config: GatewayConfig
    routes: RouteMap
    verifier: TokenVerifier
    resolver: AttributeResolver
    pdp: OpaClient
    forwarder: Forwarder
    identity: UpstreamIdentity
    audit: AuditWriter
    audit_store: AuditStore
    strip_headers: frozenset[str]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    approvals: ApprovalStore
    executor: ApprovalExecutor
    revocations: RevocationCache
    access: AccessService | None
    sso: SsoService | None = None
    alerts: alerts_api.AlertsClient | None = None
    enforcement: EnforcementModes = field(default_factory=EnforcementModes)

    @property
    def gateway_params(self) -> frozenset[str]:
        """Query parameters the gateway consumes itself (never forwarded to the WMS)."""
        tenant = self.config.upstream.tenant
        return frozenset({tenant.query_param}) if tenant is not None and tenant.query_param else frozenset()


GATEWAY = web.AppKey("gateway", Gateway)
log = logging.getLogger(__name__)

#: Largest body of a request held for approval (approvers are shown all of it), bytes.
MAX_HELD_BODY = 64 * 1024
#: Pending approvals one person may have at once (keeps inboxes usable).
MAX_PENDING_PER_REQUESTER = 20


def client_address(request: web.Request, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The real client IP: the peer, or, when the peer is a trusted proxy, the last
    ``X-Forwarded-For`` entry that is not itself trusted."""
    peer = request.remote or ""

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer


def new_record(request: web.Request, gw: Gateway, path_limit: int = 2048) -> AuditRecord:
    """A fresh audit record of ``request`` (denied until decided): time, request line, from where."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(time.time() * 1000), decision="deny", reason_code="",
        http_status=0, method=request.method, path=raw_path[:path_limit], query=raw_query[:path_limit],
        client_ip=client_address(request, gw.trusted_proxies),
        user_agent=request.headers.get("User-Agent", "")[:512], device_id=request.headers.get("X-Device-Id", "")[:128],
    )


async def handle(request: web.Request) -> web.StreamResponse:
    """Authorize one request and forward it, or refuse it; audit either way."""
    gw = request.app[GATEWAY]
    started = time.perf_counter()
    record = new_record(request, gw)
    try:
        gw.audit.check_capacity()
        response = await _authorize_and_forward(request, gw, record)
    except AuditBackpressure:
        response = _refused(record, responses.audit_unavailable(), request, gw)
    except Refusal as refusal:
        response = _refused(record, refusal, request, gw)
    except Exception:  # noqa: BLE001 - a bug or an unexpected dependency failure: refuse, keep the record
        log.exception("request %s failed unexpectedly", record.decision_id)
        response = _refused(record, responses.internal_error(), request, gw)
    record.http_status = response.status
    record.total_ms = round((time.perf_counter() - started) * 1000, 3)
    if record.approval_id is not None or record.module == "iam":
        try:  # high-risk: the record is durable (database or spool) before the client sees the answer
            await gw.audit.commit(record)
        except AuditUnavailable:  # the writer keeps the record queued; do not answer as if recorded
            return refusal_response(responses.audit_unavailable(), record.decision_id)
    else:
        gw.audit.submit(record)
    return response


def _refused(record: AuditRecord, refusal: Refusal, request: web.Request, gw: Gateway) -> web.Response:
    """Record and render a refusal (JSON for API clients; for browsers a login redirect or a
    friendly page). A request the policy allowed keeps ``decision=allow`` when the refusal is
    an outage after the decision (5xx: the WMS was unreachable); a 4xx the gateway answers
    after the decision (no WMS identity for the caller, a masked filter) makes it a deny."""
    if refusal.subject is not None and not record.user_id:  # who used a revoked token
        record.user_id, record.username, record.roles = refusal.subject
    if record.decision != "deny" and refusal.status < 500 and not isinstance(refusal, UpstreamFailure):
        # refused by the gateway after the policy allowed (a WMS refusal keeps the policy's allow)
        record.decision = "deny"
    record_refusal_reason(record, refusal)
    if browser.wants_page(request):
        return browser.refusal_answer(request, refusal, record.decision_id, record.username or None,
                                      gw.sso.origin if gw.sso is not None else None)
    return refusal_response(refusal, record.decision_id)


def record_refusal_reason(record: AuditRecord, refusal: Refusal) -> None:
    """The refusal's reason in the record: the real one when the client is told less (a 404)."""
    reason = refusal.audit_reason
    if reason is not None:
        record.reason_code, record.reason_zh, record.reason_en = reason.code, reason.zh, reason.en
    else:
        record.reason_code, record.reason_zh, record.reason_en = refusal.code, refusal.zh, refusal.en


async def _authorize_and_forward(request: web.Request, gw: Gateway, record: AuditRecord) -> web.StreamResponse:
    try:
        target = check_target(request.method, request.raw_path)
        check_headers(request.headers, gw.config.refuse_request_headers)
    except HygieneError as exc:
        raise Refusal(exc.status, exc.code, exc.zh, exc.en) from None
    principal = await authenticate(request, gw)
    record.user_id, record.username, record.roles = principal.user_id, principal.username, ",".join(principal.roles)
    match = gw.routes.match(request.method, target.segments)
    if match is None and request.method == "POST" and target.raw_path in access_api.ROUTES:
        return await _access_change(request, gw, access_api.ROUTES[target.raw_path], target, principal, record)
    if match is None and request.method == "GET" and target.raw_path in audit_api.ROUTES:
        return await _audit_read(request, gw, audit_api.ROUTES[target.raw_path], principal, record)
    if match is None and (alert_route := alerts_api.match(request.method, target.raw_path)) is not None:
        return await _alerts_call(request, gw, *alert_route, principal, record)
    if match is None:
        if not gw.enforcement.reports(None):
            raise responses.not_mapped()
        tenant = choose_request_tenant(gw, None, target, None, principal, record)
        return await _shadow_forward(request, gw, target, None, (tenant, principal), None, record,
                                     responses.not_mapped())
    route = match.route
    record.module, record.verb = route.module, route.verb
    body_bytes, body = await _read_body(request, gw) if route.needs_body else (None, None)
    tenant = choose_request_tenant(gw, match, target, body, principal, record)
    if route.body_identity:  # who acts is never the client's say, in report mode too
        forced, changed = enforce_body_identity(route.body_identity, body, principal, tenant[1] if tenant else None)
        if forced is not None:
            body_bytes, record.detail["body_identity_set"] = forced, changed
    try:
        return await _decide_and_enforce(request, gw, target, match, principal, (body_bytes, body), tenant, record)
    except Refusal as refusal:
        if not (refusal.reportable and gw.enforcement.reports(route.key)):
            raise
        return await _shadow_forward(request, gw, target, match, (tenant, principal), body_bytes, record, refusal)


async def _decide_and_enforce(request: web.Request, gw: Gateway, target: CleanTarget, match: RouteMatch,
                              principal: Principal, body_parts: tuple[bytes | None, Any],
                              tenant: tuple[str, str] | None, record: AuditRecord) -> web.StreamResponse:
    """The policy's part of a mapped request (what report mode only records): query rules,
    resource, decision, then hold (four-eyes), or forward with the obligations."""
    route = match.route
    body_bytes, body = body_parts
    check_query(target, route, gw.gateway_params)
    resource = await _resolve(gw, match, target, body, tenant)
    record.resource_id = (resource.id or "")[:2048]
    record.warehouse, record.channel, record.order_type = (
        ",".join(resource.attributes.get(d, [])) for d in ("warehouse", "channel", "order_type"))
    decision, policy_input = await decide_or_refuse(gw.pdp, principal, route, body, resource, request, record)
    if decision.obligations.approval is not None:
        if gw.enforcement.reports(route.key):  # shadow mode holds nothing: it notes what it would hold
            record.detail["shadow"] = {"would_hold": decision.obligations.approval["operation"]}
        else:
            return await _hold(request, gw, target, route, resource, decision, principal, body_bytes, policy_input,
                               record)
    return await _forward(request, gw, target, route, resource, decision, principal, body_bytes, record)


async def _shadow_forward(request: web.Request, gw: Gateway, target: CleanTarget, match: RouteMatch | None,
                          caller: tuple[tuple[str, str] | None, Principal], body_bytes: bytes | None,
                          record: AuditRecord, refusal: Refusal) -> web.StreamResponse:
    """Report mode: record the policy's refusal as ``would_deny`` and forward the request as the
    WMS served it before the gateway (no row filter), under the gateway's identity headers and
    credentials, with the person's masks still applied (report mode never shows more than the
    gateway would). When the WMS identity cannot be made (no staff id for that tenant), the
    request is really refused and recorded as such, the would-be reason beside it."""
    tenant, principal = caller
    record_refusal_reason(record, refusal)
    would = {"would_status": refusal.status, "would_reason": record.reason_code,
             "route": match.route.key if match is not None else None}
    record.detail["shadow"] = would
    single = record.warehouse if record.warehouse and "," not in record.warehouse else None
    added = gw.identity.headers(principal, tenant[1] if tenant else single)
    route = match.route if match is not None else Route(request.method, target.raw_path, tuple(target.segments),
                                                        "unmapped", "view", kind="aggregate")
    mask = await _shadow_mask(gw, refusal, route, principal, request, record)
    record.decision = "would_deny"
    headers = upstream_request_headers(request, gw.strip_headers, added, record.client_ip)
    if body_bytes is not None:
        headers["Content-Length"] = str(len(body_bytes))
    query_string = without_params(target.raw_query, gw.gateway_params)
    try:
        response, result = await gw.forwarder.forward(
            request, target.raw_path + (f"?{query_string}" if query_string else ""), headers, body_bytes,
            _rewrite(route, Obligations(mask=mask), False),
            {"X-Decision-Id": record.decision_id, "X-Gateway-Shadow": "would_deny"},
            gw.config.public_origin, _link_params(gw, target))
    except UpstreamFailure as failure:
        record.upstream_status, record.upstream_ms = failure.upstream_status, round(failure.upstream_ms, 3)
        raise
    record.upstream_status, record.upstream_ms = result.status, round(result.ms, 3)
    record.detail.update(result.detail)
    return response


async def _shadow_mask(gw: Gateway, refusal: Refusal, route: Route, principal: Principal, request: web.Request,
                       record: AuditRecord) -> tuple[str, ...]:
    """The masks of a request forwarded in report mode: the refusing decision's, or (refused
    before the PDP was asked: an unmapped route, a query rule) the PDP's for the route.

    Raises:
        Refusal: 503 when the PDP cannot answer (nothing is forwarded unmasked).
    """
    if refusal.decision is not None:
        return tuple(refusal.decision.obligations.mask)
    policy_input = build_policy_input(principal, route, None, Resource(kind=route.kind), request.method,
                                      record.client_ip, record.ts_ms)
    try:
        return tuple((await gw.pdp.decide(policy_input)).obligations.mask)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None


def _link_params(gw: Gateway, target: CleanTarget) -> str:
    """The gateway's own parameters of the request (``warehouse=SH``), carried into the WMS
    links rewritten in the answer so that following them stays in the same tenant."""
    names = gw.gateway_params
    if not names or not target.raw_query:
        return ""
    return "&".join(p for p in target.raw_query.split("&") if unquote_plus(p.partition("=")[0]) in names)


def choose_request_tenant(gw: Gateway, match: RouteMatch | None, target: CleanTarget, body: Any,
                          principal: Principal, record: AuditRecord) -> tuple[str, str] | None:
    """``(dimension, value)`` of the WMS tenant the request runs in (``upstream.tenant``), or
    None when the WMS has no tenants (see :mod:`authorizer.tenancy`).

    The caller's scope must cover the tenant whatever the route's module (its credential
    opens the whole tenant) and whatever the enforcement mode. ``record`` names the tenant.

    Raises:
        Refusal: 400 ``tenant_required`` / ``ambiguous_tenant``; 403 ``tenant_out_of_scope``.
    """
    settings = gw.config.upstream.tenant
    if settings is None:
        return None
    source = match.route.attributes.get(settings.dimension) if match is not None else None
    try:
        values = source_values(source, RequestParts(match.params, target.query, body)) \
            if source and match is not None else []
        tenant = choose_tenant(settings, target.query, values, principal)
    except BadResourceInput as exc:
        raise responses.bad_body(str(exc)) from None
    except TenantError as exc:
        if exc.value is not None:  # the record names the tenant that was asked for
            setattr(record, settings.dimension, exc.value)
        raise Refusal(exc.status, exc.code, exc.zh, exc.en) from None
    setattr(record, settings.dimension, tenant)  # the record names the tenant as soon as it is chosen
    return settings.dimension, tenant


def check_query(target: CleanTarget, route: Route, gateway_params: frozenset[str]) -> None:
    """Refuse query parameters the route does not accept (its ``query:`` allow or deny list);
    ``gateway_params`` (the tenant parameter) are the gateway's own and always accepted.

    Raises:
        Refusal: 400 ``query_parameter_not_allowed`` naming them.
    """
    refused = refused_parameters(target.query, route.query, gateway_params)
    if refused:
        names = ", ".join(refused)
        raise Refusal(400, "query_parameter_not_allowed", f"此接口不接受查询参数:{names}",
                      f"this endpoint does not accept the query parameter(s): {names}", reportable=True)


def check_masked_lookups(target: CleanTarget, route: Route, decision: Decision, record: AuditRecord) -> None:
    """Refuse a filter or ordering on a field the caller sees masked (it would read the value
    back, e.g. by binary search on ``cost__gt``); the record becomes a deny.

    Raises:
        Refusal: 403 ``filter_on_masked_field`` naming the parameters.
    """
    found = masked_lookups(target.query, route.query, column_names(decision.obligations.mask))
    if found:
        record.decision, record.detail["masked_lookups"] = "deny", found
        names = ", ".join(found)
        raise Refusal(403, "filter_on_masked_field", f"不能按您无权查看的字段筛选或排序:{names}",
                      f"you may not filter or sort by fields you are not allowed to see: {names}", reportable=True,
                      decision=decision)


async def authenticate(request: web.Request, gw: Gateway) -> Principal:
    """The caller's principal from their bearer token, or (no ``Authorization`` header, SSO on)
    from their browser session cookie.

    Raises:
        Refusal: 401 with ``WWW-Authenticate`` (RFC 6750) for a missing or bad token;
            503 when the issuer's keys cannot be fetched.
    """
    authorization = request.headers.getall("Authorization", [])
    cookie = request.cookies.get(SESSION_COOKIE) if gw.sso is not None and not authorization else None
    try:
        if cookie and gw.sso is not None:
            principal = await gw.sso.principal(request, cookie)
        else:
            principal = await gw.verifier.verify(bearer_token(authorization))
    except AuthenticationError as exc:
        zh = {"missing_token": "需要登录:请提供 Bearer 令牌", "token_expired": "访问令牌已过期,请重新获取"}.get(
            exc.code, "访问令牌无效")
        raise Refusal(401, exc.code, zh, exc.detail,
                      headers={"WWW-Authenticate": exc.www_authenticate("wms")}) from None
    except IssuerUnavailable:
        raise responses.issuer_unavailable() from None
    if not gw.revocations.fresh():
        raise Refusal(503, "revocations_stale", "吊销记录暂时无法刷新,请稍后重试",
                      "revocations could not be refreshed; try again later", headers={"Retry-After": "5"})
    if gw.revocations.is_revoked(principal.user_id, principal.issued_at):
        if cookie and gw.sso is not None:
            await gw.sso.end_for_revocation(request, principal.user_id)
        raise Refusal(401, "token_revoked", "您的访问权限已变更或被收回,请重新登录",
                      "your access changed or was withdrawn; log in again",
                      headers={"WWW-Authenticate": 'Bearer realm="wms", error="invalid_token", '
                                                   'error_description="The token was revoked"'},
                      subject=(principal.user_id, principal.username, ",".join(principal.roles)))
    return principal


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys")
    return dict(pairs)


async def _read_body(request: web.Request, gw: Gateway) -> tuple[bytes, Any]:
    """Read a JSON body the decision depends on, exactly as the WMS will read it.

    Only ``application/json`` in UTF-8 is accepted (a declared charset such as UTF-7
    would make the WMS decode other text than the gateway authorized); the bytes must
    be strict UTF-8 without a BOM and the object must not repeat a key (parsers differ
    on which copy wins).
    """
    if request.content_type != "application/json" or (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise Refusal(415, "unsupported_media_type", "请求体必须是 UTF-8 编码的 application/json",
                      "the body must be application/json in UTF-8")
    limit = gw.config.upstream.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise responses.body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise responses.body_too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    return raw, parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body as the WMS will: strict UTF-8 (no BOM), one JSON object, no
    repeated keys (parsers differ on which copy wins), bounded nesting.

    Raises:
        Refusal: 400 ``bad_request_body`` otherwise.
    """
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise responses.bad_body("not valid JSON / 不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise responses.bad_body("must be a JSON object / 必须是 JSON 对象")
    return body


async def _resolve(gw: Gateway, match: RouteMatch, target: CleanTarget, body: Any,
                   tenant: tuple[str, str] | None) -> Resource:
    credentials = gw.identity.credentials(tenant[1]) if tenant else gw.identity.static_credentials()
    try:
        return await gw.resolver.resolve(match.route, RequestParts(match.params, target.query, body), tenant,
                                         credentials)
    except BadResourceInput as exc:
        raise responses.bad_body(str(exc)) from None
    except LookupFailed:
        raise Refusal(502, "attribute_lookup_failed", "无法从 WMS 查询资源属性", "could not look up the resource on the WMS") from None


async def decide_or_refuse(pdp: OpaClient, principal: Principal, route: Route, body: Any, resource: Resource,
                  request: web.Request, record: AuditRecord) -> tuple[Decision, dict[str, Any]]:
    """Ask the PDP; record how it decided; refuse (401/403/404) unless it allowed.

    Returns:
        The allowing decision and the input it was made on.
    """
    policy_input = build_policy_input(principal, route, body, resource, request.method, record.client_ip,
                                      record.ts_ms)
    try:
        decision = await pdp.decide(policy_input)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None
    record.policy_revision = decision.policy_revision
    if decision.high_risk is not None:
        record.detail["high_risk"] = decision.high_risk  # the alerting service reports these
    main = decision.reason
    record.reason_code, record.reason_zh, record.reason_en = main.code, main.zh, main.en
    if not decision.allow:
        refusal = responses.policy_denied(decision.status, decision.reasons, decision.obligations.step_up)
        refusal.decision = decision
        raise refusal
    record.decision = "allow"
    return decision, policy_input


async def _access_change(request: web.Request, gw: Gateway, route: Route, target: CleanTarget,
                         principal: Principal, record: AuditRecord) -> web.StreamResponse:
    """An access change (module iam): decided like any request; held for approval when widening."""
    record.module, record.verb = route.module, route.verb
    if gw.access is None:
        raise Refusal(503, "access_management_unavailable", "访问管理未配置(keycloak_admin)",
                      "access management is not configured (keycloak_admin)")
    body_bytes, body = await _read_body(request, gw)
    resource = access_api.resource_for(route.template, body)
    record.resource_id = resource.id or ""
    decision, policy_input = await decide_or_refuse(gw.pdp, principal, route, body, resource, request, record)
    if decision.obligations.approval is not None:
        return await _hold(request, gw, target, route, resource, decision, principal, body_bytes, policy_input, record)
    report = await access_api.apply_change(gw.access, route.template, body, principal.username)
    record.detail.update({"report": report} if isinstance(report, list) else report.document())
    return access_api.respond(report, record.decision_id)


async def _audit_read(request: web.Request, gw: Gateway, route: Route, principal: Principal,
                      record: AuditRecord) -> web.StreamResponse:
    """A search or export of the audit trail (module audit): decided like any request."""
    record.module, record.verb = route.module, route.verb
    paged = route is audit_api.RECORDS
    query = audit_api.parse_query(request.query, paged)
    fmt = None if paged else audit_api.export_format(request.query)
    record.resource_id = ""
    decision, _ = await decide_or_refuse(gw.pdp, principal, route, None, Resource(kind="list"), request, record)
    if decision.obligations.approval is not None:
        raise audit_api.approval_not_supported()
    if fmt is None:
        try:
            return await audit_api.records_response(gw.audit_store, query, record.decision_id)
        except SQLAlchemyError:
            raise Refusal(503, "audit_store_unavailable", "审计日志库暂不可用,请稍后重试",
                          "the audit store is unavailable; try again later", headers={"Retry-After": "5"}) from None
    response, error = await audit_api.export_response(request, gw.audit_store, query, fmt, record.decision_id)
    if error is not None:
        record.detail["export_error"] = error
    return response


async def _alerts_call(request: web.Request, gw: Gateway, route: Route, alert_id: str | None, principal: Principal,
                       record: AuditRecord) -> web.StreamResponse:
    """A call of the alert API (module alerts): decided like any request, then passed to the alerting service."""
    record.module, record.verb, record.resource_id = route.module, route.verb, alert_id or ""
    resource = Resource(kind=route.kind, id=alert_id)
    decision, _ = await decide_or_refuse(gw.pdp, principal, route, None, resource, request, record)
    if decision.obligations.approval is not None:
        raise alerts_api.approval_not_supported()
    if gw.alerts is None:
        raise alerts_api.unavailable()
    response, detail = await alerts_api.respond(gw.alerts, route, alert_id, request, principal.username,
                                                record.decision_id)
    record.detail.update(detail)
    return response


async def _hold(request: web.Request, gw: Gateway, target: CleanTarget, route: Route, resource: Resource,
                decision: Decision, principal: Principal, body_bytes: bytes | None, policy_input: dict[str, Any],
                record: AuditRecord) -> web.Response:
    """Store a high-risk request for four-eyes approval and answer 202 with where to follow it."""
    assert decision.obligations.approval is not None
    rule = decision.obligations.approval
    if body_bytes is None and request.body_exists:
        body_bytes, _ = await _read_body(request, gw)
    content_type = request.headers.get("Content-Type", "") if body_bytes is not None else ""
    approval = await hold_request(gw, principal, route, resource, decision, policy_input, record, request.method,
                                  target.raw_path, without_params(target.raw_query, gw.gateway_params), body_bytes,
                                  content_type)
    location = f"/_gateway/approvals/{approval.approval_id}"
    body = {"approval_id": approval.approval_id, "status": approval.status, "operation": rule["operation"],
            "required_approvals": rule["approvals"], "expires_at": approval.document()["expires_at"],
            "reason_zh": "此操作需要第二人审批,已提交;审批通过后由网关执行",
            "reason_en": "this operation needs a second person's approval; it will run once approved",
            "decision_id": record.decision_id}
    return web.Response(status=202, text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"Location": location, "X-Decision-Id": record.decision_id,
                                                  "Cache-Control": "no-store"})


async def hold_request(gw: Gateway, principal: Principal, route: Route, resource: Resource, decision: Decision,
                       policy_input: dict[str, Any], record: AuditRecord, method: str, path: str, query: str,
                       body_bytes: bytes | None, content_type: str) -> Approval:
    """Store a request the policy holds for four-eyes approval (the decision carries the rule).

    Args:
        method, path, query, body_bytes, content_type: the request as it will run once approved.

    Returns:
        The pending approval (``record`` now names it).

    Raises:
        Refusal: 413 the body is too large for approvers to see; 429 too many pending requests.
    """
    rule = decision.obligations.approval
    assert rule is not None
    if body_bytes is not None and len(body_bytes) > MAX_HELD_BODY:
        raise Refusal(413, "held_body_too_large", f"需审批的请求体不能超过 {MAX_HELD_BODY} 字节(审批人须能看到全部内容)",
                      f"a request held for approval may carry at most {MAX_HELD_BODY} bytes (approvers see all of it)")
    if await gw.approvals.pending_count(principal.user_id) >= MAX_PENDING_PER_REQUESTER:
        raise Refusal(429, "too_many_pending", f"您已有 {MAX_PENDING_PER_REQUESTER} 个待审批的申请,请等待处理或撤回",
                      f"you already have {MAX_PENDING_PER_REQUESTER} requests waiting for approval; "
                      "wait or withdraw some", headers={"Retry-After": "60"})
    record.detail.update({"acr": principal.acr, "auth_time": principal.auth_time})
    identity = {n: principal.attributes[n] for n in sorted(gw.identity.attribute_names) if n in principal.attributes}
    if identity:  # the request runs later under the same WMS identity (staff id per tenant...)
        policy_input = {**policy_input, "subject": {**policy_input["subject"], "attributes": identity}}
    approval = await gw.approvals.create(HeldRequest(
        operation=rule["operation"], required_approvals=rule["approvals"], expires_seconds=rule["expires_seconds"],
        requester_id=principal.user_id, requester_username=principal.username, requester_roles=list(principal.roles),
        method=method, path=path, query=query, body=body_bytes, content_type=content_type,
        module=route.module, verb=route.verb, resource_id=resource.id or "", resource=resource.policy_input(),
        decision_input=policy_input))
    record.approval_id = approval.approval_id
    record.reason_code = "approval_required"
    record.reason_zh, record.reason_en = "高风险操作,已提交审批", "high-risk operation; held for approval"
    return approval


def _credential_warehouse(gw: Gateway, resource: Resource, decision: Decision) -> str | None:
    """The warehouse whose WMS credential the request uses: the tenant, else the resource's
    single warehouse (or a list's single warehouse in scope)."""
    tenant = gw.config.upstream.tenant
    if tenant is not None:
        return resource.attributes[tenant.dimension][0]
    values = resource.attributes.get("warehouse") or list(decision.obligations.row_filter.get("warehouse", ()))
    return values[0] if len(values) == 1 and values[0] != ALL else None


def without_params(raw_query: str, names: frozenset[str]) -> str:
    """``raw_query`` without the parameters ``names`` (compared decoded); the rest is kept byte for byte."""
    if not names or not raw_query:
        return raw_query
    kept = [part for part in raw_query.split("&") if unquote_plus(part.partition("=")[0]) not in names]
    return "&".join(kept)


async def _forward(request: web.Request, gw: Gateway, target: CleanTarget, route: Route, resource: Resource,
                   decision: Decision, principal: Principal, body_bytes: bytes | None,
                   record: AuditRecord) -> web.StreamResponse:
    check_masked_lookups(target, route, decision, record)
    obligations = decision.obligations
    query_string = target.raw_query
    spec = route.list_spec
    if spec is not None:  # a list's audit record shows the scope it was narrowed to
        for dim, values in obligations.row_filter.items():
            if not resource.attributes.get(dim):  # a list pinned to a tenant shows the tenant
                setattr(record, dim, ",".join(values))
    restricted = spec is not None and any(ALL not in v for v in obligations.row_filter.values())
    if spec is not None and restricted:
        narrowing = narrow_query(target.query, spec, obligations)
        if narrowing.empty:
            record.detail["narrowed"] = "empty"
            if route.html is not None:
                return nothing_in_scope_page(record.decision_id)
            return web.json_response({spec.rows: [], **({spec.total: 0} if spec.total else {})},
                                     headers={"X-Decision-Id": record.decision_id})
        if narrowing.query is not None:
            query_string = urlencode(list(narrowing.query.items()), quote_via=quote)
            record.detail["narrowed_query"] = query_string
    rewrite = _rewrite(route, decision.obligations, restricted)
    added = gw.identity.headers(principal, _credential_warehouse(gw, resource, decision))
    headers = upstream_request_headers(request, gw.strip_headers, added, record.client_ip)
    query_string = without_params(query_string, gw.gateway_params)
    if body_bytes is not None:  # the gateway may have rewritten it (identity fields)
        headers["Content-Length"] = str(len(body_bytes))
    path_and_query = target.raw_path + (f"?{query_string}" if query_string else "")
    try:
        response, result = await gw.forwarder.forward(request, path_and_query, headers, body_bytes, rewrite,
                                                      {"X-Decision-Id": record.decision_id},
                                                      gw.config.public_origin, _link_params(gw, target))
    except UpstreamFailure as failure:  # the WMS's error body is withheld; its status is the outcome
        record.upstream_status, record.upstream_ms = failure.upstream_status, round(failure.upstream_ms, 3)
        record.detail["upstream_body"] = "withheld"
        raise
    record.upstream_status, record.upstream_ms = result.status, round(result.ms, 3)
    record.detail.update(result.detail)
    return response


def _rewrite(route: Route, obligations: Obligations, restricted: bool) -> Rewrite | None:
    """What the answer needs (row filter on a successful list, masks on every answer), or
    None when nothing: the answer is then relayed as the WMS sent it."""
    mask = obligations.mask
    spec = route.list_spec
    if not mask and not restricted:
        return None
    row_filter = obligations.row_filter
    masked_columns = column_names(mask)
    masked_columns |= {label for label, name in route.columns.items() if name in masked_columns}

    def apply_json(document: Any, status: int) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        succeeded = 200 <= status < 300
        if spec is not None and restricted and succeeded:
            dropped = filter_rows(document, spec, obligations)
            if dropped:
                detail["rows_dropped"] = dropped
                if spec.total and isinstance(document.get(spec.total), int):
                    document[spec.total] = max(0, document[spec.total] - dropped)
        mask_document(document, mask, spec.rows if spec is not None and succeeded else None)
        if mask:
            detail["masked"] = list(mask)
        return detail

    def apply_html(body: bytes, status: int) -> tuple[bytes, dict[str, Any]]:
        if route.html == "none":
            return body, {}
        keep = None
        needed: frozenset[str] = frozenset()
        if spec is not None and restricted and 200 <= status < 300:
            keep = lambda cells: row_in_scope(cells, spec, obligations)  # noqa: E731
            needed = frozenset(spec.row_fields[d] for d, values in row_filter.items() if ALL not in values)
        result = rewrite_tables(body.decode("utf-8"), keep, needed, masked_columns)
        detail: dict[str, Any] = {"rows_dropped": result.rows_dropped} if result.rows_dropped else {}
        if mask:
            detail["masked"] = list(mask)
        return result.html.encode("utf-8"), detail

    def apply_text(body: bytes, content_type: str, status: int) -> tuple[bytes, dict[str, Any]]:
        if content_type == "text/html" and route.html is not None:
            return apply_html(body, status)
        if content_type == "text/csv" and spec is None:
            text = mask_csv(body.decode("utf-8-sig"), mask, route.columns)
            return text.encode("utf-8"), {"masked": list(mask)} if mask else {}
        raise ValueError(f"cannot enforce obligations on {content_type}")

    return Rewrite(apply_json, apply_text)
