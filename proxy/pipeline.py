"""The request path of the PEP, top to bottom.

1. hygiene: refuse ambiguous request lines and headers (400)
2. authenticate the bearer token (401)
3. classify with the route map (403 ``route_not_mapped``)
4. resolve the resource's scope attributes (path, query, body, WMS lookup)
5. ask the PDP once (403/404 deny, 503 when it cannot answer)
6. narrow list queries to the caller's scope
7. forward with the gateway's identity headers; stream or rewrite the answer
8. record the audit entry (always, allowed or refused): :mod:`proxy.lifecycle`, which runs
   this path and every ``/_gateway`` endpoint alike
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

from aiohttp import web

from authorizer.approvals.store import APPROVED, EXECUTED, Approval, HeldRequest, iso, now_ms
from authorizer.audit import AuditRecord
from authorizer.authn.identity import AuthenticationError, IssuerUnavailable, Principal, bearer_token
from authorizer.authz.attributes import BadResourceInput, LookupFailed, RequestParts, Resource, source_values
from authorizer.authz.pdp import ApprovalRule, Decision, Obligations, PdpUnavailable
from authorizer.authz.policy_input import build_policy_input
from authorizer.authz.query_params import masked_lookups, refused_parameters
from authorizer.authz.routes import Route, RouteMatch
from authorizer.authz.tenancy import TenantError, choose_tenant
from authorizer.enforce.exports import (
    EXPORT_APPROVAL_PARAM,
    MAX_REASON,
    ExportContext,
    ExportHeld,
    ExportRefused,
    check_rows,
    control_csv,
    parse_reason,
    watermark,
)
from authorizer.enforce.exports import facts as export_facts
from authorizer.enforce.html_tables import rewrite_tables
from authorizer.enforce.mask_kinds import MaskKinds
from authorizer.enforce.obligations import (
    ALL,
    column_names,
    filter_rows,
    mask_csv,
    mask_document,
    narrow_query,
    row_in_scope,
)
from authorizer.enforce.xlsx import XLSX, rewrite_xlsx
from authorizer.messages import TEXTS
from proxy import responses
from proxy.body_identity import enforce_body_identity
from proxy.browser_pages import nothing_in_scope_page
from proxy.forward import AnswerPlan, Outbound, Rewrite, upstream_request_headers
from proxy.gateway import Gateway
from proxy.hygiene import CleanTarget, HygieneError, check_headers, check_target
from proxy.lifecycle import PEP, RequestContext, context_of, endpoint, record_reason
from proxy.responses import Refusal, refusal
from proxy.sso import SESSION_COOKIE
from proxy.upstream_answer import LinkTarget, UpstreamFailure

log = logging.getLogger(__name__)

#: Largest body of a request held for approval (approvers are shown all of it), bytes.
MAX_HELD_BODY = 64 * 1024
#: Pending approvals one person may have at once (keeps inboxes usable).
MAX_PENDING_PER_REQUESTER = 20


@dataclass(frozen=True)
class RequestLine:
    """A request as it will run once approved (what a held request stores).

    Attributes:
        method, path, query: the request line (``query`` without the gateway's own parameters).
        body: the body bytes, or None.
        content_type: the body's ``Content-Type`` ('' without a body).
    """

    method: str
    path: str
    query: str
    body: bytes | None
    content_type: str


@endpoint(PEP)
async def handle(request: web.Request) -> web.StreamResponse:
    """The PEP: authorize one request to the WMS and forward it, or refuse it (raises
    :class:`~proxy.responses.Refusal`; :mod:`proxy.lifecycle` answers and audits either way)."""
    return await _authorize_and_forward(request)


def clean_target(request: web.Request, gw: Gateway) -> CleanTarget:
    """The request line and headers after hygiene (see :mod:`proxy.hygiene`).

    Raises:
        Refusal: 400 (405 for a method) for a request line or header the gateway will not interpret.
    """
    try:
        target = check_target(request.method, request.raw_path)
        check_headers(request.headers, gw.config.refuse_request_headers)
    except HygieneError as exc:
        raise responses.caught(exc) from None
    return target


async def authenticated(request: web.Request) -> tuple[RequestContext, CleanTarget]:
    """The request's context once the request passed hygiene and its caller is authenticated
    (the record names them): the first step of the PEP and of every authenticated gateway endpoint.

    Raises:
        Refusal: see :func:`clean_target` and :func:`authenticate`.
    """
    ctx = context_of(request)
    target = clean_target(request, ctx.gw)
    ctx.identify(await authenticate(request, ctx.gw))
    return ctx, target


async def _authorize_and_forward(request: web.Request) -> web.StreamResponse:
    ctx, target = await authenticated(request)
    gw, record, principal = ctx.gw, ctx.record, ctx.principal
    assert principal is not None
    match = gw.routes.match(request.method, target.segments)
    if match is None:
        if not gw.enforcement.reports(None):
            raise responses.not_mapped()
        tenant = choose_request_tenant(gw, None, target, None, principal, record)
        return await _shadow_forward(ctx, target, None, tenant, None, responses.not_mapped())
    route = match.route
    ctx.classify(route)
    body_bytes, body = await read_body(request, gw) if route.needs_body else (None, None)
    tenant = choose_request_tenant(gw, match, target, body, principal, record)
    if route.body_identity and isinstance(body, dict):  # who acts is never the client's say, in report mode too
        forced, changed = enforce_body_identity(route.body_identity, body, principal, tenant[1] if tenant else None)
        if forced is not None:
            body_bytes, record.detail["body_identity_set"] = forced, changed
    try:
        return await _decide_and_enforce(ctx, target, match, (body_bytes, body), tenant)
    except Refusal as refusal:
        # report mode forwards what the policy would refuse, but never an export: it would
        # leave the gateway without its count, reason, approval or watermark
        if not (refusal.reportable and gw.enforcement.reports(route.key)) or route.verb == "export":
            raise
        return await _shadow_forward(ctx, target, match, tenant, body_bytes, refusal)


async def _decide_and_enforce(ctx: RequestContext, target: CleanTarget, match: RouteMatch,
                              body_parts: tuple[bytes | None, Any],
                              tenant: tuple[str, str] | None) -> web.StreamResponse:
    """The policy's part of a mapped request (what report mode only records): query rules,
    resource, decision, then hold (four-eyes), or forward with the obligations."""
    gw, record, route = ctx.gw, ctx.record, match.route
    body_bytes, body = body_parts
    check_query(target, route, gw.gateway_params)
    resource = await resolve_resource(gw, match, target, body, tenant)
    record_place(record, resource)
    decision, policy_input = await decide_or_refuse(ctx, route, resource, body)
    if decision.obligations.approval is not None:
        if gw.enforcement.reports(route.key):  # shadow mode holds nothing: it notes what it would hold
            record.detail["shadow"] = {"would_hold": decision.obligations.approval.operation}
        else:
            return await hold(ctx, target, body_bytes, policy_input)
    return await _forward(ctx, target, body_bytes)


async def _shadow_forward(ctx: RequestContext, target: CleanTarget, match: RouteMatch | None,
                          tenant: tuple[str, str] | None, body_bytes: bytes | None,
                          refusal: Refusal) -> web.StreamResponse:
    """Report mode: record the policy's refusal as ``would_deny`` and forward the request as the
    WMS served it before the gateway (no row filter), under the gateway's identity headers and
    credentials, with the person's masks still applied (report mode never shows more than the
    gateway would). When the WMS identity cannot be made (no staff id for that tenant), the
    request is really refused and recorded as such, the would-be reason beside it."""
    request, gw, record = ctx.request, ctx.gw, ctx.record
    assert ctx.principal is not None
    record_reason(record, refusal)
    would = {"would_status": refusal.status, "would_reason": record.reason_code,
             "route": match.route.key if match is not None else None}
    record.detail["shadow"] = would
    single = record.warehouse if record.warehouse and "," not in record.warehouse else None
    added = gw.identity.headers(ctx.principal, tenant[1] if tenant else single)
    route = match.route if match is not None else Route(request.method, target.raw_path, tuple(target.segments),
                                                        "unmapped", "view", kind="aggregate")
    masks = await _shadow_masks(ctx, refusal, route)
    record.decision = "would_deny"
    headers = upstream_request_headers(request, gw.strip_headers, added, record.client_ip)
    if body_bytes is not None:
        headers["Content-Length"] = str(len(body_bytes))
    query_string = without_params(target.raw_query, gw.gateway_params)
    try:
        response, result = await gw.forwarder.forward(
            request, Outbound(target.raw_path + (f"?{query_string}" if query_string else ""), headers, body_bytes),
            AnswerPlan(_rewrite(route, masks, gw.mask_kinds(masks), False),
                       {"X-Decision-Id": record.decision_id, "X-Gateway-Shadow": "would_deny"}, _links(gw, target)))
    except UpstreamFailure as failure:
        record.upstream_status, record.upstream_ms = failure.upstream_status, round(failure.upstream_ms, 3)
        raise
    record.upstream_status, record.upstream_ms = result.status, round(result.ms, 3)
    record.detail.update(result.detail)
    return response


async def _shadow_masks(ctx: RequestContext, refusal: Refusal, route: Route) -> Obligations:
    """The masks (``mask`` and ``mask_kinds`` only) of a request forwarded in report mode: the
    refusing decision's, or (refused before the PDP was asked: an unmapped route, a query rule)
    the PDP's for the route.

    Raises:
        Refusal: 503 when the PDP cannot answer (nothing is forwarded unmasked).
    """
    if refusal.decision is not None:
        return _masks_of(refusal.decision.obligations)
    assert ctx.principal is not None
    policy_input = build_policy_input(ctx.principal, route, None, Resource(kind=route.kind), ctx.request.method,
                                      ctx.record.client_ip, ctx.record.ts_ms)
    try:
        return _masks_of((await ctx.gw.pdp.decide(policy_input)).obligations)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None


def _with_reveals(ctx: RequestContext, route: Route, resource: Resource, obligations: Obligations) -> Obligations:
    """``obligations`` without the masks of fields the caller revealed on this record (a
    single-record GET; :mod:`authorizer.enforce.reveals`); the record names each reveal used."""
    reveals, principal = ctx.gw.reveals, ctx.principal
    if reveals is None or principal is None or not obligations.mask or route.kind != "item" or not resource.id \
            or ctx.request.method != "GET":
        return obligations
    used = [r for r in reveals.fields(principal.user_id, route.module, resource.id, resource.attributes,
                                      ctx.record.ts_ms) if r.field in obligations.mask]
    if not used:
        return obligations
    ctx.record.detail["revealed"] = [{"field": r.field, "reveal_id": r.reveal_id} for r in used]
    fields = {r.field for r in used}
    return dataclasses.replace(obligations, mask=tuple(m for m in obligations.mask if m not in fields))


def _masks_of(obligations: Obligations) -> Obligations:
    return Obligations(mask=tuple(obligations.mask), mask_kinds=obligations.mask_kinds)


def _links(gw: Gateway, target: CleanTarget) -> LinkTarget:
    """Where WMS links in the answer point: the gateway's public origin, with the request's own
    gateway parameters (``warehouse=SH``) so that following them stays in the same tenant."""
    names = gw.tenant_params
    if not names or not target.raw_query:
        return LinkTarget(gw.config.public_origin, "")
    return LinkTarget(gw.config.public_origin, "&".join(
        p for p in target.raw_query.split("&") if unquote_plus(p.partition("=")[0]) in names))


def choose_request_tenant(gw: Gateway, match: RouteMatch | None, target: CleanTarget, body: Any,
                          principal: Principal, record: AuditRecord) -> tuple[str, str] | None:
    """``(dimension, value)`` of the WMS tenant the request runs in (``upstream.tenant``), or
    None when the WMS has no tenants (see :mod:`authorizer.authz.tenancy`).

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
        raise responses.caught(exc) from None
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
        raise refusal("query_parameter_not_allowed", names=names, reportable=True)


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
        raise refusal("filter_on_masked_field", names=names, reportable=True, decision=decision)


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
        raise refusal(exc.code, detail=exc.detail,
                      headers={"WWW-Authenticate": exc.www_authenticate("wms")}) from None
    except IssuerUnavailable:
        raise responses.issuer_unavailable() from None
    if not gw.revocations.fresh():
        raise refusal("revocations_stale")
    if gw.revocations.is_revoked(principal.user_id, principal.issued_at):
        if cookie and gw.sso is not None:
            await gw.sso.end_for_revocation(request, principal.user_id)
        raise refusal("token_revoked", headers={"WWW-Authenticate": 'Bearer realm="wms", error="invalid_token", '
                                                                'error_description="The token was revoked"'},
                      subject=(principal.user_id, principal.username, ",".join(principal.roles)))
    since = gw.step_up_demands.since_ms(principal) if gw.step_up_demands is not None else None
    if since is not None:  # a security alert: high-risk requests need an MFA login made since it
        return dataclasses.replace(principal, alert_since_ms=since)
    return principal


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys")
    return dict(pairs)


