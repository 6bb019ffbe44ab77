"""Four-eyes approvals: held high-risk requests and the decisions on them, stored durably.

Every state change is a compare-and-set in the database, so two approvers racing,
an approver clicking twice, or several proxy processes sharing one store can never
run a request twice:

    pending --(enough approvals)--> approved --(claim)--> executing --> executed
       |                               ^                       |
       |                               +---(WMS unreachable)---+--> outcome_unknown
       +--(a rejection)--> rejected       (nothing sent: retry)     (sent, no answer)
       +--(expires_at passed)--> expired
       +--(requester takes it back, or its requester/policy changed)--> withdrawn

A held export (``export`` set: its rows and reason) is not run by the gateway when approved:
its requester downloads it, once, within ``expires_seconds`` of the approval
(:meth:`Approval.download_until`); the download claims it and finishes it as ``executed``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata
from authorizer.enforce.exports import EXPORT_APPROVAL_PARAM
from authorizer.enforce.mask_kinds import MaskKinds
from authorizer.enforce.obligations import mask_document

PENDING, APPROVED, EXECUTING, EXECUTED = "pending", "approved", "executing", "executed"
REJECTED, EXPIRED, OUTCOME_UNKNOWN, WITHDRAWN = "rejected", "expired", "outcome_unknown", "withdrawn"
MAX_STORED_RESULT_BYTES = 256 * 1024

approvals = Table(
    "approvals",
    metadata,
    Column("approval_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("required_approvals", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("requester_id", String(64), nullable=False),
    Column("requester_username", String(255), nullable=False),
    Column("requester_roles", Text, nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("content_type", String(255), nullable=False),
    Column("module", String(64), nullable=False),
    Column("verb", String(32), nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("resource", JSON, nullable=False),
    Column("decision_input", JSON, nullable=False),
    Column("claimed_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("finished_ms", BigInteger, nullable=True),
    Column("result_status", Integer, nullable=True),
    Column("result_body", LargeBinary, nullable=True),
    Column("result_content_type", String(255), nullable=True),
    Column("result_detail", Text, nullable=True),
    Column("export", JSON, nullable=True),
    Index("approvals_status", "status", "expires_ms"),
    Index("approvals_requester", "requester_id", "created_ms"),
)

approval_decisions = Table(
    "approval_decisions",
    metadata,
    Column("approval_id", String(64), nullable=False),
    Column("decider_id", String(64), nullable=False),
    Column("decider_username", String(255), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("decided_ms", BigInteger, nullable=False),
    UniqueConstraint("approval_id", "decider_id", name="one_decision_per_person"),
)


def _masked_text(body: bytes | None, mask: tuple[str, ...], kinds: MaskKinds | None) -> str | None:
    """A held body as text for the viewer; a JSON object has the viewer's masks applied."""
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace")
    if not mask:
        return text
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return text
    before = json.dumps(document, ensure_ascii=False)
    mask_document(document, mask, None, kinds)
    after = json.dumps(document, ensure_ascii=False)
    return text if after == before else after


class _LostRace(Exception):
    """Another transaction settled the approval between our read and our write."""


