"""The access API under ``/_gateway/access`` (clients: ``wmsgate access ...``).

``POST /_gateway/access/offboard``   ``{"username", "reason"}``: immediate (``iam:delete``)
``POST /_gateway/access/set-roles``  ``{"username", "roles": [...], "scope"?: {...}}``: widening,
                                     so step-up MFA and a second admin's approval (``iam:update``)
``POST /_gateway/access/bulk-grant`` ``{"rows": [...]}`` temporary grants (CSV columns as keys):
                                     widening (``iam:create``), one approval for the whole file
``POST /_gateway/access/revoke-grant`` ``{"username", "grant_id", "reason"}``: end one temporary
                                     grant now; narrowing, so immediate (``iam:delete``)

Both are authorized by the policy like any request (module ``iam``), audited, and a
held change runs through the approvals flow when approved.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.authz.attributes import Resource
from authorizer.authz.routes import Route
from authorizer.config import GatewayConfig
from authorizer.iam.access import AccessError, AccessService, ChangeReport
from authorizer.iam.grants import GrantError, GrantRow, parse_rows
from authorizer.iam.sod import ConflictSource, ConflictsUnavailable, RoleConflict, parse_conflicts
from proxy.explain import ask_opa
from proxy.responses import Refusal, caught, refusal

OFFBOARD = Route("POST", "/_gateway/access/offboard", ("_gateway", "access", "offboard"), "iam", "delete",
                 resource_id="{body.username}", needs_body=True)
SET_ROLES = Route("POST", "/_gateway/access/set-roles", ("_gateway", "access", "set-roles"), "iam", "update",
                  resource_id="{body.username}", needs_body=True)
BULK_GRANT = Route("POST", "/_gateway/access/bulk-grant", ("_gateway", "access", "bulk-grant"), "iam", "create",
                   needs_body=True)
REVOKE_GRANT = Route("POST", "/_gateway/access/revoke-grant", ("_gateway", "access", "revoke-grant"), "iam",
                     "delete", resource_id="{body.username}", needs_body=True)
ROUTES = {route.template: route for route in (OFFBOARD, SET_ROLES, BULK_GRANT, REVOKE_GRANT)}


def _text(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise refusal("text_field_invalid", name=name)
    return value.strip()


def _grant_rows(body: dict[str, Any]) -> list[GrantRow]:
    rows = body.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise refusal("rows_invalid")
    try:
        return parse_rows(rows)
    except GrantError as exc:
        raise refusal("bad_grant", detail=exc) from None


def resource_for(template: str, body: dict[str, Any]) -> Resource:
    """The policy's view of an access change: the people it is about (module iam has no scope).

    Raises:
        Refusal: 400 when the body does not name them properly.
    """
    if template == BULK_GRANT.template:
        names = [g.username for g in _grant_rows(body)]
        return Resource(kind="bulk", id=",".join(names)[:2000], attributes={})
    return Resource(kind="item", id=_text(body.get("username"), "username"), attributes={})


async def apply_change(service: AccessService, template: str, body: dict[str, Any],
                       actor: str) -> ChangeReport | list[dict[str, Any]]:
    """Carry out an authorized access change (directly, or when its approval lands).

    Raises:
        Refusal: the body is invalid or Keycloak refused (status from :class:`AccessError`).
    """
    if template == BULK_GRANT.template:
        rows = _grant_rows(body)
        try:
            return await service.bulk_grant(rows, actor)
        except AccessError as exc:
            raise caught(exc) from None
    username = _text(body.get("username"), "username")
    try:
        if template == OFFBOARD.template:
            return await service.offboard(username, _text(body.get("reason"), "reason", 2000), actor)
        if template == REVOKE_GRANT.template:
            return await service.revoke_grant(username, _text(body.get("grant_id"), "grant_id", 64),
                                              _text(body.get("reason"), "reason", 2000), actor)
        roles = _roles(body)
        scope = body.get("scope")
        if scope is not None and (not isinstance(scope, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in scope.values())):
            raise refusal("scope_invalid")
        return await service.set_roles(username, roles, scope, actor)
    except AccessError as exc:
        raise caught(exc) from None


def _roles(body: dict[str, Any]) -> list[str]:
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r for r in roles):
        raise refusal("roles_invalid")
    return roles


async def check_separation(service: AccessService, template: str, body: dict[str, Any]) -> None:
    """Refuse, before it is held or carried out, an access change that would give someone
    conflicting roles (separation of duties; checked again when it runs).

    Raises:
        Refusal: 409 ``role_conflict``; 503 when the policy cannot be asked; 400 for a bad body.
    """
    try:
        if template == SET_ROLES.template:
            await service.check_separation(_text(body.get("username"), "username"), _roles(body))
        elif template == BULK_GRANT.template:
            await service.check_grant_separation(_grant_rows(body))
    except AccessError as exc:
        raise caught(exc) from None


def opa_role_conflicts(config: GatewayConfig) -> ConflictSource:
    """The separation-of-duties rules as OPA evaluates them (``wms/authz/role_conflicts``), one
    short-lived session per check (role changes are rare)."""

    async def conflicts(roles: list[str]) -> list[RoleConflict]:
        timeout = aiohttp.ClientTimeout(total=max(config.opa.timeout_seconds, 5.0))
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                result = await ask_opa(session, config, "wms/authz/role_conflicts", {"subject": {"roles": roles}})
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConflictsUnavailable(str(exc)) from exc
        return parse_conflicts(result)

    return conflicts


async def replay(service: AccessService, method: str, path: str, body: bytes | None,
                 actor: str) -> tuple[int, bytes, str]:
    """Run a held access change after its approval: ``(status, body, content type)``."""
    try:
        document = json.loads(body or b"{}")
        report = await apply_change(service, path, document, actor)
    except Refusal as refusal:
        return refusal.status, json.dumps({"error": refusal.code, "reason_en": refusal.en},
                                          ensure_ascii=False).encode(), "application/json"
    return 200, json.dumps(_document(report), ensure_ascii=False).encode(), "application/json"


def _document(report: ChangeReport | list[dict[str, Any]]) -> Any:
    return {"sheet": report} if isinstance(report, list) else report.document()


def respond(report: ChangeReport | list[dict[str, Any]], decision_id: str) -> web.Response:
    """The answer to an access change that ran."""
    return web.Response(text=json.dumps(_document(report), ensure_ascii=False), content_type="application/json",
                        charset="utf-8", headers={"X-Decision-Id": decision_id, "Cache-Control": "no-store"})