async def read_body(request: web.Request, gw: Gateway) -> tuple[bytes, Any]:
    """Read a JSON body the decision depends on, exactly as the WMS will read it.

    Only ``application/json`` in UTF-8 is accepted (a declared charset such as UTF-7
    would make the WMS decode other text than the gateway authorized); the bytes must
    be strict UTF-8 without a BOM and the object must not repeat a key (parsers differ
    on which copy wins).
    """
    if request.content_type != "application/json" or (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise refusal("unsupported_media_type")
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
        raise refusal("body_not_json") from None
    if not isinstance(body, dict):
        raise refusal("body_not_object")
    return body


def record_place(record: AuditRecord, resource: Resource) -> None:
    """The audit record names where the resource lies (its warehouses, channels, order types)."""
    record.warehouse, record.channel, record.order_type = (
        ",".join(resource.attributes.get(d, [])) for d in ("warehouse", "channel", "order_type"))


async def resolve_resource(gw: Gateway, match: RouteMatch, target: CleanTarget, body: Any,
                           tenant: tuple[str, str] | None) -> Resource:
    """The resource a mapped request is about: its id and scope attributes (from the request,
    or looked up in the WMS as the route map says).

    Raises:
        Refusal: 400 ``bad_request_body`` for a body the route cannot read; 502
            ``attribute_lookup_failed`` when the lookup fails.
    """
    credentials = gw.identity.credentials(tenant[1]) if tenant else gw.identity.static_credentials()
    try:
        return await gw.resolver.resolve(match.route, RequestParts(match.params, target.query, body), tenant,
                                         credentials)
    except BadResourceInput as exc:
        raise responses.bad_body(str(exc)) from None
    except LookupFailed:
        raise refusal("attribute_lookup_failed") from None


async def decide_or_refuse(ctx: RequestContext, route: Route, resource: Resource,
                           body: Any = None) -> tuple[Decision, dict[str, Any]]:
    """Ask the PDP whether ``ctx.principal`` may do ``route`` on ``resource``; record how it
    decided (the context keeps route, resource and decision); refuse unless it allowed.

    Args:
        ctx: the request (its principal must be known).
        route: what is asked (module, verb); the record's module and verb become its.
        resource: the resource's id and scope attributes.
        body: the request's JSON body, when the policy reads it.

    Returns:
        The allowing decision and the input it was made on.

    Raises:
        Refusal: 401 (a step-up, RFC 9470), 403 or 404 as the policy denied; 503 when the PDP
            cannot answer.
    """
    record = ctx.record
    assert ctx.principal is not None
    ctx.classify(route)
    ctx.resource = resource
    record.resource_id = (resource.id or "")[:2048]
    policy_input = build_policy_input(ctx.principal, route, body, resource, ctx.request.method, record.client_ip,
                                      record.ts_ms)
    # the decision log: the exact input, so `wmsgate policy replay` can re-decide it under a draft
    record.detail["input"] = policy_input
    asked = time.perf_counter()
    try:
        decision = await ctx.gw.pdp.decide(policy_input)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None
    finally:
        ctx.decision_seconds = time.perf_counter() - asked
    ctx.decision = decision
    record.policy_revision = decision.policy_revision
    if decision.high_risk is not None:
        record.detail["high_risk"] = decision.high_risk  # the alerting service reports these
    main = decision.reason
    record.reason_code, record.reason_zh, record.reason_en = main.code, main.zh, main.en
    if not decision.allow:
        raise _denial(decision)
    record.decision = "allow"
    return decision, policy_input


def _denial(decision: Decision) -> Refusal:
    """The refusal of a denying decision, carrying it. Built here rather than in a local of the
    raising frame: a frame that holds the exception it raises is a reference cycle (exception ->
    traceback -> frame -> exception), left for the garbage collector on every denied request."""
    denied = responses.policy_denied(decision.status, decision.reasons, decision.obligations.step_up)
    denied.decision = decision
    return denied


async def hold(ctx: RequestContext, target: CleanTarget, body_bytes: bytes | None,
                policy_input: dict[str, Any]) -> web.Response:
    """Store a high-risk request for four-eyes approval and answer 202 with where to follow it."""
    request, gw, record = ctx.request, ctx.gw, ctx.record
    if body_bytes is None and request.body_exists:
        body_bytes, _ = await read_body(request, gw)
    content_type = request.headers.get("Content-Type", "") if body_bytes is not None else ""
    approval = await hold_request(ctx, policy_input, RequestLine(
        request.method, target.raw_path, without_params(target.raw_query, gw.gateway_params), body_bytes,
        content_type))
    return held_response(approval, record.decision_id)


def held_response(approval: Approval, decision_id: str) -> web.Response:
    """202 for a request held for four-eyes approval, with ``Location`` to follow it."""
    row = approval.row
    body = {"approval_id": approval.approval_id, "status": approval.status, "operation": row["operation"],
            "required_approvals": row["required_approvals"], "expires_at": approval.document()["expires_at"],
            "reason_zh": TEXTS["held"].zh, "reason_en": TEXTS["held"].en,
            "decision_id": decision_id}
    if row.get("export"):
        body.update(export=row["export"], reason_zh=TEXTS["export_held"].zh, reason_en=TEXTS["export_held"].en)
    return web.Response(status=202, text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"Location": f"/_gateway/approvals/{approval.approval_id}",
                                                  "X-Decision-Id": decision_id, "Cache-Control": "no-store"})


