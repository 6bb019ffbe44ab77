"""The shadow-mode report: what the gateway would have refused, grouped so a rollout can be judged.

Reads the ``would_deny`` records of routes in report mode (:mod:`authorizer.enforce.enforcement`)
and groups them by route, role and reason: "picker: 412 would-be refusals of
``GET /goods/`` for ``filter_on_masked_field``" is either a policy to fix before enforcing
or a leak the gateway is about to close.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from authorizer.audit.store import AuditStore, audit_records

WOULD_DENY = "would_deny"


@dataclass
class ShadowGroup:
    """Would-be refusals of one route, for one role, for one reason.

    Attributes:
        route: ``METHOD /template`` (or ``METHOD /path`` of a request that matched no route).
        role: one of the callers' roles (a person with two roles counts under both);
            ``(none)`` for a caller without roles.
        reason: the refusal's reason code.
        count: how many requests.
        people: distinct usernames, most frequent first.
        example: the decision id of the newest request, to open with ``wmsgate audit search``.
        last_ms: when the newest happened (ms since the epoch, UTC).
    """

    route: str
    role: str
    reason: str
    count: int = 0
    people: list[str] = field(default_factory=list)
    example: str = ""
    last_ms: int = 0

    def document(self) -> dict[str, Any]:
        """A JSON-friendly dict (time as ISO 8601 UTC)."""
        last = dt.datetime.fromtimestamp(self.last_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        return {"route": self.route, "role": self.role, "reason": self.reason, "count": self.count,
                "people": self.people, "example_decision_id": self.example, "last": last}


def _route_of(row: Any) -> str:
    shadow = (row.detail or {}).get("shadow") or {}
    return shadow.get("route") or f"{row.method} {row.path}"


async def shadow_report(store: AuditStore, since: dt.datetime, until: dt.datetime | None = None) -> list[ShadowGroup]:
    """Group the ``would_deny`` records since ``since`` (UTC) by route, role and reason.

    Returns:
        The groups, largest first.
    """
    t = audit_records.c
    stmt = select(t.ts_ms, t.decision_id, t.username, t.roles, t.reason_code, t.method, t.path, t.detail).where(
        t.decision == WOULD_DENY, t.ts_ms >= int(since.timestamp() * 1000))
    if until is not None:
        stmt = stmt.where(t.ts_ms < int(until.timestamp() * 1000))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(t.seq))).all()
    groups: dict[tuple[str, str, str], ShadowGroup] = {}
    people: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        for role in [r for r in (row.roles or "").split(",") if r] or ["(none)"]:
            key = (_route_of(row), role, row.reason_code or "")
            group = groups.setdefault(key, ShadowGroup(*key))
            group.count += 1
            group.example, group.last_ms = row.decision_id, row.ts_ms
            people[key][row.username or "(anonymous)"] += 1
    for key, group in groups.items():
        group.people = [name for name, _ in people[key].most_common(10)]
    return sorted(groups.values(), key=lambda g: (-g.count, g.route, g.role, g.reason))
