"""The console's access review pages.

``GET  /_gateway/ui/reviews``                               campaigns and a form to start one (``iam:view``)
``POST /_gateway/ui/reviews``                               start one (``iam:review``)
``GET  /_gateway/ui/reviews/{id}``                          its items: who holds what, last used (``iam:view``)
``POST /_gateway/ui/reviews/{id}/items/{n}/keep|revoke``    decide one item (``iam:review``)
``POST /_gateway/ui/reviews/{id}/close``                    close now, after a confirmation (``iam:review``)
``GET  /_gateway/ui/reviews/{id}/result``                   download the signed result (``iam:view``)

Decided by the policy and audited like every console page; the work is done by the
review API's functions (:mod:`proxy.management.reviews`).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.routes import Route
from authorizer.messages import TEXTS
from proxy.console_pages import console_page
from proxy.gateway import Gateway
from proxy.lifecycle import context_of, sub_path
from proxy.management import reviews as reviews_api
from proxy.management.console import UI, Body, Form, console_view, identity_provider_origin
from proxy.pipeline import decide_or_refuse
from proxy.responses import refusal

REVIEWS = f"{UI}/reviews"
_ID = re.compile(r"^[0-9a-f]{32}$")


async def _decide(request: web.Request, route: Route, review_id: str | None, body: dict[str, Any] | None = None
                  ) -> None:
    """Classify the record as ``route`` and ask the policy (reviews are never held for approval)."""
    ctx = context_of(request)
    ctx.classify(route)
    if review_id is not None and not _ID.match(review_id):
        raise refusal("review_not_found")
    resource = Resource(kind="list") if review_id is None else Resource(kind="item", id=review_id)
    decision, _ = await decide_or_refuse(ctx, route, resource, body)
    if decision.obligations.approval is not None:
        raise refusal("reviews_approval_not_supported")


def _back(review_id: str | None, done: str) -> web.Response:
    where = REVIEWS if review_id is None else f"{REVIEWS}/{review_id}"
    return web.Response(status=303, headers={"Location": f"{where}?done={done}", "Cache-Control": "no-store"})


@console_view
async def reviews_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """The campaigns, newest first, and the form that starts one."""
    await _decide(request, reviews_api.LIST, None)
    campaigns = await reviews_api.service(gw).store.campaigns()
    return console_page(request, TEXTS["title_reviews"], "reviews",
                        {"campaigns": campaigns, "unreviewed": gw.config.reviews_unreviewed, "csrf": csrf},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


@console_view
async def start_review(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """Start a campaign from the form (warehouse or role, window, deadline, what happens to the unreviewed)."""
    target = form.get("target", "warehouse")
    body: dict[str, Any] = {"title": form.get("title", ""), target if target in ("warehouse", "role") else "warehouse":
                            form.get("value", "").strip() or None}
    for name in ("days", "deadline_hours"):
        if form.get(name, "").strip().isdigit():
            body[name] = int(form[name])
    if form.get("unreviewed"):
        body["unreviewed"] = form["unreviewed"]
    await _decide(request, reviews_api.START, None, body)
    now_ms = int(time.time() * 1000)
    settings = (gw.config.reviews_unreviewed, gw.config.review_min_deadline_hours)
    started = await reviews_api.start(gw, reviews_api.parse_campaign(body, principal.username, now_ms, settings),
                                      now_ms)
    record.detail["review"] = started
    return _back(started["review_id"], "started")


@console_view
async def review_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                      form: Form, csrf: str) -> web.Response:
    """One campaign: each item with its last use, the reviewer's decision and (once closed) the outcome."""
    review_id = request.match_info["review_id"]
    await _decide(request, reviews_api.ITEM, review_id)
    campaign = await reviews_api.campaign(gw, review_id)
    done = request.query.get("done", "")
    return console_page(request, TEXTS["title_review"], "review",
                        {"review": campaign, "done": TEXTS.get(f"review_done_{done}"), "csrf": csrf},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


def _verdict(decision: str) -> Body:
    async def decide(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
        review_id, item_id = request.match_info["review_id"], request.match_info["item_id"]
        body = {"decision": decision, **({"note": form["note"]} if form.get("note", "").strip() else {})}
        await _decide(request, reviews_api.DECIDE, review_id, body)
        await reviews_api.decide(gw, review_id, item_id, reviews_api.parse_decision(body), principal.username)
        record.detail["review"] = {"review_id": review_id, "item_id": item_id, "decision": decision}
        return _back(review_id, "decided")

    decide.__doc__ = f"Decide {decision} on one item of a campaign."
    return decide


@console_view
async def close_review(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """Close a campaign now, once the confirmation box is ticked: revoke, sign the result."""
    review_id = request.match_info["review_id"]
    if form.get("confirm") != "yes":
        raise refusal("confirmation_missing")
    await _decide(request, reviews_api.CLOSE, review_id)
    done = await reviews_api.close(gw, review_id, principal.username)
    record.detail["review"] = reviews_api.closing_facts(done["result"])
    return _back(review_id, "closed")


@console_view
async def review_result(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                        form: Form, csrf: str) -> web.Response:
    """The signed result as a JSON download (``wmsgate access review verify`` checks it)."""
    review_id = request.match_info["review_id"]
    await _decide(request, reviews_api.RESULT, review_id)
    doc = await reviews_api.result(gw, review_id)
    return web.Response(body=json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8"),
                        content_type="application/json", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="access-review-{review_id}.json"',
                                 "Cache-Control": "no-store", "X-Decision-Id": record.decision_id})


def add_routes(app: web.Application) -> None:
    """Register the review pages and forms (with the console: they need browser sessions)."""
    app.router.add_get(sub_path(REVIEWS), reviews_page)
    app.router.add_post(sub_path(REVIEWS), start_review)
    app.router.add_get(sub_path(REVIEWS + "/{review_id}"), review_page)
    app.router.add_get(sub_path(REVIEWS + "/{review_id}/result"), review_result)
    app.router.add_post(sub_path(REVIEWS + "/{review_id}/close"), close_review)
    for decision in ("keep", "revoke"):
        app.router.add_post(sub_path(REVIEWS + "/{review_id}/items/{item_id}/" + decision),
                            console_view(_verdict(decision)))