async def hold_request(ctx: RequestContext, policy_input: dict[str, Any], line: RequestLine,
                       rule: ApprovalRule | None = None, export: dict[str, Any] | None = None) -> Approval:
    """Store a request the policy holds for four-eyes approval.

    Args:
        ctx: the request, decided (principal, route, resource and decision known).
        policy_input: the input the decision was made on (decided again before the request runs).
        line: the request as it will run once approved.
        rule: the approval it needs (default: the decision's ``approval`` obligation).
        export: for a held export, what approvers see of it (rows, reason, unmasked_pii).

    Returns:
        The pending approval (the record now names it).

    Raises:
        Refusal: 413 the body is too large for approvers to see; 429 too many pending requests.
    """
    gw, record, principal, route = ctx.gw, ctx.record, ctx.principal, ctx.route
    assert principal is not None and route is not None and ctx.decision is not None and ctx.resource is not None
    rule = rule or ctx.decision.obligations.approval
    assert rule is not None
    if line.body is not None and len(line.body) > MAX_HELD_BODY:
        raise refusal("held_body_too_large", limit=MAX_HELD_BODY)
    if await gw.approvals.pending_count(principal.user_id) >= MAX_PENDING_PER_REQUESTER:
        raise refusal("too_many_pending", limit=MAX_PENDING_PER_REQUESTER)
    record.detail.update({"acr": principal.acr, "auth_time": principal.auth_time})
    identity = {n: principal.attributes[n] for n in sorted(gw.identity.attribute_names) if n in principal.attributes}
    if identity:  # the request runs later under the same WMS identity (staff id per tenant...)
        policy_input = {**policy_input, "subject": {**policy_input["subject"], "attributes": identity}}
    approval = await gw.approvals.create(HeldRequest(
        operation=rule.operation, required_approvals=rule.approvals, expires_seconds=rule.expires_seconds,
        requester_id=principal.user_id, requester_username=principal.username, requester_roles=list(principal.roles),
        method=line.method, path=line.path, query=line.query, body=line.body, content_type=line.content_type,
        module=route.module, verb=route.verb, resource_id=ctx.resource.id or "", resource=ctx.resource.policy_input(),
        decision_input=policy_input, export=export))
    record.approval_id = approval.approval_id
    record.reason_code = "approval_required"
    record.reason_zh, record.reason_en = TEXTS["held_record"].zh, TEXTS["held_record"].en
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
    if "%" not in raw_query and not any(name in raw_query for name in names):
        return raw_query  # the usual case, without splitting: no name can be in it, even encoded
    kept = [part for part in raw_query.split("&") if unquote_plus(part.partition("=")[0]) not in names]
    return "&".join(kept)


