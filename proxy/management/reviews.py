"""Access review campaigns through the gateway (JSON API; the console's pages use the same functions).

``GET  /_gateway/access/reviews``                          campaigns, newest first (``iam:view``)
``POST /_gateway/access/reviews``                          start one: ``{"title", "warehouse"|"role",
                                                           "days"?, "deadline_hours"?, "unreviewed"?}`` (``iam:review``)
``GET  /_gateway/access/reviews/{id}``                     a campaign with its items (``iam:view``)
``POST /_gateway/access/reviews/{id}/items/{item}``        ``{"decision": "keep"|"revoke", "note"?}`` (``iam:review``)
``POST /_gateway/access/reviews/{id}/close``               close now: revoke, sign the result (``iam:review``)
``GET  /_gateway/access/reviews/{id}/result``              the signed result of a closed campaign (``iam:view``)

Reviewing does not widen anyone's access (a review only keeps or takes away), so it is not
held for approval; revocations are carried out when the campaign closes, by a reviewer
or by the sweeper at the deadline (what nobody decided on gets the campaign's
``unreviewed`` choice: revoke unless it says keep).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from authorizer.audit import AuditRecord
from authorizer.authz.routes import Route
from authorizer.iam.review_service import ReviewService, campaign_items, holds_exactly
from authorizer.iam.reviews import KEEP, REVOKE, UNREVIEWED_CHOICES, Campaign, ReviewConflict
from authorizer.messages import TEXTS
from proxy.gateway import Gateway
from proxy.management.access_usage import people_usage
from proxy.responses import Refusal, refusal

BASE = "/_gateway/access/reviews"
_SEG = ("_gateway", "access", "reviews")
LIST = Route("GET", BASE, _SEG, "iam", "view", kind="list")
START = Route("POST", BASE, _SEG, "iam", "review", needs_body=True)
ITEM = Route("GET", f"{BASE}/{{review_id}}", (*_SEG, "{review_id}"), "iam", "view")
DECIDE = Route("POST", f"{BASE}/{{review_id}}/items/{{item_id}}", (*_SEG, "{review_id}", "items", "{item_id}"),
               "iam", "review", needs_body=True)
CLOSE = Route("POST", f"{BASE}/{{review_id}}/close", (*_SEG, "{review_id}", "close"), "iam", "review")
RESULT = Route("GET", f"{BASE}/{{review_id}}/result", (*_SEG, "{review_id}", "result"), "iam", "view")
ROUTES = (LIST, START, ITEM, DECIDE, CLOSE, RESULT)
MAX_DAYS = 400
MAX_DEADLINE_HOURS = 24 * 90
MAX_NOTE = 500
_ITEM_ID = re.compile(r"[0-9]{1,9}")


def _bad(problem: str, **values: object) -> Refusal:
    text = TEXTS[problem].format(**values)
    return refusal("bad_review", zh=text.zh, en=text.en)


def service(gw: Gateway) -> ReviewService:
    """The review service, or 503 when access management or the audit signing key is not configured."""
    if gw.reviews is None:
        raise refusal("access_reviews_unavailable")
    return gw.reviews


def parse_campaign(body: Mapping[str, Any], actor: str, now_ms: int, settings: tuple[str, float] = (REVOKE, 24.0)
                   ) -> Campaign:
    """A new campaign from a request body.

    Args:
        settings: the config's ``access_reviews.unreviewed`` (the default of ``unreviewed``)
            and ``min_deadline_hours`` (a campaign gives reviewers at least this long).

    Raises:
        Refusal: 400 ``bad_review`` naming the field: a missing or long title, not exactly one
            of warehouse and role, days outside 1-400, deadline_hours below the minimum or
            above 2160, an unknown ``unreviewed``.
    """
    unreviewed_default, min_hours = settings
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise _bad("review_title")
    warehouse, role = body.get("warehouse"), body.get("role")
    if (warehouse is None) == (role is None) or not all(
            v is None or (isinstance(v, str) and 0 < len(v.strip()) <= 64) for v in (warehouse, role)):
        raise _bad("review_target")
    days, hours = body.get("days", 90), body.get("deadline_hours", 24 * 14)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise _bad("review_days", high=MAX_DAYS)
    if not isinstance(hours, int | float) or isinstance(hours, bool) or not min_hours <= hours <= MAX_DEADLINE_HOURS:
        raise _bad("review_deadline", low=min_hours, high=MAX_DEADLINE_HOURS)
    unreviewed = body.get("unreviewed", unreviewed_default)
    if unreviewed not in UNREVIEWED_CHOICES:
        raise _bad("review_unreviewed")
    return Campaign(title.strip(), warehouse.strip() if warehouse else None, role.strip() if role else None, days,
                    now_ms + int(hours * 3_600_000), str(unreviewed), actor)


async def start(gw: Gateway, campaign: Campaign, now_ms: int) -> dict[str, Any]:
    """Collect the items (people's access and last use) and store the campaign.

    Returns:
        ``{"review_id", "items"}`` (how many items).

    Raises:
        Refusal: 409 ``review_nothing_to_review`` when nobody is in it; 502/503 as
            :func:`~proxy.management.access_usage.people_usage`.
    """
    reviews = service(gw)
    assert gw.access is not None
    people = await people_usage(gw, gw.access, campaign.window_days, None)
    if campaign.warehouse is not None and not holds_exactly(people, campaign.warehouse):
        raise refusal("review_unknown_warehouse", warehouse=campaign.warehouse)
    items = campaign_items(people, campaign)
    if not items:
        raise refusal("review_nothing_to_review")
    review_id = await reviews.store.create(campaign, items, now_ms)
    return {"review_id": review_id, "items": len(items)}


async def campaign(gw: Gateway, review_id: str) -> dict[str, Any]:
    """A campaign with its items (no result document), or 404 ``review_not_found``."""
    found = await service(gw).store.campaign(review_id)
    if found is None:
        raise refusal("review_not_found")
    found.pop("result", None)
    return found


def parse_decision(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(decision, note)`` of a reviewer's answer.

    Raises:
        Refusal: 400 ``bad_review`` when the decision is not keep/revoke or the note is too long.
    """
    decision, note = body.get("decision"), body.get("note")
    if decision not in (KEEP, REVOKE):
        raise _bad("review_decision")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise _bad("review_note", high=MAX_NOTE)
    return str(decision), note.strip() if isinstance(note, str) and note.strip() else None


async def decide(gw: Gateway, review_id: str, item_id: str, answer: tuple[str, str | None], actor: str) -> None:
    """Record a reviewer's keep/revoke on one item.

    Raises:
        Refusal: 404 for an unknown campaign or item, 409 ``review_closed`` after the close.
    """
    found = await campaign(gw, review_id)
    item = next((i for i in found["items"] if _ITEM_ID.fullmatch(item_id) and i["item_id"] == int(item_id)), None)
    if item is None:
        raise refusal("review_item_not_found")
    if item["username"] == actor:
        raise refusal("review_own_access")
    try:
        await service(gw).store.decide(review_id, int(item_id), answer[0], actor, answer[1], int(time.time() * 1000))
    except ReviewConflict:
        raise refusal("review_closed") from None


async def close(gw: Gateway, review_id: str, actor: str) -> dict[str, Any]:
    """Close a campaign now (revocations, signed result).

    Raises:
        Refusal: 404 unknown campaign; 409 ``review_closed`` when it is already closed or closing.
    """
    found = await campaign(gw, review_id)
    undecided = sum(1 for i in found["items"] if i["decision"] is None)
    if found["status"] == "open" and found["unreviewed"] == REVOKE and undecided:
        raise refusal("review_undecided_items", count=undecided)
    try:
        done = await service(gw).close(review_id, actor, int(time.time() * 1000))
    except ReviewConflict:
        raise refusal("review_not_found") from None
    if done is None:
        raise refusal("review_closed")
    return done


async def result(gw: Gateway, review_id: str) -> dict[str, Any]:
    """The signed result of a closed campaign: ``{"result", "signature", "key_id"}``.

    Raises:
        Refusal: 404 unknown campaign; 409 ``review_not_closed`` before it is closed.
    """
    found = await service(gw).store.campaign(review_id)
    if found is None:
        raise refusal("review_not_found")
    if not found.get("result"):
        raise refusal("review_not_closed")
    return {"result": json.loads(found["result"]), "signature": found["signature"], "key_id": found["key_id"]}


def closing_facts(result: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit record keeps of a close: every revocation and every failed one (``user:kind:name``)."""
    def named(outcome: str) -> list[str]:
        return [f"{i['username']}:{i['kind']}:{i['name']}" for i in result["items"] if i["outcome"].startswith(outcome)]

    return {"review_id": result["review_id"], "closed": True, "revoked": named("revoked"), "failed": named("failed")}


def closed_record(done: Mapping[str, Any]) -> AuditRecord:
    """The audit record of a campaign the sweeper closed: at its deadline, or a close someone
    started whose process stopped midway (the record names them; ``completed_by`` the sweeper)."""
    result = done["result"]
    facts = closing_facts(result)
    key = "review_close_completed" if result.get("completed_by") else "review_closed_at_deadline"
    text = TEXTS[key].format(title=result["title"], revoked=len(facts["revoked"]), failed=len(facts["failed"]),
                             by=result["closed_by"])
    if result.get("completed_by"):
        facts = {**facts, "completed_by": result["completed_by"]}
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(result["closed_ms"]), decision="allow",
        reason_code="access_review_closed", http_status=0, method="", path="", username=str(result["closed_by"]),
        module="iam", verb="review", resource_id=str(result["review_id"]), reason_zh=text.zh, reason_en=text.en,
        detail={"review": {**facts, "signature": done["signature"]}})


def retried_record(done: Mapping[str, Any]) -> AuditRecord:
    """The audit record of revocations that failed at a campaign's close and succeeded when retried."""
    result, retried = done["result"], done["retried"]
    by_id = {i["item_id"]: i for i in result["items"]}
    revoked = [f"{by_id[n]['username']}:{by_id[n]['kind']}:{by_id[n]['name']}" for n in sorted(retried)]
    text = TEXTS["review_retried"].format(title=result["title"], revoked=len(revoked))
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(result["retried_ms"]), decision="allow",
        reason_code="access_review_retried", http_status=0, method="", path="", username="wmsgate-review-retry",
        module="iam", verb="review", resource_id=str(result["review_id"]), reason_zh=text.zh, reason_en=text.en,
        detail={"review": {"review_id": result["review_id"], "revoked": revoked, "failed": result["failed"],
                           "signature": done["signature"]}})


async def respond(gw: Gateway, route: Route, match: Mapping[str, str], body: Mapping[str, Any] | None,
                  actor: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Carry out an authorized review call.

    Returns:
        The answer document and what the audit record's detail gets.

    Raises:
        Refusal: as the functions above.
    """
    review_id = match.get("review_id", "")
    now_ms = int(time.time() * 1000)
    if route is LIST:
        return {"reviews": await service(gw).store.campaigns()}, {}
    if route is START:
        new = parse_campaign(body or {}, actor, now_ms,
                             (gw.config.reviews_unreviewed, gw.config.review_min_deadline_hours))
        started = await start(gw, new, now_ms)
        return started, {"review": {**started, "warehouse": new.warehouse, "role": new.role}}
    if route is ITEM:
        return await campaign(gw, review_id), {}
    if route is DECIDE:
        answer = parse_decision(body or {})
        await decide(gw, review_id, match.get("item_id", ""), answer, actor)
        return {"review_id": review_id, "item_id": int(match["item_id"]), "decision": answer[0]}, {
            "review": {"review_id": review_id, "item_id": match["item_id"], "decision": answer[0]}}
    if route is CLOSE:
        done = await close(gw, review_id, actor)
        return done, {"review": closing_facts(done["result"])}
    return await result(gw, review_id), {}
