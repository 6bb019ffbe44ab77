"""A deployment's Keycloak realm, from its ``realm.yaml`` and the production template.

``keycloak/realm/`` is the product's template (realm ``wms``, clients ``wms-gateway``...,
the demo's warehouse and channel codes). A deployment names its own: the realm, the
client ids, the codes its people's data scopes may hold, its roles, the user attributes
its WMS identity needs in the token (a staff id per warehouse), and, for a trial, some
people. ``wmsgate realm --site DIR/realm.yaml`` prints the result; ``wmsgate up`` applies it.

``realm.yaml``::

    realm: acme-wms
    display_name: ACME 仓库 / ACME warehouses
    clients: {gateway: acme-gateway, access_admin: acme-access-admin, alerting: acme-alerting, cli: acme-cli}
    client_secrets_dir: secrets          # <client id>.secret files (made by wmsgate init)
    codes: {warehouse: [HF, SH], channel: [taobao, jd], order_type: [b2c, b2b]}
    roles: {clerk: {zh-CN: 文员, en: Clerk}, receiver: {zh-CN: 收货员, en: Receiver}}
    attributes: {wms_staff_id: {zh-CN: WMS 员工编号, en: WMS staff id, multivalued: true}}
    cli_redirect: http://127.0.0.1:8765/callback
    users:                                # a trial only; production people come from HR / LDAP
      - {username: clerk.hf, password: ..., roles: [clerk], warehouse: [HF], attributes: {wms_staff_id: ["HF:12"]}}
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from authorizer.authz.scope import SCOPE_DIMENSIONS
from wmsgate.realm import REALM_DIR, build_realm

TEMPLATE_CLIENTS = {"gateway": "wms-gateway", "access_admin": "wms-access-admin", "alerting": "wms-alerting"}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class SiteRealmError(ValueError):
    """``realm.yaml`` is missing a setting or names an impossible one."""


@dataclass(frozen=True)
class SiteRealm:
    """A deployment's realm settings (see the module docstring)."""

    realm: str
    display_name: str
    clients: dict[str, str]
    codes: dict[str, list[str]]
    roles: dict[str, dict[str, str]]
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    cli_redirect: str = "http://127.0.0.1:8765/callback"

    @classmethod
    def load(cls, path: Path) -> SiteRealm:
        """Read and check ``realm.yaml``; client secrets are read from ``client_secrets_dir``.

        Raises:
            SiteRealmError: unreadable, or a required or invalid setting.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SiteRealmError(f"{path}: cannot read: {exc}") from exc
        known = {"realm", "display_name", "clients", "client_secrets_dir", "codes", "roles", "attributes", "users",
                 "cli_redirect"}
        if unknown := set(data) - known:
            raise SiteRealmError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        realm = str(data.get("realm") or "")
        if not _NAME.match(realm):
            raise SiteRealmError(f"{path}: realm must be a name (letters, digits, . _ -)")
        clients = {**TEMPLATE_CLIENTS, "cli": f"{realm}-cli", **(data.get("clients") or {})}
        if set(clients) - {*TEMPLATE_CLIENTS, "cli"} or not all(_NAME.match(str(v)) for v in clients.values()):
            raise SiteRealmError(f"{path}: clients are gateway, access_admin, alerting and cli, each a client id")
        codes = {dim: [str(c) for c in (data.get("codes") or {}).get(dim, ["*"])] for dim in SCOPE_DIMENSIONS}
        if set(data.get("codes") or {}) - set(SCOPE_DIMENSIONS):
            raise SiteRealmError(f"{path}: codes are given for {', '.join(SCOPE_DIMENSIONS)}")
        roles = data.get("roles") or {}
        if not isinstance(roles, dict) or not roles or not all(_NAME.match(str(r)) for r in roles):
            raise SiteRealmError(f"{path}: roles must map role names to {{zh-CN, en}} titles")
        attributes = data.get("attributes") or {}
        if not all(re.match(r"^[a-z][a-z0-9_]*$", a) for a in attributes):
            raise SiteRealmError(f"{path}: attribute names are lower-case identifiers (wms_staff_id)")
        secrets_dir = path.parent / str(data.get("client_secrets_dir", "secrets"))
        secrets = {}
        for key in TEMPLATE_CLIENTS:
            secret_file = secrets_dir / f"{clients[key]}.secret"
            if secret_file.exists():
                secrets[key] = secret_file.read_text(encoding="utf-8").strip()
        users = list(data.get("users") or [])
        for user in users:
            undefined = set(user.get("roles", [])) - set(roles) - {"sysadmin"}
            if undefined:
                raise SiteRealmError(f"{path}: user {user.get('username')} has undefined role(s) {sorted(undefined)}")
        return cls(realm, str(data.get("display_name") or realm), {k: str(v) for k, v in clients.items()}, codes,
                   {str(k): dict(v or {}) for k, v in roles.items()}, dict(attributes), users, secrets,
                   str(data.get("cli_redirect") or cls.cli_redirect))


def _attribute_profile(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "displayName": f"{spec.get('zh-CN', name)} / {spec.get('en', name)}", "group": "wms-scope",
            "multivalued": bool(spec.get("multivalued", True)),
            "permissions": {"view": ["admin"], "edit": ["admin"]}}


def _attribute_mapper(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"identity: {name}", "protocol": "openid-connect",
            "protocolMapper": "oidc-usermodel-attribute-mapper",
            "config": {"user.attribute": name, "claim.name": name, "jsonType.label": "String",
                       "multivalued": "true" if spec.get("multivalued", True) else "false",
                       "access.token.claim": "true", "id.token.claim": "false", "userinfo.token.claim": "false",
                       "introspection.token.claim": "true"}}


def _user(spec: dict[str, Any], site: SiteRealm) -> dict[str, Any]:
    attributes = {f"wms_{dim}": [str(v) for v in spec.get(dim, ["*"])] for dim in SCOPE_DIMENSIONS}
    attributes.update({k: [str(x) for x in (v if isinstance(v, list) else [v])]
                       for k, v in (spec.get("attributes") or {}).items()})
    credentials = [{"type": "password", "value": str(spec["password"]), "temporary": bool(spec.get("temporary"))}] \
        if spec.get("password") else []
    return {"username": spec["username"], "enabled": True, "firstName": spec.get("first_name", spec["username"]),
            "lastName": spec.get("last_name", site.realm),
            "email": spec.get("email", f"{spec['username']}@example.com"),
            "emailVerified": True, "realmRoles": list(spec.get("roles", [])), "attributes": attributes,
            "credentials": credentials}


def build_site_realm(site: SiteRealm, gateway_url: str | None = None, realm_dir: Path = REALM_DIR) -> dict[str, Any]:
    """The deployment's ``RealmRepresentation``: the production template with its names and data.

    Args:
        site: the deployment's realm settings.
        gateway_url: the gateway's public URL (login callback, logout addresses).
        realm_dir: the template folder.
    """
    rep = build_realm(demo=False, realm_dir=realm_dir, gateway_url=gateway_url)
    rep["realm"], rep["displayName"] = site.realm, site.display_name
    renames = {TEMPLATE_CLIENTS[k]: site.clients[k] for k in TEMPLATE_CLIENTS}
    mappers = [_attribute_mapper(n, s) for n, s in site.attributes.items()]
    for client in rep["clients"]:
        key = next(k for k, v in TEMPLATE_CLIENTS.items() if v == client["clientId"])
        client["clientId"] = renames[client["clientId"]]
        if key in site.secrets:
            client["secret"] = site.secrets[key]
        for mapper in client.get("protocolMappers") or []:
            if mapper["protocolMapper"] == "oidc-audience-mapper":
                mapper["name"] = f"{site.clients['gateway']} audience"
                mapper["config"]["included.client.audience"] = site.clients["gateway"]
        if key == "gateway":
            client["protocolMappers"] = [*client.get("protocolMappers", []), *copy.deepcopy(mappers)]
    gateway_mappers = next(c for c in rep["clients"] if c["clientId"] == site.clients["gateway"])["protocolMappers"]
    rep["clients"].append({
        "clientId": site.clients["cli"], "name": f"{site.display_name} 命令行 / command line", "enabled": True,
        "protocol": "openid-connect", "publicClient": True, "directAccessGrantsEnabled": True,
        "standardFlowEnabled": True, "redirectUris": [site.cli_redirect],
        "attributes": {"pkce.code.challenge.method": "S256"}, "protocolMappers": copy.deepcopy(gateway_mappers)})
    for user in rep.get("users", []):
        if user.get("serviceAccountClientId") in renames:
            user["serviceAccountClientId"] = renames[user["serviceAccountClientId"]]
            user["username"] = f"service-account-{user['serviceAccountClientId']}"
    roles = dict(site.roles)
    roles.setdefault("sysadmin", {"zh-CN": "系统管理员", "en": "System administrator"})
    rep["roles"]["realm"] = [{"name": name, "description": f"{t.get('zh-CN', name)} / {t.get('en', name)}"}
                             for name, t in roles.items()]
    for component in rep["components"]["org.keycloak.userprofile.UserProfileProvider"]:
        profile = json.loads(component["config"]["kc.user.profile.config"][0])
        for attribute in profile["attributes"]:
            dim = attribute["name"].removeprefix("wms_")
            if dim in site.codes and "options" in attribute.get("validations", {}):
                attribute["validations"]["options"]["options"] = sorted({"*", *site.codes[dim]})
        profile["attributes"].extend(_attribute_profile(n, s) for n, s in site.attributes.items())
        component["config"]["kc.user.profile.config"] = [json.dumps(profile, ensure_ascii=False)]
    rep["users"] = rep.get("users", []) + [_user(u, site) for u in site.users]
    return rep