async def _forward(ctx: RequestContext, target: CleanTarget, body_bytes: bytes | None) -> web.StreamResponse:
    """Forward an allowed request with its obligations: query narrowed to the caller's scope,
    the gateway's identity headers, the answer's rows filtered and fields masked."""
    request, gw, record, route = ctx.request, ctx.gw, ctx.record, ctx.route
    principal, resource, decision = ctx.principal, ctx.resource, ctx.decision
    assert route is not None and principal is not None and resource is not None and decision is not None
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
                return nothing_in_scope_page(request, record.decision_id)
            return web.json_response({spec.rows: [], **({spec.total: 0} if spec.total else {})},
                                     headers={"X-Decision-Id": record.decision_id})
        if narrowing.query is not None:
            query_string = urlencode(list(narrowing.query.items()), quote_via=quote)
            record.detail["narrowed_query"] = query_string
    added = gw.identity.headers(principal, _credential_warehouse(gw, resource, decision))
    headers = upstream_request_headers(request, gw.strip_headers, added, record.client_ip)
    if obligations.export is not None:  # an export is counted whole: never a slice of it
        for name in ("Range", "If-Range"):
            headers.popall(name, None)
    query_string = without_params(query_string, gw.gateway_params)
    if body_bytes is not None:  # the gateway may have rewritten it (identity fields)
        headers["Content-Length"] = str(len(body_bytes))
    path_and_query = target.raw_path + (f"?{query_string}" if query_string else "")
    export = await _export_context(ctx, target) if obligations.export is not None else None  # claims an approval
    shown = _with_reveals(ctx, route, resource, obligations)
    rewrite = _rewrite(route, shown, gw.mask_kinds(shown), restricted, export)
    answer_headers = {"X-Decision-Id": record.decision_id}
    if export is not None:
        answer_headers["X-Export-Watermark"] = watermark(record.decision_id)
    approved = export.approval_id if export is not None else None
    handed_out = False
    try:
        response, result = await gw.forwarder.forward(
            request, Outbound(path_and_query, headers, body_bytes),
            AnswerPlan(rewrite, answer_headers, _links(gw, target)))
        handed_out = 200 <= result.status < 300
    except ExportHeld as held:  # the WMS's answer is dropped; a second person decides first
        assert export is not None
        return await _hold_export(ctx, target, held, export)
    except ExportRefused as refused:  # the WMS's answer is dropped: nothing of it reaches the client
        record.detail["export_refused"] = refused.params
        raise refusal(refused.key, **refused.params) from None
    except UpstreamFailure as failure:  # the WMS's error body is withheld; its status is the outcome
        record.upstream_status, record.upstream_ms = failure.upstream_status, round(failure.upstream_ms, 3)
        record.detail["upstream_body"] = "withheld"
        raise
    finally:
        if approved is not None and not handed_out:  # nothing handed out: usable again
            await gw.approvals.release(approved, "the download did not complete; it may be tried again")
    record.upstream_status, record.upstream_ms = result.status, round(result.ms, 3)
    record.detail.update(result.detail)
    if approved is not None:
        await gw.approvals.finish(approved, EXECUTED, result.status, None, None,
                                  f"downloaded by its requester (decision {record.decision_id})")
    return response


