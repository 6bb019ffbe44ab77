"""``GET /_gateway/access/usage``: what each person holds and when they last used it (``iam:view``).

Query: ``days`` (the window, 1-400, default 30), ``user`` (one person; default everyone),
``unused=1`` (only people holding something they did not use). Answers
``{"since_ms", "days", "people": [...]}``, each person as
:func:`authorizer.iam.usage.person_usage` plus ``unused`` (:func:`authorizer.iam.usage.unused_items`).
Clients: ``wmsgate access unused`` and the console's access review pages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.exc import SQLAlchemyError

from authorizer.authz.routes import Route
from authorizer.iam.access import AccessError, AccessService
from authorizer.iam.usage import person_usage, trail_usage, unused_items
from authorizer.messages import TEXTS
from proxy.explain import ask_opa
from proxy.gateway import Gateway
from proxy.responses import Refusal, caught, refusal

USAGE = Route("GET", "/_gateway/access/usage", ("_gateway", "access", "usage"), "iam", "view")
MAX_DAYS = 400
_ALLOWED = frozenset({"days", "user", "unused"})


@dataclass(frozen=True)
class UsageQuery:
    """What a usage request asks for.

    Attributes:
        days: the window, in days back from now (UTC).
        user: one username, or None for everyone.
        unused_only: only people holding something they did not use in the window.
    """

    days: int = 30
    user: str | None = None
    unused_only: bool = False


def _bad(name: str, problem: str, **values: object) -> Refusal:
    text = TEXTS[problem].format(**values)
    return refusal("bad_usage_query", name=name, zh=text.zh, en=text.en)


def parse_query(params: Mapping[str, str]) -> UsageQuery:
    """The usage query of a request's query string.

    Raises:
        Refusal: 400 ``bad_usage_query`` for an unknown parameter, ``days`` that is not a whole
            number from 1 to :data:`MAX_DAYS`, an empty or long ``user``, ``unused`` not 0/1.
    """
    unknown = sorted(set(params) - _ALLOWED)
    if unknown:
        raise _bad(unknown[0], "query_unknown")
    try:
        days = int(params.get("days", "30"))
    except ValueError:
        raise _bad("days", "query_not_integer") from None
    if not 1 <= days <= MAX_DAYS:
        raise _bad("days", "query_out_of_range", low=1, high=MAX_DAYS)
    user = params.get("user")
    if user is not None and (not user.strip() or len(user) > 256):
        raise _bad("user", "query_bad_text")
    if params.get("unused", "0") not in ("0", "1"):
        raise _bad("unused", "query_not_flag")
    return UsageQuery(days, user.strip() if user else None, params.get("unused") == "1")


async def role_permissions(gw: Gateway) -> dict[str, list[str]]:
    """Every role's ``module:verb`` permissions as the policy merges its layers (OPA's
    ``data.wms.authz.role_permissions``).

    Raises:
        Refusal: 503 ``policy_engine_unavailable`` when OPA cannot answer.
    """
    timeout = aiohttp.ClientTimeout(total=max(gw.config.opa.timeout_seconds, 5.0))
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            result = await ask_opa(session, gw.config, "wms/authz/role_permissions", {})
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise refusal("policy_engine_unavailable") from None
    if not isinstance(result, dict):
        raise refusal("policy_engine_unavailable")
    return {str(role): sorted(str(p) for p in perms) for role, perms in result.items() if isinstance(perms, list)}


async def _people(access: AccessService, user: str | None) -> list[dict[str, Any]]:
    """The people to report on, each with roles, scope and active grants."""
    if user is not None:
        return [await access.person(user)]
    people = await access.directory()
    grants = await access.active_grants()
    for person in people:
        person["grants"] = grants.get(person["user_id"], [])
    return people


async def people_usage(gw: Gateway, access: AccessService, days: int, user: str | None) -> list[dict[str, Any]]:
    """Each person's access with when each part was last used in the last ``days`` days
    (:func:`authorizer.iam.usage.person_usage`, plus ``unused``: :func:`authorizer.iam.usage.unused_items`).

    Raises:
        Refusal: 404 for an unknown ``user``, 502 when Keycloak fails, 503 when OPA or the
            audit store cannot be read.
    """
    permissions = await role_permissions(gw)
    try:
        people = await _people(access, user)
    except AccessError as exc:
        raise caught(exc) from None
    since_ms = int((time.time() - days * 86400) * 1000)
    holders = [p["user_id"] for p in people if p.get("grants")]
    try:
        usage = await trail_usage(gw.audit_store.engine, since_ms, holders)
    except SQLAlchemyError:
        raise refusal("audit_store_unavailable") from None
    reports = []
    for person in people:
        report = person_usage(person, permissions, usage)
        report["unused"] = unused_items(report)
        reports.append(report)
    return reports


async def usage_report(gw: Gateway, access: AccessService, query: UsageQuery) -> dict[str, Any]:
    """The report for ``query`` (see the module docstring).

    Raises:
        Refusal: as :func:`people_usage`.
    """
    since_ms = int((time.time() - query.days * 86400) * 1000)
    people = await people_usage(gw, access, query.days, query.user)
    return {"since_ms": since_ms, "days": query.days,
            "people": [p for p in people if p["unused"] or not query.unused_only]}
