"""Realm as code: the production template and the demo overlay."""

from __future__ import annotations

import json

from wmsgate.realm import build_realm

ROLES = {"picker", "temp_picker", "reviewer", "packer", "warehouse_keeper", "ops_supervisor", "channel_ops",
         "finance", "sysadmin"}


def test_template_has_every_role_mappers_and_no_demo_parts() -> None:
    rep = build_realm(demo=False)
    assert {r["name"] for r in rep["roles"]["realm"]} == ROLES
    assert rep["accessTokenLifespan"] <= 300
    assert rep["eventsEnabled"] and rep["adminEventsEnabled"] and rep["adminEventsDetailsEnabled"]
    accounts = {u["username"]: u for u in rep["users"]}
    assert set(accounts) == {"service-account-wms-access-admin", "service-account-wms-alerting"}
    # the alerting service only reads: events and users, nothing it could change access with
    assert accounts["service-account-wms-alerting"]["clientRoles"] == {
        "realm-management": ["view-events", "view-users"]}
    clients = {c["clientId"]: c for c in rep["clients"]}
    assert set(clients) == {"wms-gateway", "wms-access-admin", "wms-alerting"}
    assert not any("secret" in c for c in clients.values())
    for name in ("wms-access-admin", "wms-alerting"):
        assert clients[name]["serviceAccountsEnabled"] and not clients[name]["standardFlowEnabled"]
        assert not clients[name]["directAccessGrantsEnabled"]
    mappers = {m["protocolMapper"] for m in clients["wms-gateway"]["protocolMappers"]}
    assert mappers == {"oidc-audience-mapper", "oidc-usermodel-attribute-mapper"}


def test_scope_attributes_are_admin_only_in_the_user_profile() -> None:
    rep = build_realm(demo=False)
    config = rep["components"]["org.keycloak.userprofile.UserProfileProvider"][0]["config"]
    profile = json.loads(config["kc.user.profile.config"][0])
    attrs = {a["name"]: a for a in profile["attributes"]}
    for name in ("wms_warehouse", "wms_channel", "wms_order_type"):
        assert attrs[name]["multivalued"] is True
        assert attrs[name]["permissions"]["edit"] == ["admin"]
        assert "*" in attrs[name]["validations"]["options"]["options"]


def test_demo_overlay_has_the_contract_users_with_their_scopes() -> None:
    rep = build_realm(demo=True)
    users = {u["username"]: u for u in rep["users"] if not u["username"].startswith("service-account-")}
    for name in ("picker.hf", "reviewer.hf", "packer.hf", "keeper.hf", "keeper.sh", "keeper.sz", "supervisor",
                 "ops.taobao", "ops.amazon", "finance", "admin1", "admin2", "temp.picker01"):
        assert name in users
        assert users[name]["credentials"][0] == {"type": "password", "value": "wms-demo", "temporary": False}
    assert users["keeper.sz"]["attributes"]["wms_warehouse"] == ["SZ"]
    assert users["ops.amazon"]["attributes"] == {"wms_warehouse": ["*"], "wms_channel": ["amazon"],
                                                  "wms_order_type": ["*"]}
    assert users["admin2"]["realmRoles"] == ["sysadmin"]
    otp_users = {n for n, u in users.items() if any(c["type"] == "otp" for c in u["credentials"])}
    assert otp_users == {"keeper.hf", "keeper.sh", "keeper.sz", "supervisor", "admin1", "admin2"}


def test_demo_clients_and_audience() -> None:
    clients = {c["clientId"]: c for c in build_realm(demo=True)["clients"]}
    cli = clients["wms-cli"]
    assert cli["publicClient"] and cli["directAccessGrantsEnabled"]
    assert cli["redirectUris"] == ["http://127.0.0.1:8765/callback"]
    assert cli["attributes"]["pkce.code.challenge.method"] == "S256"
    assert any(m["protocolMapper"] == "oidc-audience-mapper" for m in cli["protocolMappers"])
    other = clients["legacy-report-tool"]
    assert not any(m["protocolMapper"] == "oidc-audience-mapper" for m in other["protocolMappers"])