async def _hold_export(ctx: RequestContext, target: CleanTarget, held: ExportHeld,
                       export: ExportContext) -> web.Response:
    """Hold an export too large to hand out without a second person's approval: store the
    request (not the answer, which is dropped) and answer 202 with where to follow it."""
    record = ctx.record
    facts = {"rows": held.rows, "reason": export.reason, "unmasked_pii": list(held.pii)}
    record.detail["export_held"] = facts
    record.detail["high_risk"] = held.rule.operation  # the alerting service reports it as held
    line = RequestLine(ctx.request.method, target.raw_path, _export_query(target), None, "")
    ctx.resource = _exported_scope(ctx)  # approvers must cover every row's scope
    approval = await hold_request(ctx, record.detail["input"], line, held.rule, facts)
    return held_response(approval, record.decision_id)


def _exported_scope(ctx: RequestContext) -> Resource:
    """The resource an export approval names: a list's rows span the scope it was narrowed
    to (its row filter), so it is held as an aggregate over those values (an approver must
    cover every one, not just hold some scope); any other export as it was decided.
    A download compares it again: the same request line in a wider scope is another export."""
    assert ctx.resource is not None and ctx.decision is not None
    resource = ctx.resource
    if resource.kind != "list":
        return resource
    spans = {dim: sorted(values) for dim, values in ctx.decision.obligations.row_filter.items()}
    return Resource("aggregate", resource.id, {**spans, **{d: v for d, v in resource.attributes.items() if v}},
                    resource.found)


