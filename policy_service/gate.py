"""The publish gate: a policy edit goes live only when a replay of the recorded traffic says it
changes few enough decisions, or when an admin approves it.

Every good build is replayed (:mod:`authorizer.authz.replay`) against the bundle being
served, over the audit trail's requests of the last ``window_days``. A report with at most
``max_changes`` changed records, none undecidable, goes live at once; anything else is
held (the served bundle stays) until an admin approves that revision with
``POST /approve`` (a bearer token of the realm with ``role`` and a stepped-up ``acr``).
The approval is written to the audit trail. A newer edit replaces a held one and is
gated afresh.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from authorizer.audit import AuditQuery, AuditRecord, AuditStore
from authorizer.authn.identity import Principal
from authorizer.authz.replay import policy_from_bundle, replay

#: How much of a held edit's report ``/status`` shows (groups, widening first).
SHOWN_GROUPS = 20


@dataclass(frozen=True)
class GateSettings:
    """How edits are gated.

    Attributes:
        audit_url: the audit store (SQLAlchemy URL) whose recorded inputs are replayed.
        window_days: how far back the replay looks, in days.
        max_changes: the most changed records an edit may cause and still go live unapproved.
        approver_role: the realm role an approver needs (``sysadmin``).
        approver_acr: the ``acr`` an approver's token must carry (RFC 9470 step-up, ``mfa``).
    """

    audit_url: str
    window_days: float = 7.0
    max_changes: int = 0
    approver_role: str = "sysadmin"
    approver_acr: str = "mfa"


def _replay_now(settings: GateSettings, baseline: bytes, draft: bytes) -> dict[str, Any]:
    """Replay in a thread of its own (its own event loop and store engine): the Wasm
    evaluations never hold up the service's bundle answers."""
    async def run() -> dict[str, Any]:
        store = AuditStore(settings.audit_url)
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=settings.window_days)
        try:
            report = await replay(store.iter_chain(AuditQuery(since=since)), policy_from_bundle(baseline),
                                  policy_from_bundle(draft))
        finally:
            await store.close()
        return report.as_dict()

    return asyncio.run(run())


async def gate_report(settings: GateSettings, baseline: bytes, draft: bytes) -> dict[str, Any]:
    """The replay report of ``draft`` against ``baseline`` (Wasm bundles) with ``passes``:
    at most ``max_changes`` changed records and none the bundles could not decide.

    Raises:
        BundleRejected, sqlalchemy.exc.SQLAlchemyError: the bundles or the store cannot be used
            (the caller holds the edit: a gate that cannot judge does not pass).
    """
    report = await asyncio.to_thread(_replay_now, settings, baseline, draft)
    report["passes"] = report["changed"] <= settings.max_changes and report["failed"] == 0
    report["max_changes"] = settings.max_changes
    report["groups"] = report["groups"][:SHOWN_GROUPS]
    return report


def may_approve(settings: GateSettings, principal: Principal) -> bool:
    """Whether ``principal`` may let a held edit go live: the approver role and a stepped-up token."""
    return settings.approver_role in principal.roles and principal.acr == settings.approver_acr


async def record_approval(settings: GateSettings, principal: Principal, revision: str,
                          report: dict[str, Any]) -> str:
    """Write the approval to the audit trail (committed before the edit goes live); returns its decision id.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store refused (the edit then stays held).
    """
    decision_id = uuid.uuid4().hex
    record = AuditRecord(
        decision_id=decision_id, ts_ms=int(time.time() * 1000), decision="allow",
        reason_code="policy_edit_approved", http_status=200, method="POST", path="/approve",
        user_id=principal.user_id, username=principal.username, roles=",".join(principal.roles),
        module="sysadmin", verb="approve", resource_id=revision, policy_revision=revision,
        detail={"policy_gate": {k: report.get(k) for k in ("baseline", "draft", "replayed", "changed", "widening",
                                                          "failed", "max_changes")}})
    store = AuditStore(settings.audit_url)
    try:
        await store.insert_many([record])
    finally:
        await store.close()
    return decision_id
