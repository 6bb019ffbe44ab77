"""The approvals API under ``/_gateway/approvals`` (four-eyes approval of held requests).

``GET  /_gateway/approvals``               what the caller may decide, and what they asked for
``GET  /_gateway/approvals/{id}``           one approval and, once run, the WMS answer
``POST /_gateway/approvals/{id}/approve``   approve (JSON body ``{"comment": "..."}`` optional)
``POST /_gateway/approvals/{id}/reject``    reject

Who may decide is policy (``module:approve``, scope, step-up, not the requester, not
twice). Every call is in the audit trail with the approval id.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from authorizer.approvals import PENDING, Approval, now_ms
from authorizer.audit import AuditRecord
from authorizer.identity import Principal
from authorizer.pdp import Decision, PdpUnavailable
from proxy import responses
from proxy.pipeline import GATEWAY, Gateway, authenticate, client_address
from proxy.responses import Refusal, refusal_response

MAX_COMMENT = 2000


def _record(request: web.Request, gw: Gateway, principal: Principal | None, approval_id: str | None) -> AuditRecord:
    raw_path, _, raw_query = request.raw_path.partition("?")
    record = AuditRecord(decision_id=uuid.uuid4().hex, ts_ms=int(time.time() * 1000), decision="deny",
                         reason_code="", http_status=0, method=request.method, path=raw_path[:2048],
                         query=raw_query[:2048], client_ip=client_address(request, gw.trusted_proxies),
                         user_agent=request.headers.get("User-Agent", "")[:512],
                         device_id=request.headers.get("X-Device-Id", "")[:128], approval_id=approval_id)
    if principal is not None:
        record.user_id, record.username, record.roles = principal.user_id, principal.username, ",".join(principal.roles)
    return record


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
                     "deciders": approval.deciders(), "status": approval.status},
    }
    try:
        return await gw.pdp.decide(policy_input)
    except PdpUnavailable:
        raise responses.pdp_unavailable() from None


def _json(data: Any, status: int = 200, record: AuditRecord | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if record is not None:
        headers["X-Decision-Id"] = record.decision_id
    return web.Response(status=status, text=json.dumps(data, ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers=headers)


async def _finish(gw: Gateway, record: AuditRecord, work: Any) -> web.Response:
    """Run a handler body; audit the outcome whatever it is."""
    try:
        response = await work()
    except Refusal as refusal:
        reason = refusal.audit_reason
        record.reason_code = reason.code if reason else refusal.code
        record.reason_en = reason.en if reason else refusal.en
        record.reason_zh = reason.zh if reason else refusal.zh
        response = refusal_response(refusal, record.decision_id)
    record.http_status = response.status
    gw.audit.submit(record)
    return response


def _not_found() -> Refusal:
    return Refusal(404, "approval_not_found", "审批单不存在", "no such approval")


async def _load(gw: Gateway, request: web.Request) -> Approval:
    approval = await gw.approvals.get(request.match_info["approval_id"])
    if approval is None:
        raise _not_found()
    if approval.is_expired(now_ms()):
        await gw.approvals.expire_due()
        approval = await gw.approvals.get(approval.approval_id) or approval
    return approval


async def list_approvals(request: web.Request) -> web.Response:
    """The caller's inbox (pending requests they may decide) and their own requests."""
    gw = request.app[GATEWAY]
    record = _record(request, gw, None, None)

    async def work() -> web.Response:
        principal = await authenticate(request, gw)
        record.user_id, record.username, record.roles = principal.user_id, principal.username, ",".join(principal.roles)
        record.module, record.verb = "approvals", "view"
        inbox = []
        for approval in await gw.approvals.list(status=PENDING):
            if approval.is_expired(now_ms()) or approval.row["requester_id"] == principal.user_id:
                continue
            decision = await _policy(gw, principal, approval, record.client_ip)
            if decision.allow or decision.status == 401:
                doc = approval.document(include_result=False)
                doc["step_up_needed"] = decision.obligations.step_up
                inbox.append(doc)
        mine = [a.document() for a in await gw.approvals.list(requester_id=principal.user_id)]
        record.decision, record.reason_code = "allow", "allowed"
        return _json({"to_decide": inbox, "requested": mine}, record=record)

    return await _finish(gw, record, work)


