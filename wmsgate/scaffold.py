"""``wmsgate init DIR``: a deployment folder for fronting one WMS.

The folder holds everything that is the deployment's, nothing that is the product's::

    gateway.yaml      the proxy (PEP): the WMS, Keycloak, OPA, audit, identity the WMS expects
    routes.yaml       the route map (drafted from the WMS's OpenAPI document when given)
    policy/           the deployment's policy layer: roles, modules, masks, high-risk table, tests
    realm.yaml        the Keycloak realm: its name, client ids, codes, roles, people for a trial
    alerting.yaml     the alerting service; alert-rules.yaml its thresholds
    secrets/          client secrets, tokens, the audit and policy signing keys (mode 0600)
    state/            databases and logs (made by ``wmsgate up``)

The product's own policy layer (``rego/base``: the rules and the gateway's own modules)
is built together with ``policy/``; a deployment never copies or edits it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from authorizer.audit.chain import generate_key
from wmsgate.openapi_import import draft_route_map
from wmsgate.tools import REPO


@dataclass(frozen=True)
class InitOptions:
    """What ``wmsgate init`` asks.

    Attributes:
        wms_url: the WMS's base URL.
        realm: the Keycloak realm name (client ids are derived from it).
        warehouses, channels, order_types: the codes people's data scopes may hold.
        port_offset: added to the default local ports (8080 proxy, 8180 Keycloak, 8181 OPA,
            8182 bundle service, 8070 alerting), so several stacks share a machine.
        tenant: the WMS has one tenant (credential) per warehouse.
        openapi: the WMS's OpenAPI document (parsed), to draft the route map from.
    """

    wms_url: str
    realm: str = "wms-site"
    warehouses: tuple[str, ...] = ("*",)
    channels: tuple[str, ...] = ("*",)
    order_types: tuple[str, ...] = ("*",)
    port_offset: int = 0
    tenant: bool = False
    openapi: dict[str, Any] | None = None


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)


def _yaml(header: str, data: dict[str, Any]) -> str:
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.strip("\n").splitlines()) + body


def new_secret(path: Path) -> None:
    """A random secret (URL-safe, 32 bytes of entropy) in ``path``, readable by its owner only."""
    _write(path, secrets.token_urlsafe(32) + "\n", 0o600)


def checklist(folder: Path, options: InitOptions) -> list[str]:
    """What ``init`` could not decide and a person must, in the order docs/onboarding.md takes it."""
    todo = sum(1 for line in (folder / "routes.yaml").read_text(encoding="utf-8").splitlines()
               if "TODO(wmsgate)" in line)
    items = []
    if todo:
        items.append(f"routes.yaml: {todo} route(s) marked TODO(wmsgate) to decide; then `wmsgate routes check`")
    items.append("routes.yaml: body fields naming who acts (body_identity), query allow lists, CSV column labels")
    if options.tenant:
        wanted = [wh for wh in options.warehouses if wh != "*"]
        items.append(f"secrets/: the WMS's tenant credentials, one file each: "
                     f"{', '.join(f'wms-token-{wh}' for wh in wanted) or '(name your warehouses with --warehouses)'}")
    else:
        items.append("gateway.yaml upstream.credentials: the secret(s) your WMS wants, if any")
    items.append("gateway.yaml upstream.identity_headers: how the WMS learns who acts (e.g. operator: "
                 "\"{attr:wms_staff_id}\" with the attribute in realm.yaml)")
    items.append("gateway.yaml upstream.answers.status_field: set it if the WMS reports failures inside a 200")
    items.append("policy/wms/masks/data.yaml: empty; until you add masks every field reaches everyone allowed")
    items.append("realm.yaml: roles, attributes, people; then `wmsgate policy check --policy policy`")
    return items


def scaffold(folder: Path, options: InitOptions) -> list[Path]:
    """Write a deployment folder.

    Returns:
        The files written.

    Raises:
        FileExistsError: ``folder`` exists and is not empty (nothing is overwritten).
    """
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty; init writes only into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    o = options.port_offset
    ports = {"proxy": 8080 + o, "keycloak": 8180 + o, "opa": 8181 + o, "policy": 8182 + o, "alerting": 8070 + o}
    clients = {"gateway": f"{options.realm}-gateway", "access_admin": f"{options.realm}-access-admin",
               "alerting": f"{options.realm}-alerting", "cli": f"{options.realm}-cli"}
    sec = folder / "secrets"
    for client in ("gateway", "access_admin", "alerting"):
        new_secret(sec / f"{clients[client]}.secret")
    new_secret(sec / "events.secret")
    new_secret(sec / "alerting-api.token")
    new_secret(sec / "mask-hash.key")
    generate_key(sec / "audit-signing-key.pem")
    (sec / "audit-signing-key.pem").chmod(0o600)
    _write(sec / "README.md", "Secrets of this deployment (never commit them): client secrets of the realm's\n"
           "confidential clients, the events HMAC key, the alerting API token, the masking hash key,\n"
           "the audit and policy signing keys, and the WMS credential files you add (see gateway.yaml,\n"
           "upstream.credentials).\n")
    routes_text, modules = _routes(options)
    _write(folder / "routes.yaml", routes_text)
    _write(folder / "gateway.yaml", _gateway_yaml(options, ports, clients))
    _write(folder / "alerting.yaml", _alerting_yaml(options, ports, clients))
    rules = (REPO / "config" / "alert-rules.yaml").read_text(encoding="utf-8")
    # the gateway's own service account is this realm's (its changes are policy-decided and audited)
    _write(folder / "alert-rules.yaml", rules.replace("service-account-wms-access-admin",
                                                      f"service-account-{clients['access_admin']}"))
    _write(folder / "realm.yaml", _realm_yaml(options, clients))
    _policy(folder / "policy", modules, options.tenant)
    _write(folder / "README.md", _readme(folder, options, ports))
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _routes(options: InitOptions) -> tuple[str, list[str]]:
    if options.openapi is not None:
        text, drafts = draft_route_map(options.openapi, "warehouse" if options.tenant else None)
        return text, sorted({d.module for d in drafts})
    text = ("# The route map: which WMS endpoint is which module:verb on which resource.\n"
            "# Draft it from the WMS's OpenAPI document: wmsgate routes import-openapi SPEC.json -o routes.yaml\n"
            "# Anything not listed is refused (route_not_mapped). See docs/onboarding.md.\n"
            "version: 1\n\nroutes:\n"
            "  - route: GET /\n    module: portal\n    verb: view\n    kind: aggregate\n"
            "    note: the WMS's start page\n")
    return text, []


def _gateway_yaml(options: InitOptions, ports: dict[str, int], clients: dict[str, str]) -> str:
    issuer = f"http://127.0.0.1:{ports['keycloak']}/realms/{options.realm}"
    public = f"http://127.0.0.1:{ports['proxy']}"
    upstream: dict[str, Any] = {
        "url": options.wms_url.rstrip("/"),
        "timeout_seconds": 30,
        "identity_headers": {"X-WMS-User": "{username}"},
        "credentials": [],
        "health": {"path": "/", "expect_status": [200]},
        "answers": {"status_field": None, "origins": []},
    }
    if options.tenant:
        upstream["tenant"] = {"dimension": "warehouse", "query_param": "warehouse"}
        upstream["credentials"] = [{"header": "token", "per_warehouse": {
            wh: f"secrets/wms-token-{wh}" for wh in options.warehouses if wh != "*"}}]
    data = {
        "listen": {"host": "127.0.0.1", "port": ports["proxy"]},
        "public_url": public,
        "enforcement": "report",
        "oidc": {"issuer": issuer, "audience": clients["gateway"]},
        "opa": {"url": f"http://127.0.0.1:{ports['opa']}", "decision_path": "wms/authz/decision",
                "policy_status_url": f"http://127.0.0.1:{ports['policy']}/status"},
        "upstream": upstream,
        "audit": {"url": "sqlite+aiosqlite:///state/audit.db", "signing_key_file": "secrets/audit-signing-key.pem",
                  "spool_file": "state/audit-spool.jsonl"},
        "masking": {"hash_key_file": "secrets/mask-hash.key"},
        "route_map": "routes.yaml",
        "keycloak_admin": {"client_id": clients["access_admin"],
                           "client_secret_file": f"secrets/{clients['access_admin']}.secret"},
        "sso": {"client_id": clients["gateway"], "client_secret_file": f"secrets/{clients['gateway']}.secret",
                "public_url": public},
        "alerting": {"url": f"http://127.0.0.1:{ports['alerting']}", "api_token_file": "secrets/alerting-api.token"},
    }
    header = f"""Gateway (PEP) of this deployment, made by `wmsgate init`. Relative paths are relative to
