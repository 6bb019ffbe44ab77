"""Onboarding: the OpenAPI draft of a route map, the deployment folder `wmsgate init` writes, and
the realm a deployment's realm.yaml makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from authorizer.authz.routes import RouteMap
from authorizer.config import load_config
from wmsgate.openapi_import import draft_route, draft_route_map
from wmsgate.scaffold import InitOptions, scaffold
from wmsgate.site_realm import SiteRealm, SiteRealmError, build_site_realm
from wmsgate.tools import REPO

SPEC = json.loads((REPO / "tests" / "fixtures" / "drf_wms" / "openapi.json").read_text(encoding="utf-8"))


def test_the_draft_is_a_valid_route_map_with_modules_verbs_and_kinds() -> None:
    text, drafts = draft_route_map(SPEC, "warehouse")
    routes = {r.key: r for r in RouteMap.from_text(text, "draft.yaml").routes}
    assert (routes["GET /goods/"].kind, routes["GET /goods/"].verb) == ("list", "view")
    assert routes["GET /goods/"].list_spec is not None and routes["GET /goods/"].list_spec.rows == "results"
    assert (routes["GET /goods/{id}/"].kind, routes["GET /goods/{id}/"].resource_id) == ("item", "{path.id}")
    assert (routes["GET /goods/file/"].verb, routes["GET /goods/file/"].kind) == ("export", "aggregate")
    assert routes["POST /asn/list/"].module == "asn" and routes["POST /asn/list/"].verb == "create"
    assert all(r.uses_tenant for r in routes.values() if r.kind != "list")


def test_what_the_document_cannot_tell_is_marked_not_guessed_silently() -> None:
    text, drafts = draft_route_map(SPEC, "warehouse")
    todo = {f"{d.method} {d.template}" for d in drafts if d.todo}
    assert todo == {"GET /stock/bin/", "POST /cyclecount/qtyconfirm/"}
    assert text.count("# TODO(wmsgate)") == 2


@pytest.mark.parametrize("method, path, verb, kind", [
    ("post", "/api/v1/orders/{id}/pick/", "pick", "item"),
    ("post", "/api/v1/orders/batch_delete/", "delete", "bulk"),
    ("delete", "/api/v1/orders/{id}/", "delete", "item"),
    ("patch", "/api/v1/orders/{id}/", "update", "item"),
    ("get", "/api/v1/reports/export/", "export", "aggregate"),
])
def test_action_words_and_methods_give_the_verb(method: str, path: str, verb: str, kind: str) -> None:
    draft = draft_route(method, path, {"responses": {}}, {}, None)
    assert (draft.module, draft.verb, draft.kind) == (path.split("/")[3], verb, kind)


def test_without_tenants_item_scope_is_left_to_decide() -> None:
    draft = draft_route("get", "/goods/{id}/", {"responses": {}}, {}, None)
    assert draft.todo and "TODO" in draft.fields["note"]


def test_a_document_that_is_not_openapi_3_is_refused() -> None:
    with pytest.raises(ValueError, match="OpenAPI 3"):
        draft_route_map({"swagger": "2.0", "paths": {}})


def test_init_writes_a_folder_whose_config_routes_and_realm_load(tmp_path: Path) -> None:
    folder = tmp_path / "acme"
    files = scaffold(folder, InitOptions("http://127.0.0.1:9000", realm="acme", warehouses=("HF", "SH"),
                                         port_offset=100, tenant=True, openapi=SPEC))
    assert folder / "policy" / "wms" / "authz" / "site_test.rego" in files
    for wh in ("HF", "SH"):  # the WMS's own credentials are the team's to add
        (folder / "secrets" / f"wms-token-{wh}").write_text("t\n", encoding="utf-8")
    config = load_config(folder / "gateway.yaml")
    assert config.port == 8180 and config.enforcement == "report" and config.upstream.tenant is not None
    assert config.audit.url == f"sqlite+aiosqlite:///{folder / 'state' / 'audit.db'}"
    assert config.oidc.audience == "acme-gateway" and config.sso is not None and config.sso.client_secret
    assert len(RouteMap.load(config.route_map).routes) == 10
    realm = build_site_realm(SiteRealm.load(folder / "realm.yaml"))
    assert realm["realm"] == "acme"
    assert all((p.stat().st_mode & 0o077) == 0 for p in (folder / "secrets").glob("*.secret"))
    modules = yaml.safe_load((folder / "policy" / "wms" / "modules" / "data.yaml").read_text(encoding="utf-8"))
    assert {"goods", "asn", "dn", "stock", "cyclecount"} <= set(modules)


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "gateway.yaml").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError):
        scaffold(tmp_path / "x", InitOptions("http://127.0.0.1:9000"))
    assert (tmp_path / "x" / "gateway.yaml").read_text(encoding="utf-8") == "mine"


def _realm_yaml(tmp_path: Path, **extra: object) -> Path:
    doc = {"realm": "acme", "clients": {"gateway": "acme-gw"}, "codes": {"warehouse": ["HF", "SH"]},
           "roles": {"clerk": {"zh-CN": "文员", "en": "Clerk"}},
           "attributes": {"wms_staff_id": {"zh-CN": "员工编号", "en": "staff id"}}, **extra}
    path = tmp_path / "realm.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_the_realm_takes_its_name_clients_codes_roles_and_attribute_claims_from_config(tmp_path: Path) -> None:
    rep = build_site_realm(SiteRealm.load(_realm_yaml(tmp_path, users=[
        {"username": "clerk.hf", "password": "x", "roles": ["clerk"], "warehouse": ["HF"],
         "attributes": {"wms_staff_id": ["HF:12"]}}])), "https://gw.example.com")
    assert rep["realm"] == "acme"
    gateway = next(c for c in rep["clients"] if c["clientId"] == "acme-gw")
    assert gateway["redirectUris"] == ["https://gw.example.com/_gateway/auth/callback"]
    audience = next(m for m in gateway["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper")
    assert audience["config"]["included.client.audience"] == "acme-gw"
    assert any(m["config"].get("claim.name") == "wms_staff_id" for m in gateway["protocolMappers"])
    assert {r["name"] for r in rep["roles"]["realm"]} == {"clerk", "sysadmin"}
    profile = json.loads(rep["components"]["org.keycloak.userprofile.UserProfileProvider"][0]["config"]
                         ["kc.user.profile.config"][0])
    warehouse = next(a for a in profile["attributes"] if a["name"] == "wms_warehouse")
    assert warehouse["validations"]["options"]["options"] == ["*", "HF", "SH"]
    assert any(a["name"] == "wms_staff_id" for a in profile["attributes"])
    clerk = next(u for u in rep["users"] if u["username"] == "clerk.hf")
    assert clerk["attributes"]["wms_staff_id"] == ["HF:12"] and clerk["attributes"]["wms_warehouse"] == ["HF"]
    assert {u["username"] for u in rep["users"] if u.get("serviceAccountClientId")} == {
        "service-account-wms-access-admin", "service-account-wms-alerting"}


@pytest.mark.parametrize("extra, message", [
    ({"realm": "bad realm"}, "realm must be a name"),
    ({"roles": {}}, "roles must map"),
    ({"users": [{"username": "u", "roles": ["ghost"]}]}, "undefined role"),
    ({"colour": "red"}, "unknown key"),
])
def test_a_bad_realm_file_is_a_clear_error(tmp_path: Path, extra: dict[str, object], message: str) -> None:
    with pytest.raises(SiteRealmError, match=message):
        SiteRealm.load(_realm_yaml(tmp_path, **extra))


def test_names_that_point_at_nothing_are_found(tmp_path: Path) -> None:
    from wmsgate.policy_lint import policy_problems

    assert policy_problems(REPO / "rego" / "base", REPO / "rego" / "demo") == []
    site = tmp_path / "policy" / "wms"
    for name, doc in {"modules": {"goods": {"dimensions": ["warehouse"]}},
                      "roles": {"clerk": {"permissions": ["goods:view", "goods:craete", "gods:view", "audit:view"]}},
                      "masks": {"goodz": [{"permission": "goods_cost:view", "fields": ["goods_cost"]}]},
                      "high_risk": {"operations": {"x": {"when": {"module": "stock", "verbs": ["adjust"]}}}}}.items():
        (site / name).mkdir(parents=True)
        (site / name / "data.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    problems = policy_problems(REPO / "rego" / "base", tmp_path / "policy")
    assert len(problems) == 5, problems
    assert any("goods:craete" in p and "verb" in p for p in problems)
    assert any("'gods'" in p for p in problems) and any("'goods_cost'" in p for p in problems)
    assert not any("audit:view" in p for p in problems)  # the base layer's module
