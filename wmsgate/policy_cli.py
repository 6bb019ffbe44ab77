"""``wmsgate policy explain`` and ``wmsgate policy who-can``: answers for admins, from the real policy.

Both read people from Keycloak (admin API) and ask OPA, so they show what the
gateway would decide, not a re-implementation of the policy.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import urlsplit

from authorizer.authn.identity import SCOPE_DIMENSIONS
from authorizer.authz.pdp import parse_decision
from authorizer.config import GatewayConfig
from keycloak import KeycloakAdmin
from proxy.explain import Person, explain, who_can

__all__ = ["Directory", "Person", "explain", "render_explanation", "render_who_can", "run", "who_can"]


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
    if doc.get("refused_at") == "query":
        names = ", ".join(doc["query"]["parameters"])
        return "\n".join(lines + [f"查询 Query       REFUSED 400 query_parameter_not_allowed: {names}"])
    if doc.get("refused_at") == "tenant":
        t = doc["tenant"]
        return "\n".join(lines + [f"租户 Tenant      REFUSED 400 {t['code']}: {t['zh']} / {t['en']}"])
    if doc.get("tenant"):
        lines.append(f"租户 Tenant      {doc['tenant']}")
    if doc.get("refused_at") in ("attributes", "credentials"):
        error = doc.get("attributes_error") or doc.get("credentials_error")
        return "\n".join(lines + [f"属性 Attributes  FAILED: {error}"])
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
    if doc.get("refused_at") == "masked_lookup":
        names = ", ".join(doc["masked_lookup"]["parameters"])
        lines.append(f"网关 Gateway     REFUSED 403 filter_on_masked_field (after the policy allowed): {names}")
    lines.append("发送给 OPA 的输入 Input sent to OPA:")
    lines.append(json.dumps(doc["input"], ensure_ascii=False, indent=2))
    return "\n".join(lines)


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