this file. Start everything with `wmsgate up --config {'{this folder}'}`; see docs/onboarding.md.

enforcement: report = shadow mode: decisions are made and audited (would_deny), nothing is
refused yet; `wmsgate shadow report --config gateway.yaml` shows what would be. Switch routes
(routes.yaml: enforcement: enforce) or everything (enforce) when the report is understood.

upstream: what your WMS expects.
  identity_headers: headers the WMS receives ({{username}}, {{user_id}}, {{roles}}, {{attr:CLAIM}},
    e.g. operator: "{{attr:wms_staff_id}}" for a staff id per warehouse from realm.yaml's attributes)
  credentials: secrets the WMS wants (file: one; per_warehouse: one per tenant); format: "Token {{secret}}"
  tenant: one credential per warehouse, rows without a warehouse field (GreaterWMS and the like)
  health: the path /_gateway/health probes and the statuses that mean "up"
  answers.status_field: the JSON member a WMS reports failures in inside a 200 (e.g. status_code)
  answers.origins: other absolute origins the WMS writes into links (rewritten to public_url)"""
    return _yaml(header, data)


def _alerting_yaml(options: InitOptions, ports: dict[str, int], clients: dict[str, str]) -> str:
    data = {
        "listen": {"host": "127.0.0.1", "port": ports["alerting"]},
        "store": {"url": "sqlite+aiosqlite:///state/alerts.db"},
        "intake": {"secret_file": "secrets/events.secret"},
        "api": {"token_file": "secrets/alerting-api.token"},
        "keycloak": {"url": f"http://127.0.0.1:{ports['keycloak']}", "realm": options.realm,
                     "client_id": clients["alerting"], "client_secret_file": f"secrets/{clients['alerting']}.secret",
                     "backfill_interval_seconds": 30},
        "gateway_audit": {"url": "sqlite+aiosqlite:///state/audit.db"},
        "rules": "alert-rules.yaml",
        "console_url": f"http://127.0.0.1:{ports['proxy']}",
        "notifiers": [],
    }
    return _yaml("Alerting service of this deployment (see the product's config/alerting.yaml for every\n"
                 "setting and notifier kind: webhook, DingTalk, WeCom, Slack, e-mail).", data)


def _realm_yaml(options: InitOptions, clients: dict[str, str]) -> str:
    data = {
        "realm": options.realm,
        "display_name": f"{options.realm} 仓库网关 / warehouse gateway",
        "clients": clients,
        "client_secrets_dir": "secrets",
        "codes": {"warehouse": list(options.warehouses), "channel": list(options.channels),
                  "order_type": list(options.order_types)},
        "roles": {"staff": {"zh-CN": "仓库员工", "en": "Warehouse staff"},
                  "manager": {"zh-CN": "仓库主管", "en": "Warehouse manager"}},
        "attributes": {},
        "users": [],
    }
    return _yaml("Keycloak realm of this deployment: `wmsgate up` creates it, `wmsgate realm --site realm.yaml`\n"
                 "prints it. attributes: user attributes mapped into access tokens (for {attr:NAME} in\n"
                 "gateway.yaml), e.g. wms_staff_id: {zh-CN: 员工编号, en: staff id, multivalued: true} with\n"
                 "values such as [\"HF:12\", \"SH:7\"]. users: people for a trial only (production: HR / LDAP).", data)


def _policy(policy: Path, modules: list[str], tenant: bool) -> None:
    dims = ["warehouse"]
    module_data = {m: {"title": {"zh-CN": m, "en": m}, "dimensions": dims} for m in modules if m != "portal"}
    if not module_data:
        module_data = {"goods": {"title": {"zh-CN": "商品", "en": "Goods"}, "dimensions": dims}}
    first = next(iter(module_data))
    views = sorted(f"{m}:view" for m in module_data)
    _write(policy / "wms" / "modules" / "data.yaml", _yaml(
        "Your WMS's modules and the data-scope dimensions their resources carry. The gateway's own\n"
        "modules (portal, audit, iam, alerts, sysadmin) come from the product's base layer.", module_data))
    _write(policy / "wms" / "roles" / "data.yaml", _yaml(
        "Roles -> module:verb permissions (RBAC). sysadmin's gateway permissions come from the base layer;\n"
        "permissions listed here are added to them.", {
            "staff": {"title": {"zh-CN": "仓库员工", "en": "Warehouse staff"}, "permissions": ["portal:view", *views]},
            "manager": {"title": {"zh-CN": "仓库主管", "en": "Warehouse manager"},
                        "permissions": ["portal:view", *views, *sorted(f"{m}:{v}" for m in module_data
                                                                       for v in ("create", "update", "export"))]},
            "sysadmin": {"title": {"zh-CN": "系统管理员", "en": "System administrator"},
                         "permissions": ["portal:view"]},
        }))
    _write(policy / "wms" / "masks" / "data.yaml", "# Fields masked without a permission, e.g.\n"
           "# goods: [{permission: goods_cost:view, fields: [goods_cost, \"**.phone\"]}]\n{}\n")
    _write(policy / "wms" / "high_risk" / "data.yaml", "# Your WMS's high-risk operations (step-up MFA, four-eyes\n"
           "# approval), e.g. stock_adjust: {title: {zh-CN: 库存调整, en: adjust stock}, when: {module: stock,\n"
           "# verbs: [update]}, step_up: {acr: mfa, max_age_seconds: 300}, "
           "approval: {approvals: 1, expires_hours: 24}}\n"
           "operations: {}\n")
    scope = '{"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}'
    _write(policy / "wms" / "authz" / "site_test.rego",
           f"""# Tests of this deployment's policy data (run by `wmsgate policy check`, and before every
# bundle the bundle service serves). Add one for each rule you rely on.
package wms.authz_test

import data.wms.authz

site_person(roles) := {{"id": "u1", "username": "tester", "roles": roles, "scope": {scope}}}

site_ask(roles, verb, warehouse) := {{
	"subject": site_person(roles),
	"action": {{"module": "{first}", "verb": verb}},
	"resource": {{"kind": "item", "id": "1", "attributes": {{"warehouse": [warehouse]}}}},
}}

test_staff_view_{first.replace('.', '_')}_in_their_warehouse if {{
	authz.decision.allow with input as site_ask(["staff"], "view", "HF")
}}

test_staff_never_see_another_warehouse if {{
	not authz.decision.allow with input as site_ask(["staff"], "view", "SH")
}}

test_staff_do_not_change_{first.replace('.', '_')} if {{
	not authz.decision.allow with input as site_ask(["staff"], "update", "HF")
}}
""")


def _readme(folder: Path, options: InitOptions, ports: dict[str, int]) -> str:
    return f"""# {options.realm}: wmsgate deployment folder

Made by `wmsgate init`. Next steps (docs/onboarding.md explains each):

1. `routes.yaml`: check every route; decide the ones marked `TODO(wmsgate)`; \
`wmsgate routes check --config gateway.yaml`.
2. `gateway.yaml`: the identity and credentials your WMS expects (`upstream:`); WMS credential files in `secrets/`.
3. `policy/`: your roles, modules, masks, high-risk operations and their tests; `wmsgate policy check --policy policy`.
4. `realm.yaml`: realm, codes, roles, attributes (staff ids), trial users.
5. `wmsgate up --config {folder}` (proxy http://127.0.0.1:{ports['proxy']}, Keycloak http://127.0.0.1:{ports['keycloak']}).
6. It starts in report mode: `wmsgate shadow report --config gateway.yaml`, then switch to `enforcement: enforce`.
"""


def load_openapi(path: Path) -> dict[str, Any]:
    """An OpenAPI document from a JSON or YAML file.

    Raises:
        ValueError: it cannot be parsed.
    """
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not JSON or YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an OpenAPI document")
    return data