def now_ms() -> int:
    """Milliseconds since the epoch (UTC)."""
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """An epoch-milliseconds time as ISO 8601 UTC, or None."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class HeldRequest:
    """A request to hold: what will be replayed and who asked.

    Attributes:
        operation: the high-risk operation id (policy data).
        required_approvals: approvals needed before it runs.
        expires_seconds: how long it may wait for them.
        requester_id, requester_username, requester_roles: who asked (their identity is
            what the WMS receives on replay).
        method, path, query, body, content_type: the exact request.
        module, verb, resource_id, resource: what it touches (``resource`` is the policy's
            ``input.resource``; approvers are checked against it).
        decision_input: the input the PDP decided on.
        export: for a held export, what approvers see of it (``{"rows", "reason",
            "unmasked_pii"}``); None for any other request.
    """

    operation: str
    required_approvals: int
    expires_seconds: int
    requester_id: str
    requester_username: str
    requester_roles: list[str]
    method: str
    path: str
    query: str
    body: bytes | None
    content_type: str
    module: str
    verb: str
    resource_id: str
    resource: dict[str, Any]
    decision_input: dict[str, Any]
    export: dict[str, Any] | None = None


@dataclass
class Approval:
    """A stored approval with its decisions (see the module docstring for the states)."""

    row: dict[str, Any]
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def approval_id(self) -> str:
        return str(self.row["approval_id"])

    @property
    def status(self) -> str:
        return str(self.row["status"])

    def deciders(self) -> list[str]:
        """User ids of everyone who approved or rejected."""
        return [d["decider_id"] for d in self.decisions]

    def approvers(self) -> list[str]:
        """Usernames of those who approved."""
        return [d["decider_username"] for d in self.decisions if d["decision"] == "approve"]

    def is_expired(self, at_ms: int) -> bool:
        """Pending past its expiry time."""
        return self.status == PENDING and at_ms >= int(self.row["expires_ms"])

    def download_until(self) -> int | None:
        """For an approved export, until when (ms since the epoch, UTC) its requester may
        download it: as long after the approval settled as a request may wait for one.
        None for anything else."""
        approved = [int(d["decided_ms"]) for d in self.decisions if d["decision"] == "approve"]
        if not self.row.get("export") or self.status != APPROVED or not approved:
            return None
        return max(approved) + int(self.row["expires_ms"]) - int(self.row["created_ms"])

    def document(self, include_result: bool = True, mask: tuple[str, ...] = (),
                 kinds: MaskKinds | None = None) -> dict[str, Any]:
        """The JSON an API client sees: the whole held request (what will run) and, once run,
        the WMS answer; ``mask`` (the viewer's field masks, each with its kind in ``kinds``;
        None: redacted) applies to JSON bodies."""
        r = self.row
        doc: dict[str, Any] = {
            "approval_id": r["approval_id"], "status": r["status"], "operation": r["operation"],
            "required_approvals": r["required_approvals"], "created_at": iso(r["created_ms"]),
            "expires_at": iso(r["expires_ms"]),
            "requester": {"id": r["requester_id"], "username": r["requester_username"]},
            "request": {"method": r["method"], "path": r["path"], "query": r["query"],
                        "content_type": r["content_type"],
                        "body": _masked_text(r["body"], mask, kinds)},
            "module": r["module"], "verb": r["verb"], "resource_id": r["resource_id"],
            "resource": r["resource"],
            "decisions": [{"by": d["decider_username"], "decision": d["decision"], "comment": d["comment"],
                           "at": iso(d["decided_ms"])} for d in self.decisions],
        }
        if r.get("export"):
            doc["export"] = r["export"]
            until = self.download_until()
            if until is not None:  # the requester sends the same request again with the approval
                param = f"{EXPORT_APPROVAL_PARAM}={r['approval_id']}"
                doc["download"] = {"method": r["method"], "path": r["path"], "query": r["query"],
                                   "header": {"X-Export-Approval": r["approval_id"]},
                                   "url": f"{r['path']}?{r['query'] + '&' if r['query'] else ''}{param}",
                                   "until": iso(until)}
        if include_result and r["result_status"] is not None:
            body = r["result_body"] or b""
            text = body.decode("utf-8", errors="replace")
            result: dict[str, Any] = {"status": r["result_status"], "content_type": r["result_content_type"],
                                      "finished_at": iso(r["finished_ms"])}
            try:
                result["body"] = json.loads(text) if "json" in (r["result_content_type"] or "") else text
                mask_document(result["body"], mask, None, kinds)
            except (ValueError, RecursionError):
                result["body"] = text
            doc["result"] = result
        if r["result_detail"]:
            doc["detail"] = r["result_detail"]
        return doc


class ApprovalStore:
    """Reads and changes approvals.

    Args:
        engine: the store's engine (schema created by :func:`authorizer.db.create_schema`).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, held: HeldRequest) -> Approval:
        """Store a held request as ``pending``; committed before this returns."""
        created = now_ms()
        row = {
            "approval_id": uuid.uuid4().hex, "status": PENDING, "operation": held.operation,
            "required_approvals": held.required_approvals, "created_ms": created,
            "expires_ms": created + held.expires_seconds * 1000, "requester_id": held.requester_id,
            "requester_username": held.requester_username, "requester_roles": ",".join(held.requester_roles),
            "method": held.method, "path": held.path, "query": held.query, "body": held.body,
            "content_type": held.content_type, "module": held.module, "verb": held.verb,
            "resource_id": held.resource_id, "resource": held.resource, "decision_input": held.decision_input,
            "claimed_ms": None, "attempts": 0, "finished_ms": None, "result_status": None, "result_body": None,
            "result_content_type": None, "result_detail": None, "export": held.export,
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(approvals), row)
        return Approval(row)

    async def get(self, approval_id: str) -> Approval | None:
        """One approval with its decisions, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(approvals).where(approvals.c.approval_id == approval_id))).mappings().first()
            if row is None:
                return None
            decisions = (await conn.execute(
                select(approval_decisions).where(approval_decisions.c.approval_id == approval_id)
                .order_by(approval_decisions.c.decided_ms))).mappings().all()
        return Approval(dict(row), [dict(d) for d in decisions])

    async def list(self, status: str | None = None, requester_id: str | None = None,
                   limit: int | None = 200) -> list[Approval]:
        """Approvals, newest first, optionally by status and requester (``limit=None``: all)."""
        stmt = select(approvals.c.approval_id)
        if status is not None:
            stmt = stmt.where(approvals.c.status == status)
        if requester_id is not None:
            stmt = stmt.where(approvals.c.requester_id == requester_id)
        async with self.engine.connect() as conn:
            stmt = stmt.order_by(approvals.c.created_ms.desc())
            if limit is not None:
                stmt = stmt.limit(limit)
            ids = (await conn.execute(stmt)).scalars().all()
        found = [await self.get(i) for i in ids]
        return [a for a in found if a is not None]

    async def _cas(self, approval_id: str, expected: str, values: dict[str, Any]) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(update(approvals).where(and_(
                approvals.c.approval_id == approval_id, approvals.c.status == expected)).values(**values))
        return result.rowcount == 1

    async def decide(self, approval_id: str, decider_id: str, decider_username: str, decision: str,
                     comment: str) -> str:
        """Record one person's decision and move the approval on when it is settled.

        Args:
            decision: ``approve`` or ``reject``.

        Returns:
            ``recorded`` (still pending), ``approved`` or ``rejected`` (this call settled it),
            ``duplicate`` (this person already decided), or ``not_pending`` (someone else
            settled it first, or it expired).
        """
        try:
            return await self._decide(approval_id, decider_id, decider_username, decision, comment)
        except _LostRace:
            return "not_pending"

    async def _decide(self, approval_id: str, decider_id: str, decider_username: str, decision: str,
                      comment: str) -> str:
        at = now_ms()
        async with self.engine.begin() as conn:
            current = (await conn.execute(select(approvals.c.status, approvals.c.expires_ms,
                                                 approvals.c.required_approvals)
                                          .where(approvals.c.approval_id == approval_id))).first()
            if current is None or current.status != PENDING:
                return "not_pending"
            if at >= current.expires_ms:
                await conn.execute(update(approvals).where(and_(approvals.c.approval_id == approval_id,
                                                                approvals.c.status == PENDING))
                                   .values(status=EXPIRED, finished_ms=at))
                return "not_pending"
            try:
                await conn.execute(insert(approval_decisions), {
                    "approval_id": approval_id, "decider_id": decider_id, "decider_username": decider_username,
                    "decision": decision, "comment": comment, "decided_ms": at})
            except IntegrityError:
                return "duplicate"
            if decision == "reject":
                target = REJECTED
            else:
                approvals_so_far = (await conn.execute(
                    select(func.count()).select_from(approval_decisions).where(and_(
                        approval_decisions.c.approval_id == approval_id,
                        approval_decisions.c.decision == "approve")))).scalar_one()
                if approvals_so_far < current.required_approvals:
                    return "recorded"
                target = APPROVED
            moved = await conn.execute(update(approvals).where(and_(
                approvals.c.approval_id == approval_id, approvals.c.status == PENDING))
                .values(status=target, finished_ms=at if target == REJECTED else None))
            if moved.rowcount != 1:
                raise _LostRace  # another decision settled it first; roll this one back
        return target

    async def pending_count(self, requester_id: str) -> int:
        """How many requests of ``requester_id`` wait for approval."""
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(approvals).where(and_(
                approvals.c.requester_id == requester_id, approvals.c.status == PENDING)))).scalar_one())

    async def withdraw(self, approval_id: str, detail: str) -> bool:
        """Take a pending request back (it can then never run); False when it was not pending."""
        return await self._cas(approval_id, PENDING, {"status": WITHDRAWN, "finished_ms": now_ms(),
                                                      "result_detail": detail})

    async def claim(self, approval_id: str) -> bool:
        """Take an ``approved`` request for execution (only one caller ever wins)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(update(approvals).where(and_(
                approvals.c.approval_id == approval_id, approvals.c.status == APPROVED))
                .values(status=EXECUTING, claimed_ms=now_ms(), attempts=approvals.c.attempts + 1))
        return result.rowcount == 1

    async def release(self, approval_id: str, detail: str) -> None:
        """Give a claimed request back (nothing reached the WMS); it will be tried again."""
        await self._cas(approval_id, EXECUTING, {"status": APPROVED, "claimed_ms": None, "result_detail": detail})

    async def finish(self, approval_id: str, status: str, result_status: int | None, body: bytes | None,
                     content_type: str | None, detail: str = "") -> None:
        """Store the WMS answer of a claimed request (``executed``) or that its outcome is unknown."""
        await self._cas(approval_id, EXECUTING, {
            "status": status, "finished_ms": now_ms(), "result_status": result_status,
            "result_body": (body or b"")[:MAX_STORED_RESULT_BYTES] if body is not None else None,
            "result_content_type": content_type, "result_detail": detail or None})

    async def expire_due(self) -> builtins.list[str]:
        """Mark pending approvals past their expiry as ``expired``; returns their ids."""
        at = now_ms()
        async with self.engine.begin() as conn:
            ids = (await conn.execute(select(approvals.c.approval_id).where(and_(
                approvals.c.status == PENDING, approvals.c.expires_ms <= at)))).scalars().all()
            for approval_id in ids:
                await conn.execute(update(approvals).where(and_(
                    approvals.c.approval_id == approval_id, approvals.c.status == PENDING))
                    .values(status=EXPIRED, finished_ms=at))
        return list(ids)

    async def abandon_stale_claims(self, older_than_ms: int) -> builtins.list[str]:
        """Requests claimed longer ago than ``older_than_ms`` (a process died mid-flight) become
        ``outcome_unknown``: they may have reached the WMS, so they are never replayed. A stale
        export download goes back to ``approved`` instead (a download is marked done before its
        file is sent, so one still claimed handed nothing out). Returns the abandoned ids."""
        cutoff = now_ms() - older_than_ms
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(approvals.c.approval_id, approvals.c.export).where(and_(
                approvals.c.status == EXECUTING, approvals.c.claimed_ms <= cutoff)))).all()
            abandoned = []
            for approval_id, export in rows:
                values: dict[str, Any] = (
                    {"status": APPROVED, "claimed_ms": None, "result_detail": "the download was interrupted"}
                    if export else
                    {"status": OUTCOME_UNKNOWN, "finished_ms": now_ms(),
                     "result_detail": "the process executing it stopped; check the WMS before retrying"})
                await conn.execute(update(approvals).where(and_(
                    approvals.c.approval_id == approval_id, approvals.c.status == EXECUTING)).values(**values))
                if not export:
                    abandoned.append(approval_id)
        return abandoned

    async def expire_downloads(self, approved: builtins.list[Approval] | None = None) -> builtins.list[str]:
        """Approved exports whose download period (:meth:`Approval.download_until`) has passed
        become ``expired``; returns their ids.

        Args:
            approved: the approved approvals, when the caller has just listed them (the sweep
                reads them once for this and for running approved requests); None lists them.
        """
        at, lapsed = now_ms(), []
        for approval in approved if approved is not None else await self.list(status=APPROVED, limit=None):
            until = approval.download_until()
            if until is not None and until <= at and await self._cas(
                    approval.approval_id, APPROVED, {"status": EXPIRED, "finished_ms": at,
                                                     "result_detail": "not downloaded in time"}):
                lapsed.append(approval.approval_id)
        return lapsed