def _export_query(target: CleanTarget) -> str:
    """The query of an export as its approval names it: all of it (the tenant parameter
    included) but the approval parameter itself."""
    return without_params(target.raw_query, frozenset({EXPORT_APPROVAL_PARAM}))


async def _export_context(ctx: RequestContext, target: CleanTarget) -> ExportContext:
    """Who exports and why (``X-Export-Reason``), and under which approval (``X-Export-Approval``
    or the query parameter ``wmsgate_export_approval``: the download of an approved export,
    claimed here so it is handed out once); the reason goes into the audit record.

    Raises:
        Refusal: 400 ``export_reason_invalid`` for an undecodable or overlong reason; see
            :func:`_claim_approved_export`.
    """
    request, record = ctx.request, ctx.record
    approval_id = request.headers.get("X-Export-Approval") or target.query.get(EXPORT_APPROVAL_PARAM)
    try:
        reason = parse_reason(request.headers.get("X-Export-Reason"))
    except (ValueError, UnicodeDecodeError):
        raise refusal("export_reason_invalid", limit=MAX_REASON) from None
    if approval_id is None:
        return ExportContext(record.decision_id, reason)
    approval = await _claim_approved_export(ctx, target, approval_id.strip())
    record.detail["high_risk"] = approval.row["operation"]  # the alerting service reports the download
    held = approval.row["export"] or {}
    return ExportContext(record.decision_id, held.get("reason") or reason, approval.approval_id, held.get("rows"))


