"""Alerts that act: a person a security alert flagged (a login from a new device) must step
up again before their next high-risk request or approval.

The alerting service lists the people its unresolved alerts of rules with ``demand_step_up``
name (``GET /step-up-demands``: user id and when the alert opened). The gateway keeps a copy,
refreshed in the background, and gives the policy the newest such time of the person
(``input.subject.alert_since_ms``); the policy answers their high-risk requests and approvals
with a step-up challenge (RFC 9470) until their token shows an MFA login made at or after it
(``demanded_step_up`` in rego/base/wms/authz/high_risk.rego). Resolving the alert ends the
demand. The gateway reads them before it serves; while the alerting service cannot be reached
the last copy stays in force (a demand is never dropped because a poll failed), and a gateway
that started while it was down knows of none until it answers (it logs so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from authorizer.authn.identity import Principal

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[list[dict[str, Any]]]]


class DemandsUnavailable(Exception):
    """The alerting service could not be asked (down, slow, or an answer without demands)."""


class StepUpDemands:
    """The gateway's copy of the step-up demands.

    Args:
        fetch: returns the alerting service's demands (``[{"user_id", "since_ms", "alert_id",
            ...}]``); raises :class:`DemandsUnavailable` when it cannot.
        refresh_seconds: how often to read them.
    """

    def __init__(self, fetch: Fetch, refresh_seconds: float = 2.0) -> None:
        self._fetch = fetch
        self.refresh_seconds = refresh_seconds
        self._since: dict[str, tuple[int, str]] = {}

    def since_ms(self, principal: Principal) -> int | None:
        """When the newest unresolved alert demanding a step-up of ``principal`` opened (ms since
        the epoch, UTC), or None when none does."""
        found = self._since.get(principal.user_id)
        return None if found is None else found[0]

    async def refresh(self) -> None:
        """Read the demands again (the newest sighting per person counts).

        Raises:
            DemandsUnavailable: the alerting service could not be asked (the last copy stays).
        """
        since: dict[str, tuple[int, str]] = {}
        for item in await self._fetch():
            user_id, at, alert_id = item.get("user_id"), item.get("since_ms"), item.get("alert_id")
            if isinstance(user_id, str) and isinstance(at, int) and isinstance(alert_id, str):
                if at > since.get(user_id, (0, ""))[0]:
                    since[user_id] = (at, alert_id)
        self._since = since

    async def run_forever(self) -> None:
        """Refresh every ``refresh_seconds`` until cancelled; failures are logged and retried."""
        while True:
            try:
                await self.refresh()
            except DemandsUnavailable as exc:  # the alerting service is down: keep the last copy
                log.warning("reading step-up demands from the alerting service failed: %s", exc)
            except Exception:
                log.exception("reading step-up demands failed")
            await asyncio.sleep(self.refresh_seconds)
