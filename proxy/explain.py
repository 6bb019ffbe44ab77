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

from authorizer.authn.identity import Principal
from authorizer.authz.attributes import AttributeResolver, RequestParts, ResolutionError, source_values
from authorizer.authz.pdp import parse_decision
from authorizer.authz.policy_input import build_policy_input
from authorizer.authz.query_params import masked_lookups, refused_parameters
from authorizer.authz.routes import RouteMap
from authorizer.authz.tenancy import TenantError, choose_tenant
from authorizer.config import GatewayConfig
from authorizer.enforce.obligations import column_names
from proxy.hygiene import HygieneError, check_target
from proxy.responses import Refusal
from proxy.upstream_identity import UpstreamIdentity


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
    refused = refused_parameters(clean.query, route.query, frozenset(
        {config.upstream.tenant.query_param} if config.upstream.tenant and config.upstream.tenant.query_param
        else ()))
    if refused:
        out.update(refused_at="query", query={"code": "query_parameter_not_allowed", "parameters": refused})
        return out
    parts = RequestParts(match.params, clean.query, body)
    tenant: tuple[str, str] | None = None
    if config.upstream.tenant is not None:  # the WMS tenant, chosen as the proxy chooses it
        settings = config.upstream.tenant
        source = route.attributes.get(settings.dimension)
        try:
            tenant = settings.dimension, choose_tenant(settings, clean.query,
                                                       source_values(source, parts) if source else [],
                                                       person.principal())
        except TenantError as exc:
            out.update(refused_at="tenant", tenant={"code": exc.code, "en": exc.en, "zh": exc.zh})
            return out
        out["tenant"] = tenant[1]
    async with aiohttp.ClientSession(timeout=_timeout(config)) as session:
        resolver = AttributeResolver(session, config.upstream.url, config.upstream.lookup_headers, 0)
        try:
            credentials = UpstreamIdentity(config.upstream).credentials(tenant[1]) if tenant else None
            resource = await resolver.resolve(route, parts, tenant, credentials)
        except Refusal as refusal:  # no WMS credential for that tenant
            out.update(refused_at="credentials", credentials_error=refusal.en)
            return out
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
    lookups = masked_lookups(clean.query, route.query, column_names(tuple(
        (out["decision"].get("obligations") or {}).get("mask") or ())))
    if out["decision"].get("allow") and lookups:  # the PEP's own check after the policy allowed
        out.update(refused_at="masked_lookup", masked_lookup={"code": "filter_on_masked_field", "parameters": lookups})
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
