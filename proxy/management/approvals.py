"""The approvals API under ``/_gateway/approvals`` (four-eyes approval of held requests).

``GET  /_gateway/approvals``                what the caller may decide, and what they asked for
``GET  /_gateway/approvals/{id}``            one approval (the whole held request) and, once run, the answer
``POST /_gateway/approvals/{id}/approve``    approve (JSON body ``{"comment": "..."}`` optional)
``POST /_gateway/approvals/{id}/reject``     reject
``POST /_gateway/approvals/{id}/withdraw``   the requester takes a pending request back

Who may decide is policy (``module:approve``, scope, step-up, not the requester, not
twice). Before an approval counts, the held request is checked again: the requester's
access must not have been cut since, and the current policy must still allow it.
People who may neither decide nor are involved get 404 for everything, so ids leak
nothing. Every call is in the audit trail with the approval id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from authorizer.approvals.store import PENDING, Approval, now_ms
from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import BadResourceInput, LookupFailed, RequestParts
from authorizer.authz.pdp import Decision, Obligations, PdpUnavailable
from authorizer.messages import TEXTS
from proxy import responses
from proxy.gateway import Gateway
from proxy.hygiene import HygieneError, check_target
from proxy.lifecycle import API, endpoint, sub_path
from proxy.pipeline import authenticated, parse_json_object
from proxy.replay import approval_audit_record
from proxy.responses import Refusal, refusal

MAX_COMMENT = 2000
APPROVAL_ID = re.compile(r"^[0-9a-f]{32}$")


def _not_pending(status: str, what: str) -> Refusal:
    """409 ``approval_not_pending``: an approval in ``status`` can no longer be ``what``
    (``approval_decided``, ``approval_withdrawn``: texts of the catalog)."""
    return refusal("approval_not_pending", status=status, what_zh=TEXTS[what].zh, what_en=TEXTS[what].en)


def _who(record: AuditRecord, principal: Principal) -> None:
    record.detail["acr"], record.detail["auth_time"] = principal.acr, principal.auth_time


async def _policy(gw: Gateway, principal: Principal, approval: Approval, client_ip: str) -> Decision:
    """May ``principal`` decide on ``approval``? (verb ``approve`` on the held request's module)"""
    row = approval.row
    policy_input = {
        "subject": principal.policy_subject(),
        "action": {"module": row["module"], "verb": "approve", "also": []},
        "resource": row["resource"],
        "request": {"method": "POST", "route": "/_gateway/approvals/{id}", "client_ip": client_ip,
                    "time_ms": now_ms()},
        "approval": {"id": approval.approval_id, "operation": row["operation"], "requester_id": row["requester_id"],
                     "requester_username": row["requester_username"],
                     # the requester's reporting line when they asked (their token's, kept with the request)
                     "requester_reports_to": (row["decision_input"] or {}).get("subject", {}).get("reports_to", []),
                     "deciders": approval.deciders(), "status": approval.status},
    }
    try:
        return await gw.pdp.decide(policy_input)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None


def _json(data: Any, record: AuditRecord, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"Cache-Control": "no-store", "X-Decision-Id": record.decision_id})


Body = Callable[[web.Request, Gateway, AuditRecord, Principal], Awaitable[web.Response]]