async def _claim_approved_export(ctx: RequestContext, target: CleanTarget, approval_id: str) -> Approval:
    """The approved export ``approval_id``, claimed for this download (compare-and-set: two
    downloads racing get it once). It must be the caller's own, approved, for this very
    request line, and within its download period.

    Raises:
        Refusal: 404 ``export_approval_not_found`` (unknown, not an export, or someone
            else's: ids leak nothing); 409 ``export_approval_unusable`` naming why.
    """
    gw, principal, record = ctx.gw, ctx.principal, ctx.record
    assert principal is not None
    approval = await gw.approvals.get(approval_id) if len(approval_id) == 32 else None
    if approval is None or not approval.row.get("export") or approval.row["requester_id"] != principal.user_id:
        raise refusal("export_approval_not_found")
    record.approval_id = approval.approval_id
    row = approval.row
    line = f"{row['method']} {row['path']}" + (f"?{row['query']}" if row["query"] else "")
    resource = json.loads(json.dumps(_exported_scope(ctx).policy_input()))  # as stored (JSON)
    if (ctx.request.method, target.raw_path, _export_query(target)) != (row["method"], row["path"], row["query"]) \
            or resource != row["resource"]:  # the same request line in another tenant or scope is another export
        why = TEXTS["export_approval_other"].format(line=line)
    elif approval.status != APPROVED:
        why = (TEXTS["export_approval_used"] if approval.status == EXECUTED
               else TEXTS["export_approval_pending"].format(status=approval.status))
    elif (approval.download_until() or 0) <= now_ms():
        why = TEXTS["export_approval_lapsed"].format(until=iso(approval.download_until()))
    elif not await gw.approvals.claim(approval.approval_id):
        why = TEXTS["export_approval_used"]
    else:
        return approval
    raise refusal("export_approval_unusable", why_zh=why.zh, why_en=why.en)


