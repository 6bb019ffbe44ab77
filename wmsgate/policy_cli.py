"""``wmsgate policy explain`` and ``wmsgate policy who-can``: answers for admins, from the real policy.

Both read people from Keycloak (admin API) and ask OPA, so they show what the
gateway would decide, not a re-implementation of the policy.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from keycloak import KeycloakAdmin

from authorizer.attributes import AttributeResolver, RequestParts, ResolutionError
from authorizer.config import GatewayConfig
from authorizer.identity import SCOPE_DIMENSIONS, Principal
from authorizer.pdp import parse_decision
from authorizer.policy_input import build_policy_input
from authorizer.routes import RouteMap
from proxy.hygiene import HygieneError, check_target


@dataclass(frozen=True)
class Person:
    """A realm user as the policy sees them."""

    user_id: str
    username: str
    roles: tuple[str, ...]
    scope: dict[str, tuple[str, ...]]
    enabled: bool

    def principal(self) -> Principal:
        """The :class:`Principal` a token of this person would carry."""
        return Principal(self.user_id, self.username, self.roles, self.scope, client_id="wmsgate-policy-cli")


class Directory:
    """Realm users through the Keycloak admin API.

    Args:
        config: gateway config (its issuer names the Keycloak base URL and realm).
        admin_user, admin_password: a Keycloak admin of the master realm
            (defaults: ``$KEYCLOAK_ADMIN_USER`` / ``$KEYCLOAK_ADMIN_PASSWORD``, else the demo's).
    """

    def __init__(self, config: GatewayConfig, admin_user: str | None = None, admin_password: str | None = None) -> None:
        parts = urlsplit(config.oidc.issuer)
        base = f"{parts.scheme}://{parts.netloc}"
        realm = parts.path.rstrip("/").rsplit("/", 1)[-1]
        self._admin = KeycloakAdmin(
            server_url=base + "/", realm_name=realm, user_realm_name="master",
            username=admin_user or os.environ.get("KEYCLOAK_ADMIN_USER", "kcadmin"),
            password=admin_password or os.environ.get("KEYCLOAK_ADMIN_PASSWORD", "kcadmin-demo"))

    def _person(self, user: dict[str, Any]) -> Person:
        roles = tuple(sorted(r["name"] for r in self._admin.get_composite_realm_roles_of_user(user["id"])))
        attrs = user.get("attributes") or {}
        scope = {dim: tuple(attrs.get(f"wms_{dim}", [])) for dim in SCOPE_DIMENSIONS}
        return Person(user["id"], user["username"], roles, scope, bool(user.get("enabled", True)))

    def person(self, username: str) -> Person:
        """One user by username.

        Raises:
            LookupError: no such user.
        """
        users = [u for u in self._admin.get_users({"username": username, "exact": True, "briefRepresentation": False})
                 if u["username"] == username]
        if not users:
            raise LookupError(f"no user {username!r} in the realm")
        return self._person(users[0])

    def everyone(self) -> list[Person]:
        """Every user of the realm, sorted by username."""
        users = self._admin.get_users({"briefRepresentation": False})
        return sorted((self._person(u) for u in users), key=lambda p: p.username)


async def _opa(session: aiohttp.ClientSession, config: GatewayConfig, path: str, policy_input: Any) -> Any:
    async with session.post(f"{config.opa.url}/v1/data/{path}", json={"input": policy_input}) as resp:
        resp.raise_for_status()
        return (await resp.json()).get("result")


async def explain(config: GatewayConfig, person: Person, method: str, target: str, body: Any) -> dict[str, Any]:
    """Run the request path up to the decision (no forwarding) and collect every step.

    Returns:
        ``{"request", "hygiene", "route", "resource", "input", "decision", "rules"}``; a
        step that refused the request ends the document with ``refused_at``.
    """
    out: dict[str, Any] = {"request": {"method": method, "target": target, "user": person.username}}
    try:
        clean = check_target(method, target)
    except HygieneError as exc:
        out.update(refused_at="hygiene", hygiene={"status": exc.status, "code": exc.code, "en": exc.en, "zh": exc.zh})
        return out
    out["hygiene"] = {"ok": True, "segments": clean.segments}
    match = RouteMap.load(config.route_map).match(method, clean.segments)
    if match is None:
        out.update(refused_at="route", route=None)
        return out
    route = match.route
    out["route"] = {"method": route.method, "template": route.template, "module": route.module, "verb": route.verb,
                    "kind": route.kind, "line": f"{config.route_map}:{route.line}", "params": match.params}
    async with aiohttp.ClientSession() as session:
        resolver = AttributeResolver(session, config.upstream.url, config.upstream.lookup_headers, 0)
        try:
            resource = await resolver.resolve(route, RequestParts(match.params, clean.query, body))
        except ResolutionError as exc:
            out.update(refused_at="attributes", attributes_error=str(exc))
            return out
        out["resource"] = resource.policy_input()
        policy_input = build_policy_input(person.principal(), route, body, resource, method, "(explain)",
                                          int(time.time() * 1000))
        out["input"] = policy_input
        out["decision"] = (await _opa(session, config, config.opa.decision_path, policy_input)) or {}
        package = await _opa(session, config, config.opa.decision_path.rsplit("/", 1)[0], policy_input) or {}
    out["rules"] = {name: package.get(name) for name in
                    ("allow", "permitted", "in_scope", "resource_found", "required", "granted", "status")}
    return out


def render_explanation(doc: dict[str, Any]) -> str:
    """Human-readable text of :func:`explain`'s document."""
    req = doc["request"]
    lines = [f"请求 Request     {req['method']} {req['target']}  (user {req['user']})"]
    if doc.get("refused_at") == "hygiene":
        h = doc["hygiene"]
        return "\n".join(lines + [f"卫生 Hygiene     REFUSED {h['status']} {h['code']}: {h['zh']} / {h['en']}"])
    lines.append(f"卫生 Hygiene     ok, segments {' / '.join(doc['hygiene']['segments'])}")
    if doc.get("refused_at") == "route":
        return "\n".join(lines + ["路由 Route       NOT MAPPED -> 403 route_not_mapped (denied by default)"])
    r = doc["route"]
    lines.append(f"路由 Route       {r['method']} {r['template']} -> {r['module']}:{r['verb']} kind={r['kind']}"
                 f"  ({r['line']})")
    if doc.get("refused_at") == "attributes":
        return "\n".join(lines + [f"属性 Attributes  FAILED: {doc['attributes_error']}"])
    res = doc["resource"]
    attrs = "  ".join(f"{k}={v}" for k, v in res["attributes"].items()) or "(narrowed by the row filter)"
    lines.append(f"资源 Resource    id={res['id']}  {attrs}  found={res['found']}")
    subj = doc["input"]["subject"]
    scope = "  ".join(f"{k}={v}" for k, v in subj["scope"].items())
    lines.append(f"主体 Subject     roles={subj['roles']}  {scope}")
    d = parse_decision(doc["decision"])
    verdict = "ALLOW" if d.allow else f"DENY {d.status}"
    lines.append(f"决定 Decision    {verdict}  (policy {d.policy_revision})")
    rules = doc["rules"]
    lines.append(f"规则 Rules       allow={rules['allow']} = permitted={rules['permitted']} and "
                 f"in_scope={rules['in_scope']}  (resource_found={rules['resource_found']})")
    lines.append(f"                 required={sorted(rules['required'] or [])}")
    lines.append(f"                 granted={sorted(rules['granted'] or [])}")
    for reason in d.reasons:
        lines.append(f"原因 Reason      {reason.code}: {reason.zh} / {reason.en}")
    ob = d.obligations
    lines.append(f"义务 Obligations row_filter={ob.row_filter or {}}  mask={list(ob.mask)}")
    lines.append("发送给 OPA 的输入 Input sent to OPA:")
    lines.append(json.dumps(doc["input"], ensure_ascii=False, indent=2))
    return "\n".join(lines)


async def who_can(config: GatewayConfig, people: list[Person], module: str, verb: str,
                  filters: dict[str, str]) -> dict[str, Any]:
    """Roles whose permissions include ``module:verb`` and enabled people the policy lets do it
    on some resource (inside ``filters``, e.g. ``{"warehouse": "HF"}``, on dimensions the module has).

    Returns:
        ``{"permission", "filters", "roles": [...], "users": [{"username", "roles", "scope"}]}``.
    """
    perm = f"{module}:{verb}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{config.opa.url}/v1/data/wms/roles") as resp:
            resp.raise_for_status()
            role_data = (await resp.json()).get("result") or {}
        users = []
        for person in people:
            if not person.enabled:
                continue
            policy_input = {"subject": person.principal().policy_subject(),
                            "action": {"module": module, "verb": verb, "also": []},
                            "resource": {"kind": "list", "id": None, "attributes": {}, "found": True}}
            decision = parse_decision(await _opa(session, config, config.opa.decision_path, policy_input))
            if not decision.allow:
                continue
            row_filter = decision.obligations.row_filter
            if all(dim not in row_filter or "*" in row_filter[dim] or value in row_filter[dim]
                   for dim, value in filters.items()):
                users.append({"username": person.username, "roles": list(person.roles),
                              "scope": {k: list(v) for k, v in person.scope.items()}})
    roles = sorted(name for name, spec in role_data.items() if perm in (spec.get("permissions") or []))
    return {"permission": perm, "filters": filters, "roles": roles, "users": users}


def render_who_can(doc: dict[str, Any]) -> str:
    """Human-readable text of :func:`who_can`'s document."""
    where = ", ".join(f"{k}={v}" for k, v in doc["filters"].items())
    lines = [f"谁可以 Who can {doc['permission']}" + (f" ({where})" if where else "") + ":",
             f"  角色 roles: {', '.join(doc['roles']) or '(none)'}", "  用户 users:"]
    for u in doc["users"]:
        scope = "  ".join(f"{k}={','.join(v) or '-'}" for k, v in u["scope"].items())
        wms_roles = [r for r in u["roles"] if not r.startswith(("default-roles-", "offline_access", "uma_"))]
        lines.append(f"    {u['username']:<16} {','.join(wms_roles):<24} {scope}")
    if not doc["users"]:
        lines.append("    (none)")
    return "\n".join(lines)


def run(coro: Any) -> Any:
    """Run a coroutine from the synchronous CLI."""
    return asyncio.run(coro)
