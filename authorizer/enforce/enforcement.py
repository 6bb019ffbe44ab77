"""Enforce or report only (shadow mode), globally or per route.

A warehouse rolling the gateway out first runs it in report mode: every decision is
made and audited, but a refusal is recorded as ``would_deny`` (with its reason) and the
request is forwarded as the WMS would have served it before the gateway, the person's
masks still applied. ``wmsgate
shadow report`` groups the would-be refusals; when they are understood, routes switch
to enforce. The mode is configuration (``enforcement:`` in the gateway config, a
route's ``enforcement:`` in the route map), and every change of it is audited: at
start the proxy compares the modes with the last ones recorded in the store and writes
one audit record per change (once, however many processes start).

What report mode does not relax: request hygiene, authentication, the tenant choice and
its scope, masks, the identity the WMS receives (headers, body fields naming who acts), the audit trail itself
and an unreachable PDP (503) are enforced in both modes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Column, String, Table, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

ENFORCE, REPORT = "enforce", "report"
MODES = frozenset({ENFORCE, REPORT})
#: The key of the gateway-wide default in a snapshot of modes.
DEFAULT_KEY = "*"

enforcement_state = Table(
    "enforcement_state", metadata,
    Column("name", String(32), primary_key=True),
    Column("modes", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class EnforcementModes:
    """Which routes enforce and which only report.

    Attributes:
        default: the gateway-wide mode (``enforcement:`` in the config); it also decides
            requests that match no route.
        routes: ``"METHOD /template"`` -> mode, for routes whose map entry sets one.
    """

    default: str = ENFORCE
    routes: dict[str, str] = field(default_factory=dict)

    def reports(self, route_key: str | None) -> bool:
        """True when refusals on this route (None: an unmapped request) are only reported."""
        if route_key is None:
            return self.default == REPORT
        return self.routes.get(route_key, self.default) == REPORT

    def snapshot(self, route_keys: list[str]) -> dict[str, str]:
        """The default (key ``*``) and the mode of every route (the default's when it sets none)."""
        return {DEFAULT_KEY: self.default, **{k: self.routes.get(k, self.default) for k in route_keys}}

    def overrides(self) -> dict[str, str]:
        """The default (key ``*``) and the routes that set their own mode."""
        return {DEFAULT_KEY: self.default, **self.routes}


@dataclass(frozen=True)
class ModeChange:
    """A mode changed between two starts.

    Attributes:
        key: ``*`` (the default) or ``METHOD /template``.
        before, after: ``enforce``, ``report``, or ``none`` (the first start of a gateway).
        routes: with the first start's record, the routes that set their own mode.
    """

    key: str
    before: str
    after: str
    routes: dict[str, str] = field(default_factory=dict)


def changes(before: dict[str, str] | None, after: dict[str, str], overrides: dict[str, str]) -> list[ModeChange]:
    """What to audit between two snapshots of effective modes (:meth:`EnforcementModes.snapshot`).

    The first start (``before`` None) is one record (``*``: none -> the default, with the
    routes that set their own). Later: the default when it changed (the routes following it
    are implied), and each route that sets its own mode, or set one before, whose effective
    mode changed.
    """
    if before is None:
        return [ModeChange(DEFAULT_KEY, "none", after[DEFAULT_KEY],
                           {k: v for k, v in overrides.items() if k != DEFAULT_KEY})]
    out = []
    if before.get(DEFAULT_KEY) != after[DEFAULT_KEY]:
        out.append(ModeChange(DEFAULT_KEY, before.get(DEFAULT_KEY, ENFORCE), after[DEFAULT_KEY]))
    old_default = before.get(DEFAULT_KEY, ENFORCE)
    for key in sorted(k for k in after if k != DEFAULT_KEY):
        was = before.get(key, old_default)
        follows_default_both = key not in overrides and was == old_default
        if was != after[key] and not follows_default_both:
            out.append(ModeChange(key, was, after[key]))
    return out


async def record_modes(engine: AsyncEngine, modes: EnforcementModes, route_keys: list[str]) -> list[ModeChange]:
    """Store the current effective modes; return what changed since the last stored ones.

    The update is a compare-and-set on the stored text, so when several processes start
    with the same config only one of them sees (and audits) the changes.
    """
    snapshot = modes.snapshot(route_keys)
    text = json.dumps(snapshot, sort_keys=True)
    now = int(time.time() * 1000)
    async with engine.begin() as conn:
        row = (await conn.execute(select(enforcement_state.c.modes).where(
            enforcement_state.c.name == "routes"))).first()
        if row is None:
            try:
                async with conn.begin_nested():
                    await conn.execute(enforcement_state.insert().values(name="routes", modes=text, updated_ms=now))
            except IntegrityError:
                return []  # another process stored it first
            return changes(None, snapshot, modes.overrides())
        if row.modes == text:
            return []
        result = await conn.execute(update(enforcement_state).where(
            enforcement_state.c.name == "routes", enforcement_state.c.modes == row.modes).values(
            modes=text, updated_ms=now))
        if result.rowcount != 1:
            return []
        return changes(json.loads(row.modes), snapshot, modes.overrides())