def _rewrite(route: Route, obligations: Obligations, kinds: MaskKinds, restricted: bool,
             export: ExportContext | None = None) -> Rewrite | None:
    """What the answer needs (row filter on a successful list, masks on every answer, export
    control on a successful export), or None when nothing: the answer is then relayed as the
    WMS sent it.

    Raises (from the rewrite, while the answer is read):
        ExportRefused: an export too large, or without the reason it needs.
    """
    mask = obligations.mask
    spec = route.list_spec
    control = obligations.export if export is not None else None
    if not mask and not restricted and control is None:
        return None
    row_filter = obligations.row_filter
    masked_columns = column_names(mask)
    masked_columns |= {label for label, name in route.columns.items() if name in masked_columns}

    def mask_cell(column: str, text: str) -> str:  # an HTML cell, its column named by a field or a label
        return kinds.cell(kinds.of_column(mask, route.columns.get(column, column)), text)

    def apply_json(document: Any, status: int) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        succeeded = 200 <= status < 300
        if spec is not None and restricted and succeeded:
            dropped = filter_rows(document, spec, obligations)
            if dropped:
                detail["rows_dropped"] = dropped
                if spec.total and isinstance(document.get(spec.total), int):
                    document[spec.total] = max(0, document[spec.total] - dropped)
        mask_document(document, mask, spec.rows if spec is not None and succeeded else None, kinds)
        if mask:
            detail["masked"] = list(mask)
        if control is not None and export is not None and succeeded:
            rows = document if isinstance(document, list) else (
                document.get(spec.rows) if spec is not None and isinstance(document, dict) else None)
            if not isinstance(rows, list):  # fail closed: an export whose rows cannot be counted
                raise ValueError("cannot count the rows of this export (not a list answer)")
            count = len(rows)
            check_rows(count, control, export)
            detail.update({"export": export_facts(count, control.unmasked_pii, export)})
        return detail

    def apply_html(body: bytes, status: int) -> tuple[bytes, dict[str, Any]]:
        if route.html == "none":
            return body, {}
        keep = None
        needed: frozenset[str] = frozenset()
        if spec is not None and restricted and 200 <= status < 300:
            keep = lambda cells: row_in_scope(cells, spec, obligations)  # noqa: E731
            needed = frozenset(spec.row_fields[d] for d, values in row_filter.items() if ALL not in values)
        result = rewrite_tables(body.decode("utf-8"), keep, needed, masked_columns, mask_cell)
        detail: dict[str, Any] = {"rows_dropped": result.rows_dropped} if result.rows_dropped else {}
        if mask:
            detail["masked"] = list(mask)
        return result.html.encode("utf-8"), detail

    def apply_text(body: bytes, content_type: str, status: int) -> tuple[bytes, dict[str, Any]]:
        if content_type == "text/html" and route.html is not None:
            return apply_html(body, status)
        if content_type == XLSX and spec is None:
            exporting = control is not None and export is not None and 200 <= status < 300
            return rewrite_xlsx(body, mask, route.columns, kinds, control if exporting else None,
                                export if exporting else None)
        if content_type == "text/csv" and spec is None:
            text = mask_csv(body.decode("utf-8-sig"), mask, route.columns, kinds) if mask \
                else body.decode("utf-8-sig")
            facts: dict[str, Any] = {"masked": list(mask)} if mask else {}
            if control is not None and export is not None and 200 <= status < 300:
                text, exported = control_csv(text, control, export, route.columns)
                facts.update(exported)
            return text.encode("utf-8"), facts
        raise ValueError(f"cannot enforce obligations on {content_type}")

    return Rewrite(apply_json, apply_text)
