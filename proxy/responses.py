"""Every answer the gateway gives on its own: refusals (400/401/403/404/405/413/503...).

Their codes and messages are in one catalog (:mod:`authorizer.messages`); this module builds them so
they all share one shape:
``{"error", "reason_zh", "reason_en", "decision_id", "reasons"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from authorizer.authz.pdp import Reason, StepUp
from authorizer.messages import CATALOG, CatalogError


@dataclass
class Refusal(Exception):
    """The gateway refuses the request.

    Attributes:
        status: HTTP status.
        code: machine-readable error code.
        zh, en: the main reason in zh-CN and English.
        reasons: every reason (for policy denies), the main one first.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
        audit_reason: the reason recorded in the audit trail when it differs from
            what the client is told (a 404 that hides why).
        step_up: the RFC 9470 step-up asked for (``acr_values``, ``max_age``), if that is what is missing.
        subject: ``(user_id, username, roles)`` of a caller whose token was genuine but is refused
            (revoked): recorded in the audit trail, never shown to the client.
        reportable: a refusal of the access policy (not of hygiene, authentication or an
            outage): on a route in report mode it is recorded as ``would_deny`` and the
            request forwarded (:mod:`authorizer.enforce.enforcement`).
        decision: the PDP's decision behind a policy refusal (report mode still applies
            its masks to what it forwards), or None.
    """

    status: int
    code: str
    zh: str
    en: str
    reasons: tuple[Reason, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    audit_reason: Reason | None = None
    step_up: StepUp | None = None
    subject: tuple[str, str, str] | None = None
    reportable: bool = False
    decision: Any = None

    def __post_init__(self) -> None:
        Exception.__init__(self, self.en)


def refusal(code: str, /, *, headers: dict[str, str] | None = None, reportable: bool = False,
            subject: tuple[str, str, str] | None = None, decision: Any = None, **params: Any) -> Refusal:
    """The catalog's refusal ``code``, its messages filled in with ``params``.

    Args:
        code: a key of :data:`authorizer.messages.CATALOG`.
        headers: extra response headers (``Retry-After`` is added from the catalog).
        reportable: a refusal of the access policy (report mode records it as would_deny).
        subject, decision: see :class:`Refusal`.
        params: the values the messages name (``names="cost__gt"``).

    Raises:
        KeyError: ``code`` is not in the catalog, or a value the messages name is missing (a bug).
    """
    message = CATALOG[code]
    extra = dict(headers or {})
    if message.retry_after is not None:
        extra.setdefault("Retry-After", str(message.retry_after))
    return Refusal(message.status, message.code or code, message.zh.format(**params), message.en.format(**params),
                   headers=extra, reportable=reportable, subject=subject, decision=decision)


def caught(error: CatalogError) -> Refusal:
    """The refusal of an error a module raised with a catalog entry (hygiene, tenancy, access)."""
    return refusal(error.key, **error.params)


def refusal_response(refusal: Refusal, decision_id: str) -> web.Response:
    """Render a refusal as JSON, with the decision id in the body and ``X-Decision-Id``."""
    body: dict[str, Any] = {
        "error": refusal.code,
        "reason_zh": refusal.zh,
        "reason_en": refusal.en,
        "decision_id": decision_id,
    }
    if len(refusal.reasons) > 1:
        body["reasons"] = [{"code": r.code, "reason_zh": r.zh, "reason_en": r.en} for r in refusal.reasons]
    headers = {"X-Decision-Id": decision_id, "Cache-Control": "no-store", **refusal.headers}
    return web.Response(status=refusal.status, text=json.dumps(body, ensure_ascii=False),
                        content_type="application/json", charset="utf-8", headers=headers)


def policy_denied(status: int, reasons: tuple[Reason, ...], step_up: StepUp | None = None) -> Refusal:
    """A policy deny.

    A 404 tells the client only that nothing is there (existence must not leak); the
    real reason goes to the audit trail. A 401 with a step-up obligation is the RFC 9470
    challenge: ``WWW-Authenticate: Bearer error="insufficient_user_authentication",
    acr_values="...", max_age=N``, which a browser session turns into a redirect to the
    identity provider with the same ``acr_values`` and ``max_age``.
    """
    main = reasons[0]
    if status == 404:
        hidden = refusal("not_found", reportable=True)
        hidden.audit_reason = main
        return hidden
    headers = {}
    if status == 401 and step_up is not None:
        description = main.en.replace('"', "'").replace("\\", "/")
        headers["WWW-Authenticate"] = (
            f'Bearer realm="wms", error="insufficient_user_authentication", error_description="{description}", '
            f'acr_values="{step_up.acr_values}", max_age={step_up.max_age}')
    return Refusal(status, main.code, main.zh, main.en, reasons, headers=headers,
                   step_up=step_up if status == 401 else None, reportable=True)


def not_mapped() -> Refusal:
    """The route map has no entry for this method and path."""
    return refusal("route_not_mapped", reportable=True)


def pdp_unavailable() -> Refusal:
    """OPA could not decide."""
    return refusal("pdp_unavailable")


def issuer_unavailable() -> Refusal:
    """Keycloak's keys could not be fetched."""
    return refusal("issuer_unavailable")


def internal_error() -> Refusal:
    """Something failed that should not have (logged with the decision id); nothing was done."""
    return refusal("gateway_error")


def audit_unavailable() -> Refusal:
    """The audit trail cannot take more records (fail closed)."""
    return refusal("audit_unavailable")


def upstream_failed(timeout: bool) -> Refusal:
    """The WMS did not answer (502) or not in time (504)."""
    return refusal("upstream_timeout" if timeout else "upstream_unavailable")


def bad_body(detail: str) -> Refusal:
    """The request body the decision needs is missing or not the expected JSON."""
    return refusal("bad_request_body", detail=detail)


def body_too_large(limit: int) -> Refusal:
    """The request body exceeds the limit the gateway reads."""
    return refusal("body_too_large", limit=limit)
