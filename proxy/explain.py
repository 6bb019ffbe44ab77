"""Why would the policy allow or deny a request, and who may do something: answers from the real
policy (OPA) and route map, for ``wmsgate policy ...`` and the console's pages.

Nothing here re-implements the policy: the request goes through the proxy's own
hygiene check, route map and attribute resolution, then OPA decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from authorizer.attributes import AttributeResolver, RequestParts, ResolutionError
from authorizer.config import GatewayConfig
from authorizer.identity import Principal
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


def _timeout(config: GatewayConfig) -> aiohttp.ClientTimeout:
    """OPA's and the WMS's configured time limits (the larger), for one call."""
    return aiohttp.ClientTimeout(total=max(config.opa.timeout_seconds, min(config.upstream.timeout_seconds, 10.0)))


async def ask_opa(session: aiohttp.ClientSession, config: GatewayConfig, path: str, policy_input: Any) -> Any:
    """The ``result`` of OPA's data API at ``path`` (e.g. ``wms/authz/decision``) for ``policy_input``.

    Raises:
        aiohttp.ClientError: OPA failed or answered an error status.
    """
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
    async with aiohttp.ClientSession(timeout=_timeout(config)) as session:
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
        out["decision"] = (await ask_opa(session, config, config.opa.decision_path, policy_input)) or {}
        package = await ask_opa(session, config, config.opa.decision_path.rsplit("/", 1)[0], policy_input) or {}
    out["rules"] = {name: package.get(name) for name in
                    ("allow", "permitted", "in_scope", "resource_found", "required", "granted", "status")}
    return out


async def who_can(config: GatewayConfig, people: list[Person], module: str, verb: str,
                  filters: dict[str, str]) -> dict[str, Any]:
    """Roles whose permissions include ``module:verb`` and enabled people the policy lets do it
    on some resource (inside ``filters``, e.g. ``{"warehouse": "HF"}``, on dimensions the module has).

    Returns:
        ``{"permission", "filters", "roles": [...], "users": [{"username", "roles", "scope"}]}``.
    """
    perm = f"{module}:{verb}"
    async with aiohttp.ClientSession(timeout=_timeout(config)) as session:
        async with session.get(f"{config.opa.url}/v1/data/wms/authz/role_permissions") as resp:  # both layers
            resp.raise_for_status()
            role_data = (await resp.json()).get("result") or {}
        users = []
        for person in people:
            if not person.enabled:
                continue
            policy_input = {"subject": person.principal().policy_subject(),
                            "action": {"module": module, "verb": verb, "also": []},
                            "resource": {"kind": "list", "id": None, "attributes": {}, "found": True}}
            decision = parse_decision(await ask_opa(session, config, config.opa.decision_path, policy_input))
            if not decision.allow:
                continue
            row_filter = decision.obligations.row_filter
            if all(dim not in row_filter or "*" in row_filter[dim] or value in row_filter[dim]
                   for dim, value in filters.items()):
                users.append({"username": person.username, "roles": list(person.roles),
                              "scope": {k: list(v) for k, v in person.scope.items()}})
    roles = sorted(name for name, perms in role_data.items() if perm in (perms or []))
    return {"permission": perm, "filters": filters, "roles": roles, "users": users}
