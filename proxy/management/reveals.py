"""``POST /_gateway/reveals``: show one masked field of one record in plaintext for a few
minutes (``reveals.minutes``, 10 by default), with a reason, audited.

Body: ``{"path": "/api/orders/SO2026...", "field": "customer_phone", "reason": "..."}``.
The path is a mapped single-record ``GET`` route. The person must be allowed to view the
record and to ``reveal`` on its module (the policy decides both: ``orders:view`` and
``orders:reveal``), and the field must be one the view masks for them. The audit record of
the reveal (module, verb ``reveal``, the record's id and scope, field, reason, until) is what
the alerting service counts: more than ``field_reveals.threshold`` in an hour alerts. See
:mod:`authorizer.enforce.reveals` for how answers then show the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from authorizer.enforce.reveals import Reveal, RevealAsk, place_of
from proxy.hygiene import HygieneError, check_target
from proxy.lifecycle import API, RequestContext, endpoint
from proxy.pipeline import (
    authenticated,
    choose_request_tenant,
    decide_or_refuse,
    read_body,
    record_place,
    resolve_resource,
)
from proxy.responses import caught, refusal

PATH = "/_gateway/reveals"
REASON_LIMIT = 500


def reveal_text(values: dict[str, Any], name: str, limit: int) -> str:
    """One of a reveal's texts (``path``, ``field``, ``reason``): a non-empty string of at most
    ``limit`` characters, stripped.

    Raises:
        Refusal: 400 ``text_field_invalid`` (code ``bad_request_body``) otherwise.
    """
    value = values.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise refusal("text_field_invalid", name=name)
    return value.strip()


async def make_reveal(ctx: RequestContext, path: str, field: str, reason: str) -> Reveal:
    """Decide and store a reveal of ``field`` of the record at ``path`` for ``ctx``'s person; the
    request's audit record becomes the reveal's (module, verb ``reveal``, the record's scope).

    Raises:
        Refusal: 400 ``reveal_not_a_record`` (or the hygiene refusal of a bad path); the
            policy's refusal of the view or of the reveal (403/404, 401 step-up); 409
            ``field_not_masked``; 403 ``reveal_approval_not_supported``; 503 when the PDP or
            the store is unavailable.
    """
    gw, record, principal = ctx.gw, ctx.record, ctx.principal
    assert principal is not None
    if gw.reveals is None:
        raise refusal("audit_store_unavailable")
    try:
        target = check_target("GET", path)
    except HygieneError as exc:
        raise caught(exc) from None
    match = gw.routes.match("GET", target.segments)
    if match is None or match.route.kind != "item":
        raise refusal("reveal_not_a_record", path=path[:200])
    tenant = choose_request_tenant(gw, match, target, None, principal, record)
    resource = await resolve_resource(gw, match, target, None, tenant)
    record_place(record, resource)
    view, _ = await decide_or_refuse(ctx, match.route, resource)  # the record as they would read it
    if field not in view.obligations.mask:
        raise refusal("field_not_masked", field=field[:100])
    decision, _ = await decide_or_refuse(ctx, dataclasses.replace(match.route, verb="reveal"), resource)
    if decision.obligations.approval is not None:
        raise refusal("reveal_approval_not_supported")
    try:
        reveal = await gw.reveals.store.create(RevealAsk(
            principal.user_id, principal.username, match.route.module, resource.id or "", field, reason,
            record.decision_id, place_of(resource.attributes)), gw.config.reveal_minutes * 60)
    except SQLAlchemyError:
        raise refusal("audit_store_unavailable") from None
    gw.reveals.note(reveal)
    record.detail["reveal"] = {"reveal_id": reveal.reveal_id, "field": field, "reason": reason,
                               "until_ms": reveal.until_ms, "path": target.raw_path}
    return reveal


@endpoint(API)
async def create_reveal(request: web.Request) -> web.StreamResponse:
    """Reveal one masked field of one record to the caller for ``reveals.minutes``.

    Answers 201 with the reveal (``reveal_id``, ``field``, ``until``...) and ``decision_id``.

    Raises:
        Refusal: 400 ``bad_request_body`` / ``text_field_invalid`` (path, field, reason: non-empty
            strings, the reason at most 500 characters), and those of :func:`make_reveal`.
    """
    ctx, _ = await authenticated(request)
    _, body = await read_body(request, ctx.gw)
    reveal = await make_reveal(ctx, reveal_text(body, "path", 2048), reveal_text(body, "field", 256),
                               reveal_text(body, "reason", REASON_LIMIT))
    decision_id = ctx.record.decision_id
    return web.json_response({**reveal.document(), "decision_id": decision_id}, status=201,
                             headers={"Cache-Control": "no-store", "X-Decision-Id": decision_id})
