"""The console's reveal page: one masked field of one record in plaintext for a few minutes.

``GET  /_gateway/ui/reveal[?path=&field=]``   the form
``POST /_gateway/ui/reveal``                  reveal (the same decision and record as ``POST /_gateway/reveals``)

See :mod:`proxy.management.reveals`; the page links to the record once revealed.
"""

from __future__ import annotations

from aiohttp import web

from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.messages import TEXTS
from proxy.console_pages import PATHS, console_page
from proxy.gateway import Gateway
from proxy.lifecycle import context_of, sub_path
from proxy.management.console import Form, console_view, identity_provider_origin
from proxy.management.reveals import REASON_LIMIT, make_reveal, reveal_text

REVEAL = PATHS["reveal"]


def _page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal, csrf: str,
          reveal: dict[str, object] | None, reveal_path: str = "") -> web.Response:
    return console_page(request, TEXTS["title_reveal"], "reveal",
                        {"minutes": gw.config.reveal_minutes, "query": dict(request.query), "csrf": csrf,
                         "reveal": reveal, "reveal_path": reveal_path, "reveal_form": REVEAL},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


@console_view
async def reveal_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                      form: Form, csrf: str) -> web.Response:
    """The form (not audited as a decision: nothing is asked of the policy yet)."""
    record.module, record.verb = "reveals", "view"
    record.decision, record.reason_code = "allow", "allowed"
    return _page(request, gw, record, principal, csrf, None)


@console_view
async def reveal(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                 form: Form, csrf: str) -> web.Response:
    """Reveal the field and say until when, with a link to the record."""
    path = reveal_text(form, "path", 2048)
    made = await make_reveal(context_of(request), path, reveal_text(form, "field", 256),
                             reveal_text(form, "reason", REASON_LIMIT))
    return _page(request, gw, record, principal, csrf, made.document(), path)


def add_routes(app: web.Application) -> None:
    """Register the reveal page and its form (with the console: it needs browser sessions)."""
    app.router.add_get(sub_path(REVEAL), reveal_page)
    app.router.add_post(sub_path(REVEAL), reveal)
