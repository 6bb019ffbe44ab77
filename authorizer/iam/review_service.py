"""Running access review campaigns: start one from people's access and usage, close it by
carrying out the revocations, and sign the result (:mod:`authorizer.iam.reviews` stores them).

The signed result is a JSON document (sorted keys, UTF-8) with the campaign, every item's
decision (who decided, when, or ``unreviewed``), the effective decision and what closing did;
its Ed25519 signature uses the audit trail's key, so ``wmsgate access review verify`` checks
an exported result with the same public key as ``wmsgate audit verify``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from authorizer.audit.chain import key_id, message_signature_valid, sign_message
from authorizer.iam.access import AccessError, AccessService
from authorizer.iam.reviews import CLOSED, CLOSING, KEEP, REVOKE, Campaign, Item, ReviewConflict, ReviewStore

log = logging.getLogger(__name__)
#: Who closes a campaign at its deadline (audit records, the result's ``closed_by``).
DEADLINE_ACTOR = "wmsgate-review-deadline"
#: Who retries revocations that failed at a close.
RETRY_ACTOR = "wmsgate-review-retry"


def in_campaign(person: Mapping[str, Any], campaign: Campaign) -> bool:
    """Whether ``person`` (:func:`authorizer.iam.usage.person_usage` shape plus ``grants``) is reviewed:
    their warehouse scope (or a grant's) covers the campaign's warehouse, or they hold its role."""
    if campaign.role is not None:
        return any(r["role"] == campaign.role for r in person["roles"]) or any(
            g["role"] == campaign.role for g in person["grants"])
    values = {s["value"] for s in person["scope"] if s["dimension"] == "warehouse"}
    grant_values = {v for g in person["grants"] for v in (g.get("scope") or {}).get("warehouse", [])}
    return bool({campaign.warehouse, "*"} & (values | grant_values))


def campaign_items(people: Iterable[Mapping[str, Any]], campaign: Campaign) -> list[Item]:
    """What reviewers decide on.

    A warehouse campaign asks one question per person: may they keep this warehouse? Its
    items are the person's ``warehouse=<W>`` (or ``warehouse=*``) scope value and the
    temporary grants that reach W; their roles and other scope values are not its business
    (they reach other warehouses too). A role campaign's items are that role, for people
    holding it directly, and the temporary grants of it (a role held only through a grant
    is reviewed as the grant, so keeping one and revoking the other cannot contradict).
    """
    items: list[Item] = []
    for person in people:
        if not person.get("enabled", True) or not in_campaign(person, campaign):
            continue
        who = (str(person["username"]), str(person["user_id"]))
        granted_roles = {g["role"] for g in person["grants"]}
        if campaign.role is not None:
            items.extend(Item(*who, "role", role["role"], role["last_used_ms"], {"permissions": role["permissions"]})
                         for role in person["roles"] if role["role"] == campaign.role
                         and role["role"] not in granted_roles)
        else:
            items.extend(Item(*who, "scope", f"warehouse={s['value']}", s["last_used_ms"], {})
                         for s in person["scope"]
                         if s["dimension"] == "warehouse" and s["value"] in (campaign.warehouse, "*"))
        for grant in person["grants"]:
            reaches = set((grant.get("scope") or {}).get("warehouse", [])) & {campaign.warehouse, "*"}
            if grant["role"] == campaign.role or (campaign.role is None and reaches):
                items.append(Item(*who, "grant", str(grant["grant_id"]), grant["last_used_ms"],
                                  {"role": grant["role"], "valid_from_s": grant["valid_from_s"],
                                   "valid_until_s": grant["valid_until_s"]}))
    return items


def holds_exactly(people: Iterable[Mapping[str, Any]], warehouse: str) -> bool:
    """Whether anyone holds ``warehouse`` by name (not only through ``*``): a campaign over a
    warehouse nobody names is most likely a typo, and would review only the ``*`` holders."""
    return any(s["dimension"] == "warehouse" and s["value"] == warehouse for p in people for s in p["scope"]) or any(
        warehouse in (g.get("scope") or {}).get("warehouse", []) for p in people for g in p["grants"])


def effective(item: Mapping[str, Any], unreviewed: str) -> str:
    """The decision closing applies: the reviewer's, else the campaign's ``unreviewed`` choice."""
    return str(item["decision"] or unreviewed)


@dataclass
class _Plan:
    """One person's revocations: roles and scope values (one narrowing change) and grants."""

    roles: set[str] = field(default_factory=set)
    scope: dict[str, set[str]] = field(default_factory=dict)
    grants: list[tuple[int, str]] = field(default_factory=list)
    items: list[int] = field(default_factory=list)


def _plans(items: Iterable[Mapping[str, Any]]) -> dict[str, _Plan]:
    """The revocations of ``items`` (campaign item rows), per person."""
    plans: dict[str, _Plan] = {}
    for item in items:
        plan = plans.setdefault(item["username"], _Plan())
        plan.items.append(item["item_id"])
        if item["kind"] == "role":
            plan.roles.add(item["name"])
        elif item["kind"] == "scope":
            dim, _, value = item["name"].partition("=")
            plan.scope.setdefault(dim, set()).add(value)
        else:
            plan.grants.append((item["item_id"], item["name"]))
    return plans


def result_bytes(result: Mapping[str, Any]) -> bytes:
    """What a result's signature covers: the document as sorted, compact JSON (UTF-8)."""
    return json.dumps(result, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def result_signature_valid(public_key: Any, document: Mapping[str, Any]) -> bool:
    """Whether an exported result (``{"result", "signature", "key_id"}``) is signed by ``public_key``."""
    result, signature = document.get("result"), document.get("signature")
    if not isinstance(result, dict) or not isinstance(signature, str):
        return False
    return message_signature_valid(public_key, result_bytes(result), signature)


class ReviewService:
    """Closes campaigns: revokes what was decided (or left) for revocation, then signs the result.

    Args:
        store: the campaigns.
        access: carries out revocations in Keycloak (tokens issued before are refused).
        signing_key: the audit trail's Ed25519 private key (results are signed with it).
    """

    def __init__(self, store: ReviewStore, access: AccessService, signing_key: Any) -> None:
        self.store = store
        self._access = access
        self._key = signing_key

    async def close(self, review_id: str, actor: str, now_ms: int, reclaim: bool = False) -> dict[str, Any] | None:
        """Close a campaign now: apply every effective revocation, record each item's outcome,
        sign and store the result.

        Args:
            reclaim: take over a campaign another process left ``closing`` (the sweeper); the
                result's ``closed_by`` stays whoever started the close and ``completed_by``
                names ``actor``.

        Returns:
            The signed result document, or None when another process closes (or closed) it.

        Raises:
            ReviewConflict: no such campaign.
        """
        claim = await (self.store.reclaim(review_id, actor, now_ms) if reclaim
                       else self.store.claim_close(review_id, actor, now_ms))
        if claim is None:
            if await self.store.campaign(review_id) is None:
                raise ReviewConflict(f"no campaign {review_id}")
            return None
        campaign = await self.store.campaign(review_id)
        assert campaign is not None
        outcomes = {i["item_id"]: "kept" for i in campaign["items"] if effective(i, campaign["unreviewed"]) == KEEP}
        plans = _plans(i for i in campaign["items"] if i["item_id"] not in outcomes)
        reason = f"access review {campaign['title']} ({review_id})"
        for username, plan in plans.items():
            if not await self.store.heartbeat(review_id, claim, int(time.time() * 1000)):
                log.warning("access review %s: another process took over its close", review_id)
                return None
            outcomes.update(await self._revoke(username, plan, reason, actor))
        for item_id, outcome in outcomes.items():
            await self.store.set_outcome(review_id, item_id, outcome, claim)
        started_by = str(campaign["closed_by"] or actor)  # a close taken over stays its starter's
        result = self._result(campaign, outcomes, started_by, now_ms)
        if started_by != actor:
            result["completed_by"] = actor
        signature = sign_message(self._key, result_bytes(result))
        if not await self.store.finish(review_id, result, signature, key_id(self._key.public_key()), claim):
            return None
        return {"result": result, "signature": signature, "key_id": key_id(self._key.public_key())}

    async def retry_failed(self, review_id: str, actor: str, now_ms: int) -> dict[str, Any] | None:
        """Try again the revocations of a closed campaign that failed (Keycloak was down); what now
        succeeds gets its new outcome and the result is signed again.

        Returns:
            ``{"result", "signature", "key_id", "retried": {item_id: outcome}}`` when an outcome
            changed, else None (still failing, or nothing to retry).
        """
        campaign = await self.store.campaign(review_id)
        if campaign is None or campaign["status"] != CLOSED or not campaign.get("result"):
            return None
        failed = [i for i in campaign["items"] if (i["outcome"] or "").startswith("failed")]
        reason = f"access review {campaign['title']} ({review_id}), retried"
        retried: dict[int, str] = {}
        for username, plan in _plans(failed).items():
            for item_id, outcome in (await self._revoke(username, plan, reason, actor)).items():
                if not outcome.startswith("failed") and await self.store.set_retried_outcome(review_id, item_id,
                                                                                             outcome):
                    retried[item_id] = outcome
        if not retried:
            return None
        result = json.loads(campaign["result"])
        for item in result["items"]:
            if item["item_id"] in retried:
                item["outcome"] = retried[item["item_id"]]
        result["revoked"] = sum(1 for i in result["items"] if i["outcome"] == "revoked")
        result["failed"] = sum(1 for i in result["items"] if i["outcome"].startswith("failed"))
        result["retried_ms"] = now_ms
        signature = sign_message(self._key, result_bytes(result))
        await self.store.replace_result(review_id, result, signature, key_id(self._key.public_key()))
        return {"result": result, "signature": signature, "key_id": key_id(self._key.public_key()),
                "retried": retried}

    async def _revoke(self, username: str, plan: _Plan, reason: str, actor: str) -> dict[int, str]:
        """Carry out one person's revocations; each item's outcome (``revoked`` or ``failed: ...``)."""
        outcomes: dict[int, str] = {}
        grant_items = {item_id for item_id, _ in plan.grants}
        if plan.roles or plan.scope:
            try:
                await self._access.narrow(username, sorted(plan.roles),
                                          {d: sorted(v) for d, v in plan.scope.items()}, reason, actor)
                outcome = "revoked"
            except AccessError as exc:
                log.error("access review: revoking %s %s of %s failed: %s", plan.roles, plan.scope, username, exc)
                outcome = f"failed: {exc.code}"
            outcomes.update({i: outcome for i in plan.items if i not in grant_items})
        for item_id, grant_id in plan.grants:
            try:
                await self._access.revoke_grant(username, grant_id, reason, actor)
                outcomes[item_id] = "revoked"
            except AccessError as exc:
                outcomes[item_id] = "already ended" if exc.key == "grant_not_found" else f"failed: {exc.code}"
                if exc.key != "grant_not_found":
                    log.error("access review: ending grant %s of %s failed: %s", grant_id, username, exc)
        return outcomes

    @staticmethod
    def _result(campaign: Mapping[str, Any], outcomes: Mapping[int, str], actor: str, now_ms: int) -> dict[str, Any]:
        keys = ("review_id", "title", "warehouse", "role", "window_days", "deadline_ms", "unreviewed", "created_by",
                "created_ms")
        items = [{"item_id": i["item_id"], "username": i["username"], "kind": i["kind"], "name": i["name"],
                  "last_used_ms": i["last_used_ms"], "decision": i["decision"] or "unreviewed",
                  "decided_by": i["decided_by"], "decided_ms": i["decided_ms"], "note": i["note"],
                  "effective": effective(i, campaign["unreviewed"]), "outcome": outcomes.get(i["item_id"], "")}
                 for i in campaign["items"]]
        return {**{k: campaign[k] for k in keys}, "status": CLOSED, "closed_by": actor, "closed_ms": now_ms,
                "items": items, "revoked": sum(1 for i in items if i["outcome"] == "revoked"),
                "failed": sum(1 for i in items if i["outcome"].startswith("failed"))}


async def run_review_sweeper(service: ReviewService, interval_seconds: float,
                             closed: Callable[[dict[str, Any]], Awaitable[None]],
                             retried: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
    """Every ``interval_seconds`` until cancelled: close campaigns past their deadline (and take
    over ones a dead process left closing), then retry revocations that failed at a close.
    ``closed`` and ``retried`` get each signed result (the proxy commits audit records of them)."""
    while True:
        try:
            now_ms = int(time.time() * 1000)
            for review_id, status in await service.store.due(now_ms):
                done = await service.close(review_id, DEADLINE_ACTOR, now_ms, reclaim=status == CLOSING)
                if done is not None:
                    await closed(done)
            for review_id in await service.store.with_failures():
                again = await service.retry_failed(review_id, RETRY_ACTOR, now_ms)
                if again is not None and retried is not None:
                    await retried(again)
        except Exception:
            log.exception("access review sweep failed; will retry")
        await asyncio.sleep(interval_seconds)


__all__ = ["DEADLINE_ACTOR", "REVOKE", "ReviewService", "campaign_items", "effective", "holds_exactly", "in_campaign",
           "result_signature_valid", "run_review_sweeper"]