async def get_approval(request: web.Request) -> web.Response:
    """One approval: for its requester, its deciders, anyone eligible to decide, and auditors."""
    gw = request.app[GATEWAY]
    record = _record(request, gw, None, request.match_info["approval_id"])

    async def work() -> web.Response:
        principal = await authenticate(request, gw)
        record.user_id, record.username, record.roles = principal.user_id, principal.username, ",".join(principal.roles)
        approval = await _load(gw, request)
        record.module, record.verb, record.resource_id = approval.row["module"], "view", approval.row["resource_id"]
        involved = principal.user_id == approval.row["requester_id"] or principal.user_id in approval.deciders()
        if not involved:
            decision = await _policy(gw, principal, approval, record.client_ip)
            if not (decision.allow or decision.status == 401):
                raise _not_found()
        record.decision, record.reason_code = "allow", "allowed"
        return _json(approval.document(), record=record)

    return await _finish(gw, record, work)


def decide_handler(verdict: str) -> Any:
    """The handler of ``POST .../approve`` (``verdict="approve"``) or ``POST .../reject``."""

    async def handler(request: web.Request) -> web.Response:
        gw = request.app[GATEWAY]
        record = _record(request, gw, None, request.match_info["approval_id"])

        async def work() -> web.Response:
            principal = await authenticate(request, gw)
            record.user_id, record.username = principal.user_id, principal.username
            record.roles = ",".join(principal.roles)
            approval = await _load(gw, request)
            row = approval.row
            record.module, record.verb, record.resource_id = row["module"], "approve", row["resource_id"]
            attributes = (row["resource"] or {}).get("attributes", {})
            record.warehouse = ",".join(attributes.get("warehouse", []))
            record.channel = ",".join(attributes.get("channel", []))
            record.detail = {"verdict": verdict, "operation": row["operation"], "requester": row["requester_username"]}
            if approval.status != PENDING:
                raise Refusal(409, "approval_not_pending", f"审批单状态为 {approval.status},不能再决定",
                              f"the approval is {approval.status}; it can no longer be decided")
            decision = await _policy(gw, principal, approval, record.client_ip)
            record.policy_revision = decision.policy_revision
            if not decision.allow:
                raise responses.policy_denied(decision.status if decision.status != 404 else 403, decision.reasons,
                                              decision.obligations.step_up)
            comment = await _comment(request)
            outcome = await gw.approvals.decide(approval.approval_id, principal.user_id, principal.username,
                                                verdict, comment)
            if outcome == "duplicate":
                raise Refusal(409, "already_decided", "您已对此申请做出过决定", "you have already decided on this request")
            if outcome == "not_pending":
                current = await gw.approvals.get(approval.approval_id)
                state = current.status if current else "gone"
                raise Refusal(409, "approval_not_pending", f"审批单状态为 {state},不能再决定",
                              f"the approval is {state}; it can no longer be decided")
            record.decision, record.reason_code = "allow", f"{verdict}d" if verdict == "approve" else "rejected"
            if outcome == "approved":
                await gw.executor.execute(approval.approval_id)
            current = await gw.approvals.get(approval.approval_id)
            return _json(current.document() if current else {}, record=record)

        return await _finish(gw, record, work)

    return handler


async def _comment(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise responses.bad_body("not valid JSON / 不是有效的 JSON") from None
    comment = body.get("comment", "") if isinstance(body, dict) else None
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise responses.bad_body(f"comment must be a string of at most {MAX_COMMENT} characters")
    return comment


def add_routes(app: web.Application) -> None:
    """Register the approvals API on ``app`` (before the proxy's catch-all route)."""
    app.router.add_get("/_gateway/approvals", list_approvals)
    app.router.add_get("/_gateway/approvals/{approval_id}", get_approval)
    app.router.add_post("/_gateway/approvals/{approval_id}/approve", decide_handler("approve"))
    app.router.add_post("/_gateway/approvals/{approval_id}/reject", decide_handler("reject"))