def _audited(body: Body) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler body: authenticate the caller and pass them with the audit record (the
    one audited-request path, :mod:`proxy.lifecycle`, answers and records the outcome)."""

    @endpoint(API)
    async def handler(request: web.Request) -> web.Response:
        ctx, _ = await authenticated(request)
        assert ctx.principal is not None
        _who(ctx.record, ctx.principal)
        return await body(request, ctx.gw, ctx.record, ctx.principal)

    handler.__doc__ = body.__doc__
    return handler


def _not_found() -> Refusal:
    return refusal("approval_not_found")


async def load(gw: Gateway, approval_id: str) -> Approval:
    """An approval by id (expired ones are marked so, and audited).

    Raises:
        Refusal: 404 ``approval_not_found``.
    """
    if not APPROVAL_ID.match(approval_id):
        raise _not_found()
    approval = await gw.approvals.get(approval_id)
    if approval is None:
        raise _not_found()
    if approval.is_expired(now_ms()):
        for expired_id in await gw.approvals.expire_due():
            expired = await gw.approvals.get(expired_id)
            if expired is not None:
                gw.audit.submit(approval_audit_record(expired, "approval_expired", 0, decision="deny",
                                                      username=expired.row["requester_username"]))
        approval = await gw.approvals.get(approval_id) or approval
    return approval


async def _visible(gw: Gateway, principal: Principal, approval: Approval, record: AuditRecord,
                   deciding: bool = False) -> Decision:
    """The viewer's approve-decision (its masks apply to what they see).

    Reading needs to be the requester, a decider, or someone who may decide (possibly after
    a step-up); everyone else gets 404. When ``deciding``, a person who holds the approving
    permission but fails the scope is told so (403), and only people without it get 404.
    """
    decision = await _policy(gw, principal, approval, record.client_ip)
    involved = principal.user_id == approval.row["requester_id"] or principal.user_id in approval.deciders()
    if not (involved or decision.allow or decision.status == 401):
        if deciding and not any(r.code in ("missing_permission", "no_roles") for r in decision.reasons):
            record.approval_id = approval.approval_id
            raise responses.policy_denied(403, decision.reasons)
        raise _not_found()
    row = approval.row
    record.approval_id = approval.approval_id
    record.module, record.resource_id = row["module"], row["resource_id"]
    attributes = (row["resource"] or {}).get("attributes", {})
    record.warehouse = ",".join(attributes.get("warehouse", []))
    record.channel = ",".join(attributes.get("channel", []))
    return decision


async def inbox(gw: Gateway, record: AuditRecord, principal: Principal) -> dict[str, list[dict[str, Any]]]:
    """``{"to_decide": [...], "requested": [...]}``: pending requests the person may decide
    (possibly after a step-up: ``step_up_needed``) and their own requests, as documents."""
    record.module, record.verb = "approvals", "view"
    to_decide = []
    for approval in await gw.approvals.list(status=PENDING, limit=None):
        if approval.is_expired(now_ms()) or approval.row["requester_id"] == principal.user_id:
            continue
        decision = await _policy(gw, principal, approval, record.client_ip)
        if decision.allow or decision.status == 401:
            doc = _view(gw, approval, decision.obligations, include_result=False)
            step_up = decision.obligations.step_up
            doc["step_up_needed"] = step_up.document() if step_up is not None else None
            to_decide.append(doc)
    mine = [_view(gw, a, await _requester_masks(gw, a))
            for a in await gw.approvals.list(requester_id=principal.user_id)]
    record.decision, record.reason_code = "allow", "allowed"
    return {"to_decide": to_decide, "requested": mine}


@_audited
async def list_approvals(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal) -> web.Response:
    """The caller's inbox (pending requests they may decide) and their own requests."""
    return _json(await inbox(gw, record, principal), record)



@_audited
async def get_approval(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal) -> web.Response:
    """One approval: for its requester, its deciders and anyone eligible to decide."""
    approval = await load(gw, request.match_info["approval_id"])
    decision = await _visible(gw, principal, approval, record)
    record.verb = "view"
    record.decision, record.reason_code = "allow", "allowed"
    return _json(_view(gw, approval, decision.obligations), record)



def _view(gw: Gateway, approval: Approval, obligations: Obligations, include_result: bool = True) -> dict[str, Any]:
    """``approval``'s document as a viewer with ``obligations`` sees it (their masks, of their kinds)."""
    return approval.document(include_result, obligations.mask, gw.mask_kinds(obligations))


async def _requester_masks(gw: Gateway, approval: Approval) -> Obligations:
    """The obligations (masks) of the requester's own request (its stored decision input, decided
    again): what they see of its held body and of the WMS answer is what they would see of it directly."""
    try:
        return (await gw.pdp.decide(approval.row["decision_input"])).obligations
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None


