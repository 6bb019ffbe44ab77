"""Running approved requests: replay each stored request to the WMS exactly once.

A request runs only after :meth:`ApprovalStore.claim` (a compare-and-set) succeeds,
so a double approval, two racing approvers or several proxy processes cannot run it
twice. If the WMS could not be reached (nothing was sent) the claim is released and
the request is retried by the background loop, also after a restart; if it may have
reached the WMS without an answer, it is marked ``outcome_unknown`` and never replayed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from authorizer.approvals.store import EXECUTED, OUTCOME_UNKNOWN, Approval, ApprovalStore, now_ms
from authorizer.audit import AuditRecord, AuditWriter
from authorizer.authn.identity import Principal
from authorizer.config import UpstreamSettings
from proxy.responses import Refusal
from proxy.upstream_answer import AnswerConventions, LinkTarget, upstream_error
from proxy.upstream_identity import UpstreamIdentity

log = logging.getLogger(__name__)

FAILED = "failed"

Internal = Callable[[str, str, "bytes | None", str], Awaitable[tuple[int, bytes, str]]]


def approval_audit_record(approval: Approval, reason_code: str, http_status: int, **fields: object) -> AuditRecord:
    """An audit record about ``approval`` (what it touches, linked by its id)."""
    row = approval.row
    attributes = (row["resource"] or {}).get("attributes", {})
    record = AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=now_ms(), decision="allow", reason_code=reason_code,
        http_status=http_status, method=row["method"], path=row["path"], query=row["query"],
        module=row["module"], verb=row["verb"], resource_id=row["resource_id"],
        warehouse=",".join(attributes.get("warehouse", [])), channel=",".join(attributes.get("channel", [])),
        order_type=",".join(attributes.get("order_type", [])), approval_id=approval.approval_id,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


class ApprovalExecutor:
    """Replays approved requests and keeps the approvals moving (expiry, retries, stale claims).

    Args:
        store: the approvals.
        session: the app's shared aiohttp session.
        upstream: the WMS settings (URL, timeout).
        identity: identity headers and credentials for the WMS (the requester's identity is replayed).
        audit: where every execution is recorded.
        public_origin: the gateway's origin, for WMS links in stored answers.
        internal: runs held requests addressed to the gateway itself (paths under
            ``/_gateway/``, e.g. access changes): ``(method, path, body, requester) ->
            (status, body, content type)``; None when there are none.
    """

    def __init__(self, store: ApprovalStore, session: aiohttp.ClientSession, upstream: UpstreamSettings,
                 identity: UpstreamIdentity, audit: AuditWriter, internal: Internal | None = None,
                 public_origin: str = "") -> None:
        self._internal = internal
        self._conventions = AnswerConventions(upstream.answers, upstream.url)
        self._links = LinkTarget(public_origin)
        self._store = store
        self._session = session
        self._upstream = upstream
        self._identity = identity
        self._audit = audit
        self._timeout = aiohttp.ClientTimeout(total=upstream.timeout_seconds)
        self._stale_ms = int((upstream.timeout_seconds + 60) * 1000)

    async def execute(self, approval_id: str) -> Approval | None:
        """Run an approved request if this caller wins the claim; return the approval afterwards.
        An approved export is left as it is: its requester downloads it (:mod:`proxy.pipeline`)."""
        current = await self._store.get(approval_id)
        if current is None or current.row.get("export"):
            return current
        if await self._store.claim(approval_id):
            approval = await self._store.get(approval_id)
            if approval is not None:
                await self._run(approval)
        return await self._store.get(approval_id)

    async def _run(self, approval: Approval) -> None:
        row = approval.row
        subject = (row["decision_input"] or {}).get("subject") or {}
        requester = Principal(user_id=row["requester_id"], username=row["requester_username"],
                              roles=tuple(r for r in row["requester_roles"].split(",") if r),
                              attributes=dict(subject.get("attributes") or {}))
        if row["path"].startswith("/_gateway/"):
            await self._run_internal(approval, requester)
            return
        dimension = self._upstream.tenant.dimension if self._upstream.tenant is not None else "warehouse"
        warehouses = (row["resource"] or {}).get("attributes", {}).get(dimension, [])
        try:
            headers = self._identity.headers(requester, warehouses[0] if len(warehouses) == 1 else None)
        except Refusal as refusal:
            await self._store.finish(approval.approval_id, FAILED, None, None, None, refusal.en)
            self._audit.submit(approval_audit_record(approval, "approved_request_failed", 0,
                                                     username=requester.username,
                                                     user_id=requester.user_id, reason_en=refusal.en))
            return
        headers["Content-Type"] = row["content_type"] or "application/octet-stream"
        headers["X-WMS-Approval-Id"] = approval.approval_id
        url = self._upstream.url + row["path"] + (f"?{row['query']}" if row["query"] else "")
        await self._audit.commit(approval_audit_record(  # committed before anything is sent
            approval, "approved_request_started", 0, username=requester.username, user_id=requester.user_id,
            roles=row["requester_roles"], detail={"operation": row["operation"], "approved_by": approval.approvers()}))
        started = time.perf_counter()
        try:
            async with self._session.request(row["method"], url, data=row["body"], headers=headers,
                                             timeout=self._timeout, allow_redirects=False) as resp:
                body = await resp.read()
                status, content_type = resp.status, resp.content_type
        except aiohttp.ClientConnectorError as exc:
            await self._store.release(approval.approval_id, f"WMS unreachable, will retry: {exc}")
            log.warning("approval %s: WMS unreachable, will retry", approval.approval_id)
            return
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._store.finish(approval.approval_id, OUTCOME_UNKNOWN, None, None, None,
                                     f"sent, but no answer from the WMS ({type(exc).__name__}); check before retrying")
            self._audit.submit(approval_audit_record(approval, "approved_request_outcome_unknown", 0,
                                                     username=requester.username, user_id=requester.user_id))
            return
        ms = (time.perf_counter() - started) * 1000
        real, body, content_type, facts = self._safe_answer(status, body, content_type)
        await self._store.finish(approval.approval_id, EXECUTED, status, body, content_type)
        await self._audit.commit(approval_audit_record(
            approval, "approved_request_executed", status, username=requester.username, user_id=requester.user_id,
            roles=row["requester_roles"], upstream_status=real, upstream_ms=round(ms, 3),
            detail={"operation": row["operation"], "approved_by": approval.approvers(), **facts}))

    def _safe_answer(self, status: int, body: bytes, content_type: str) -> tuple[int, bytes, str, dict[str, Any]]:
        """The WMS answer as it may be stored and shown to the requester, by the same conventions
        as a forwarded answer: a 5xx body withheld (a debug page may carry credentials), WMS
        links rewritten to the gateway, a failure reported inside a 200 read.

        Returns:
            ``(the real status, body, content type, facts for the audit record)``.
        """
        if status >= 500:
            error = upstream_error(status, 0.0, None)
            text = json.dumps({"error": error.code, "reason_zh": error.zh, "reason_en": error.en}, ensure_ascii=False)
            return status, text.encode("utf-8"), "application/json", {"upstream_body": "withheld"}
        if "json" not in content_type or not body:
            return status, body, content_type, {}
        try:
            document = json.loads(body)
        except ValueError:
            return status, body, content_type, {}
        outcome = self._conventions.inspect(document, self._links)
        facts: dict[str, Any] = {"links_rewritten": outcome.links} if outcome.links else {}
        if outcome.status is not None and outcome.status != status:
            facts.update(upstream_http_status=status, upstream_failure_in_body=True)
        body = json.dumps(document, ensure_ascii=False).encode("utf-8") if outcome.links else body
        return outcome.status or status, body, content_type, facts

    async def _run_internal(self, approval: Approval, requester: Principal) -> None:
        row = approval.row
        if self._internal is None:
            await self._store.finish(approval.approval_id, FAILED, None, None, None, "no handler for gateway requests")
            return
        started = time.perf_counter()
        try:
            status, body, content_type = await self._internal(row["method"], row["path"], row["body"],
                                                              requester.username)
        except Exception as exc:
            await self._store.finish(approval.approval_id, OUTCOME_UNKNOWN, None, None, None, repr(exc))
            raise
        await self._store.finish(approval.approval_id, EXECUTED, status, body, content_type)
        self._audit.submit(approval_audit_record(
            approval, "approved_request_executed", status, username=requester.username, user_id=requester.user_id,
            roles=row["requester_roles"], upstream_ms=round((time.perf_counter() - started) * 1000, 3),
            detail={"operation": row["operation"], "approved_by": approval.approvers()}))

    async def sweep(self) -> None:
        """One pass: expire overdue requests and lapsed export downloads, abandon claims older
        than the upstream timeout plus a minute (their process died while the request was in
        flight), and run approved requests (e.g. after a WMS outage or a restart)."""
        for approval_id in await self._store.expire_due():
            approval = await self._store.get(approval_id)
            if approval is not None:
                self._audit.submit(approval_audit_record(approval, "approval_expired", 0, decision="deny",
                                                         username=approval.row["requester_username"]))
        approved = await self._store.list(status="approved", limit=None)  # read once for both passes
        for approval_id in await self._store.expire_downloads(approved):
            approval = await self._store.get(approval_id)
            if approval is not None:
                self._audit.submit(approval_audit_record(approval, "approval_expired", 0, decision="deny",
                                                         username=approval.row["requester_username"]))
        for approval_id in await self._store.abandon_stale_claims(self._stale_ms):
            log.error("approval %s was interrupted while executing; outcome unknown", approval_id)
        for approval in approved:  # execute() claims each first, so one run by then is not run again
            if not approval.row.get("export"):  # an approved export waits for its requester
                await self.execute(approval.approval_id)

    async def run_forever(self, interval_seconds: float) -> None:
        """Sweep every ``interval_seconds`` until cancelled (see :meth:`sweep`)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("approval sweep failed; retrying")
            await asyncio.sleep(interval_seconds)
