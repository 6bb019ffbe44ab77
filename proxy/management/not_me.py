"""``GET|POST /_gateway/not-me?t=...``: the "not me" link of an alert about a person's login
(:mod:`authorizer.iam.not_me`).

``GET`` shows what the link will do (nothing happens yet: mail scanners and link previews
follow links); the confirming ``POST`` ends every session of the person (their tokens are
refused at once, every Keycloak session and offline token ends), marks the alert
acknowledged with the note "not me", and is audited (module ``auth``, verb ``not_me``). It
works once per alert (``not_me_link_invalid``, why ``used``, after that).
The signed link is the credential: no login is asked (the person may have lost the account).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from authorizer.iam.access import AccessError
from authorizer.iam.not_me import PATH, BadNotMeLink, NotMeClaim
from authorizer.messages import TEXTS, Text
from proxy.browser_pages import login_href, page, refusal_page
from proxy.gateway import GATEWAY, Gateway
from proxy.lifecycle import Endpoint, context_of, endpoint, sub_path
from proxy.management.alerts import AlertsClient
from proxy.responses import Refusal, caught, refusal

log = logging.getLogger(__name__)

#: Recorded when it acts or is refused; the link (a credential) is never stored.
NOT_ME = Endpoint(style="pep", quiet=True, keep_query=False)


def _claim(gw: Gateway, token: str) -> NotMeClaim:
    """The link's claim.

    Raises:
        Refusal: 400 ``not_me_link_invalid`` (malformed, forged, expired); 503 when the gateway
            has no alerting link (it cannot check one).
    """
    if gw.not_me is None:
        raise refusal("access_management_unavailable")
    try:
        return gw.not_me.verify(token, int(time.time() * 1000))
    except BadNotMeLink as exc:
        raise refusal("not_me_link_invalid", why=exc.reason) from None


def _refused(request: web.Request, refused: Refusal) -> web.Response:
    ctx = context_of(request)
    ctx.record.module, ctx.record.verb, ctx.record.reason_code = "auth", "not_me", refused.code
    ctx.note()
    return refusal_page(request, refused.status, refused.code, Text(refused.zh, refused.en), ctx.record.decision_id,
                        "")


@endpoint(NOT_ME)
async def confirm_page(request: web.Request) -> web.Response:
    """What the link will do, with the button that does it."""
    gw = request.config_dict[GATEWAY]
    token = request.query.get("t", "")
    try:
        claim = _claim(gw, token)
    except Refusal as refused:
        return _refused(request, refused)
    return page(request, 200, "not_me_confirm", {"title": TEXTS["title_not_me"], "username": claim.username,
                                                 "token": token})


@endpoint(NOT_ME)
async def end_sessions(request: web.Request) -> web.Response:
    """End every session of the link's person, acknowledge the alert, audit it."""
    gw = request.config_dict[GATEWAY]
    form = await request.post()
    try:
        claim = _claim(gw, str(form.get("t", "")))
        if gw.access is None or gw.not_me_uses is None:
            raise refusal("access_management_unavailable")
        if not await gw.not_me_uses.claim(claim, int(time.time() * 1000)):
            raise refusal("not_me_link_invalid", why="used")
    except Refusal as refused:
        return _refused(request, refused)
    try:
        report = await gw.access.end_sessions(claim.user_id, f"alert {claim.alert_id}", "not-me link")
    except AccessError as exc:
        await gw.not_me_uses.release(claim)
        return _refused(request, caught(exc))
    if gw.sso is not None:
        await gw.sso.sessions.end_by_user(claim.user_id)
    acknowledged = await _acknowledge(gw.alerts, claim)
    ctx = context_of(request)
    record = ctx.record
    record.module, record.verb, record.reason_code, record.decision = "auth", "not_me", "not_me_sessions_ended", "allow"
    record.username, record.user_id, record.resource_id = claim.username, claim.user_id, claim.alert_id
    record.detail = {"alert_id": claim.alert_id, "alert_acknowledged": acknowledged, **report.document()}
    ctx.note()
    return page(request, 200, "not_me_done", {"title": TEXTS["title_not_me_done"], "username": claim.username,
                                              "login": login_href("/")}, {"X-Decision-Id": record.decision_id})


async def _acknowledge(alerts: AlertsClient | None, claim: NotMeClaim) -> bool:
    """Mark the alert acknowledged with the note "not me"; False when the alerting service did not."""
    if alerts is None:
        return False
    note = TEXTS["not_me_note"].zh + " / " + TEXTS["not_me_note"].en
    try:
        status, _ = await alerts.call("POST", f"/alerts/{claim.alert_id}/acknowledge",
                                      body={"by": claim.username, "note": note})
    except Refusal:
        log.warning("alert %s: the alerting service is unavailable; not acknowledged", claim.alert_id)
        return False
    return status == 200


def add_routes(app: web.Application) -> None:
    """Register the "not me" page and its form on the gateway's ``/_gateway`` sub-application."""
    app.router.add_get(sub_path(PATH), confirm_page)
    app.router.add_post(sub_path(PATH), end_sessions)