async def _recheck_request(gw: Gateway, approval: Approval) -> str | None:
    """Why the held request may no longer run, or None: the requester's access was cut after
    they asked (a revocation), the resource's state the request was decided on changed since
    (conditional replay: e.g. the order it moves back is no longer where it was), or the
    current policy no longer allows it as it was asked."""
    row = approval.row
    if gw.revocations.is_revoked(row["requester_id"], row["created_ms"] // 1000):
        return "the requester's access changed after the request was made"
    changed = await _state_changed(gw, row)
    if changed is not None:
        return changed
    try:
        decision = await gw.pdp.decide(row["decision_input"])
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None
    held = decision.obligations.export if row.get("export") else decision.obligations.approval
    if not decision.allow or held is None:
        return f"the current policy no longer allows the request ({decision.reason.code})"
    return None


async def _state_changed(gw: Gateway, row: dict[str, Any]) -> str | None:
    """How the resource's state (``input.resource.state``, a snapshot taken when the request was
    held) differs from the WMS's now, or None when it is the same or was not taken.

    Raises:
        Refusal: 503 when the WMS cannot be asked (the approval waits; nothing runs unchecked).
    """
    snapshot = ((row["decision_input"] or {}).get("resource") or {}).get("state")
    if snapshot is None or row["path"].startswith("/_gateway/"):
        return None
    dimension = gw.config.upstream.tenant.dimension if gw.config.upstream.tenant is not None else None
    values = ((row["resource"] or {}).get("attributes") or {}).get(dimension or "", [])
    tenant = (dimension, values[0]) if dimension and len(values) == 1 else None
    try:
        target = check_target(row["method"], row["path"] + (f"?{row['query']}" if row["query"] else ""))
        match = gw.routes.match(row["method"], target.segments)
        if match is None:
            return "the request no longer matches a route"
        body = json.loads(row["body"]) if row["body"] else None
        credentials = gw.identity.credentials(tenant[1]) if tenant else gw.identity.static_credentials()
        now = await gw.resolver.resolve(match.route, RequestParts(match.params, target.query, body), tenant,
                                        credentials)
    except LookupFailed:
        raise refusal("attribute_lookup_failed") from None
    except (HygieneError, BadResourceInput, Refusal, ValueError) as exc:  # it can no longer be checked: not run
        return f"the request can no longer be checked ({type(exc).__name__})"
    current = now.state if now.found else None
    if current == snapshot:
        return None
    if current is None:
        return "the resource no longer exists"
    moved = ", ".join(f"{name}: {snapshot.get(name)} -> {current.get(name)}" for name in sorted(current)
                      if current.get(name) != snapshot.get(name))
    return f"the resource changed since the request ({moved})"


async def decide(gw: Gateway, approval_id: str, record: AuditRecord, principal: Principal, verdict: str,
                 comment: str) -> dict[str, Any]:
    """Approve (``verdict="approve"``) or reject an approval as ``principal``; an approval that
    reaches its count runs at once. Returns the approval's document as the decider may see it.

    Raises:
        Refusal: 404 unknown/invisible, 401 step-up needed (RFC 9470), 403 not allowed,
            409 not pending, already decided, or the request is no longer allowed.
    """
    approval = await load(gw, approval_id)
    decision = await _visible(gw, principal, approval, record, deciding=True)
    row = approval.row
    record.verb = "approve"
    record.policy_revision = decision.policy_revision
    record.detail.update({"verdict": verdict, "operation": row["operation"],
                          "requester": row["requester_username"]})
    if approval.status != PENDING:
        raise _not_pending(approval.status, "approval_decided")
    if not decision.allow:
        raise responses.policy_denied(403 if decision.status == 404 else decision.status, decision.reasons,
                                      decision.obligations.step_up)
    record.detail["comment"] = comment
    if verdict == "approve":
        problem = await _recheck_request(gw, approval)
        if problem is not None:
            await gw.approvals.withdraw(approval.approval_id, f"cancelled: {problem}")
            record.detail["cancelled"] = problem
            raise refusal("request_no_longer_allowed", problem=problem)
    outcome = await gw.approvals.decide(approval.approval_id, principal.user_id, principal.username,
                                        verdict, comment)
    if outcome == "duplicate":
        raise refusal("already_decided")
    if outcome == "not_pending":
        current = await gw.approvals.get(approval.approval_id)
        state = current.status if current else "gone"
        raise _not_pending(state, "approval_decided")
    record.decision, record.reason_code = "allow", "approved" if verdict == "approve" else "rejected"
    if outcome == "approved":
        await gw.executor.execute(approval.approval_id)
    current = await gw.approvals.get(approval.approval_id)
    return _view(gw, current, decision.obligations) if current else {}


def decide_handler(verdict: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``POST .../approve`` (``verdict="approve"``) or ``POST .../reject``."""

    async def handler(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal) -> web.Response:
        comment = await _comment(request)
        return _json(await decide(gw, request.match_info["approval_id"], record, principal, verdict, comment),
                     record)

    return _audited(handler)


@_audited
async def withdraw(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal) -> web.Response:
    """The requester takes back a pending request; it can then never run."""
    approval = await load(gw, request.match_info["approval_id"])
    decision = await _visible(gw, principal, approval, record)
    record.verb = "withdraw"
    if principal.user_id != approval.row["requester_id"]:
        raise refusal("not_the_requester")
    if not await gw.approvals.withdraw(approval.approval_id, f"withdrawn by {principal.username}"):
        raise _not_pending(approval.status, "approval_withdrawn")
    record.decision, record.reason_code = "allow", "withdrawn"
    current = await gw.approvals.get(approval.approval_id)
    return _json(_view(gw, current, decision.obligations) if current else {}, record)



async def _comment(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    raw = await request.read()
    if len(raw) > 4 * MAX_COMMENT + 100:
        raise responses.bad_body(f"comment must be at most {MAX_COMMENT} characters")
    body = parse_json_object(raw)
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise responses.bad_body(f"comment must be a string of at most {MAX_COMMENT} characters")
    return comment


def add_routes(app: web.Application) -> None:
    """Register the approvals API on the gateway's ``/_gateway`` sub-application ``app``."""
    base = sub_path("/_gateway/approvals")
    app.router.add_get(base, list_approvals)
    app.router.add_get(base + "/{approval_id}", get_approval)
    app.router.add_post(base + "/{approval_id}/approve", decide_handler("approve"))
    app.router.add_post(base + "/{approval_id}/reject", decide_handler("reject"))
    app.router.add_post(base + "/{approval_id}/withdraw", withdraw)
