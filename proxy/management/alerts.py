"""The alert API under ``/_gateway/alerts`` (the management side of ``wmsgate alerts``).

``GET  /_gateway/alerts?status=&rule=&limit=&offset=``   alerts, most recently seen first (``alerts:view``)
``GET  /_gateway/alerts/{id}``                           one alert with its deliveries (``alerts:view``)
``POST /_gateway/alerts/{id}/acknowledge``               someone is on it (``alerts:update``)
``POST /_gateway/alerts/{id}/resolve``                   done (``alerts:update``)

The POST body is optional: ``{"note": "..."}``. The gateway authorizes the person
through the policy like any request (module ``alerts``), audits the call, and asks the
alerting service with its API token, naming the person as the one who acted.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.authn.step_up_demands import DemandsUnavailable
from authorizer.authz.routes import Route
from authorizer.config import AlertingLink
from proxy.responses import Refusal, refusal

LIST = Route("GET", "/_gateway/alerts", ("_gateway", "alerts"), "alerts", "view", kind="list")
ITEM = Route("GET", "/_gateway/alerts/{alert_id}", ("_gateway", "alerts", "{alert_id}"), "alerts", "view", kind="item")
ACKNOWLEDGE = Route("POST", "/_gateway/alerts/{alert_id}/acknowledge",
                    ("_gateway", "alerts", "{alert_id}", "acknowledge"), "alerts", "update", kind="item")
RESOLVE = Route("POST", "/_gateway/alerts/{alert_id}/resolve", ("_gateway", "alerts", "{alert_id}", "resolve"),
                "alerts", "update", kind="item")
MAX_NOTE = 2000


def unavailable() -> Refusal:
    """503: the alerting service is not configured, unreachable or failing."""
    return refusal("alerting_unavailable")


def approval_not_supported() -> Refusal:
    """The policy asks for an approval to handle alerts: not something that can wait, so refused."""
    return refusal("alerts_approval_not_supported")


def note_of(raw: bytes) -> str | None:
    """The optional ``note`` of an acknowledge/resolve body.

    Raises:
        Refusal: 400 for a body that is not ``{}`` or ``{"note": "<at most 2000 characters>"}``.
    """
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) - {"note"} or not isinstance(body.get("note", ""), str) \
            or len(body.get("note", "")) > MAX_NOTE:
        raise refusal("bad_alert_note", limit=MAX_NOTE)
    return body.get("note") or None


class AlertsClient:
    """Calls the alerting service's API on behalf of an authorized person.

    Args:
        link: where the service is and its API token.
        session: the gateway's shared HTTP client session.
    """

    def __init__(self, link: AlertingLink, session: aiohttp.ClientSession) -> None:
        self._link = link
        self._session = session

    async def call(self, method: str, path: str, query: dict[str, str] | None = None,
                   body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One API call; returns (status, decoded JSON answer).

        Raises:
            Refusal: 503 when the service is unreachable, too slow, or answers without JSON.
        """
        try:
            async with self._session.request(
                    method, self._link.url + path, params=query, json=body,
                    headers={"Authorization": f"Bearer {self._link.api_token}"},
                    timeout=aiohttp.ClientTimeout(total=self._link.timeout_seconds)) as resp:
                if resp.status >= 500 or resp.status == 401:
                    raise unavailable()
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise unavailable() from None


async def step_up_demands(client: AlertsClient) -> list[dict[str, Any]]:
    """The alerting service's step-up demands (``GET /step-up-demands``).

    Raises:
        DemandsUnavailable: the service is unreachable or answered without a demand list.
    """
    try:
        status, answer = await client.call("GET", "/step-up-demands")
    except Refusal as exc:
        raise DemandsUnavailable(exc.code) from None
    demands = answer.get("demands") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(demands, list):
        raise DemandsUnavailable(f"the alerting service answered {status}")
    return [d for d in demands if isinstance(d, dict)]


async def fetch(client: AlertsClient, method: str, path: str, query: dict[str, str] | None = None,
                body: dict[str, Any] | None = None) -> Any:
    """One API call whose error answers become refusals (same status, code and messages).

    Raises:
        Refusal: the service refused (400/404/409...) or is unavailable (503).
    """
    status, answer = await client.call(method, path, query, body)
    if status >= 400:
        if isinstance(answer, dict) and "error" in answer:
            raise Refusal(status, str(answer["error"]), str(answer.get("reason_zh", "")),
                          str(answer.get("reason_en", "")))
        raise unavailable()
    return answer


async def change(client: AlertsClient, route: Route, alert_id: str, username: str, note: str | None) -> dict[str, Any]:
    """Acknowledge (:data:`ACKNOWLEDGE`) or resolve (:data:`RESOLVE`) an alert as ``username``; returns it."""
    to = "acknowledge" if route is ACKNOWLEDGE else "resolve"
    result: dict[str, Any] = await fetch(client, "POST", f"/alerts/{alert_id}/{to}",
                                         body={"by": username, "note": note})
    return result


async def respond(client: AlertsClient, route: Route, alert_id: str | None, request: web.Request, username: str,
                  decision_id: str) -> tuple[web.Response, dict[str, Any]]:
    """Carry out an authorized alert API call.

    Returns:
        The answer for the client, and what to add to the audit record's detail.

    Raises:
        Refusal: a bad body, or the service's own refusal.
    """
    detail: dict[str, Any] = {}
    if route is LIST:
        answer = await fetch(client, "GET", "/alerts", query=dict(request.query))
        detail["query"] = dict(request.query)
    elif route is ITEM:
        answer = await fetch(client, "GET", f"/alerts/{alert_id}")
    else:
        assert alert_id is not None
        note = note_of(await request.read())
        answer = await change(client, route, alert_id, username, note)
        detail["alert_action"] = "acknowledge" if route is ACKNOWLEDGE else "resolve"
        if note:
            detail["note"] = note
    response = web.Response(text=json.dumps(answer, ensure_ascii=False), content_type="application/json",
                            charset="utf-8", headers={"Cache-Control": "no-store", "X-Decision-Id": decision_id})
    return response, detail
