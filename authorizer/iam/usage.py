"""Usage-based access review data: when each person last used each role, permission, scope
value and temporary grant they hold, from the audit trail.

"Used" means an *allowed* request in the window: a permission ``module:verb`` is used by
a person when the trail has an allowed request of theirs with that module and verb; a
role is used when any of its permissions is (so two roles that both carry a used
permission both count as used; the permission lines show the overlap); a scope value
(warehouse ``HF``) is used when an allowed request of theirs touched a resource with that
value (``*`` when any value was touched); a temporary grant is used when one of its role's
permissions was used while the grant was valid. Denied requests, and requests held for
four-eyes approval, never count: asking is not using.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.audit.store import audit_records

#: Scope dimensions as the audit record stores them (comma-joined values per request).
DIMENSIONS = ("warehouse", "channel", "order_type")


@dataclass
class TrailUsage:
    """What the audit trail says each person used in a window (times: ms since the epoch, UTC).

    Attributes:
        permissions: user id -> ``module:verb`` -> last allowed request.
        scope: user id -> ``(dimension, value)`` -> last allowed request touching it.
        spans: user id -> ``module:verb`` -> every allowed request time (only for people with
            temporary grants, to judge use inside each grant's validity).
    """

    permissions: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    scope: dict[str, dict[tuple[str, str], int]] = field(default_factory=lambda: defaultdict(dict))
    spans: dict[str, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))


async def trail_usage(engine: AsyncEngine, since_ms: int, grant_holders: Iterable[str] = ()) -> TrailUsage:
    """Read the allowed requests since ``since_ms`` (UTC epoch ms), grouped by person.

    Args:
        engine: the audit store's engine.
        since_ms: the window's start.
        grant_holders: user ids whose request times per permission are also kept (temporary grants).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
    """
    t = audit_records.c
    usage = TrailUsage()
    # a request held for four-eyes approval is recorded as allowed, but it was only asked for
    allowed = (t.decision == "allow", t.ts_ms >= since_ms, t.user_id != "", t.reason_code != "approval_required")
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.user_id, t.module, t.verb, func.max(t.ts_ms)).where(*allowed)
                                  .group_by(t.user_id, t.module, t.verb))
        for user_id, module, verb, last in rows:
            usage.permissions[user_id][f"{module}:{verb}"] = int(last)
        rows = await conn.execute(select(t.user_id, t.warehouse, t.channel, t.order_type, func.max(t.ts_ms))
                                  .where(*allowed).group_by(t.user_id, t.warehouse, t.channel, t.order_type))
        for user_id, *values, last in rows:
            for dim, joined in zip(DIMENSIONS, values, strict=True):
                for value in filter(None, (joined or "").split(",")):
                    for key in ((dim, value), (dim, "*")):
                        usage.scope[user_id][key] = max(usage.scope[user_id].get(key, 0), int(last))
        holders = list(grant_holders)
        if holders:
            rows = await conn.execute(select(t.user_id, t.module, t.verb, t.ts_ms)
                                      .where(*allowed, t.user_id.in_(holders)))
            for user_id, module, verb, ts in rows:
                usage.spans[user_id][f"{module}:{verb}"].append(int(ts))
    return usage


def _latest(values: Iterable[int | None]) -> int | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def person_usage(person: Mapping[str, Any], role_permissions: Mapping[str, Iterable[str]],
                 usage: TrailUsage) -> dict[str, Any]:
    """One person's access with when each part was last used.

    Args:
        person: ``user_id, username, enabled, roles, scope`` (dimension -> values) and
            optionally ``grants`` (``grant_id, role, valid_from_s, valid_until_s``: epoch seconds),
            as :meth:`authorizer.iam.access.AccessService.person` gives them.
        role_permissions: role -> its ``module:verb`` permissions (the policy's ``role_permissions``).
        usage: the trail's usage (:func:`trail_usage`).

    Returns:
        ``{"username", "user_id", "enabled", "roles": [{"role", "last_used_ms", "permissions":
        [{"permission", "last_used_ms"}]}], "scope": [{"dimension", "value", "last_used_ms"}],
        "grants": [{"grant_id", "role", "scope", "valid_from_s", "valid_until_s", "last_used_ms"}],
        "last_used_ms"}``; ``last_used_ms`` is None for what was not used in the window.
    """
    user_id = str(person["user_id"])
    used = usage.permissions.get(user_id, {})
    roles = []
    mine = sorted(person.get("roles", []))
    for role in mine:
        held = sorted(role_permissions.get(role, ()))
        others = {p for other in mine if other != role for p in role_permissions.get(other, ())}
        own = [p for p in held if p not in others] or held  # what only this role gives, when it gives anything
        perms = [{"permission": p, "last_used_ms": used.get(p)} for p in held]
        roles.append({"role": role, "last_used_ms": _latest(used.get(p) for p in own), "permissions": perms})
    touched = usage.scope.get(user_id, {})
    scope = [{"dimension": dim, "value": value, "last_used_ms": touched.get((dim, value))}
             for dim, values in sorted((person.get("scope") or {}).items()) for value in sorted(values)]
    grants = []
    for grant in person.get("grants", []):
        start, end = int(grant["valid_from_s"]) * 1000, int(grant["valid_until_s"]) * 1000
        spans = usage.spans.get(user_id, {})
        last = _latest(max((ts for ts in spans.get(p, ()) if start <= ts < end), default=None)
                       for p in role_permissions.get(str(grant["role"]), ()))
        grants.append({"grant_id": grant["grant_id"], "role": grant["role"], "scope": grant.get("scope") or {},
                       "valid_from_s": start // 1000, "valid_until_s": end // 1000, "last_used_ms": last})
    return {"username": person["username"], "user_id": user_id, "enabled": bool(person.get("enabled", True)),
            "roles": roles, "scope": scope, "grants": grants, "last_used_ms": _latest(used.values())}


def unused_items(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """What a person holds but did not use (from :func:`person_usage`): whole roles, permissions of
    roles that were used otherwise, scope values and grants, each ``{"kind", "name"}``
    (kind ``role``, ``permission``, ``scope`` or ``grant``)."""
    items: list[dict[str, str]] = []
    for role in report["roles"]:
        if role["last_used_ms"] is None:
            items.append({"kind": "role", "name": role["role"]})
            continue
        items.extend({"kind": "permission", "name": f"{role['role']}/{p['permission']}"}
                     for p in role["permissions"] if p["last_used_ms"] is None)
    items.extend({"kind": "scope", "name": f"{s['dimension']}={s['value']}"}
                 for s in report["scope"] if s["last_used_ms"] is None)
    items.extend({"kind": "grant", "name": f"{g['role']} ({g['grant_id']})"}
                 for g in report["grants"] if g["last_used_ms"] is None)
    return items
