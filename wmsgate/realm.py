"""Realm as code: build the ``wms`` realm from ``keycloak/realm/`` and apply it to Keycloak.

The production template (``realm.json`` with ``gateway-mappers.json`` and
``user-profile.json``) holds roles, data-scope attributes and their token
mappers, the gateway client, token lifetimes and events. The demo overlay
(``demo-overlay.yaml``) adds demo users, their TOTP secrets and the public
``wms-cli`` client; it is applied only when asked for.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from keycloak.exceptions import KeycloakGetError

from keycloak import KeycloakAdmin
from wmsgate.tools import REPO

REALM_DIR = REPO / "keycloak" / "realm"
_OTP_CREDENTIAL_DATA = {"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def demo_overlay(realm_dir: Path = REALM_DIR) -> dict[str, Any]:
    """The demo overlay document (users, password, TOTP secret, demo clients)."""
    return yaml.safe_load((realm_dir / "demo-overlay.yaml").read_text(encoding="utf-8"))


def _user(spec: dict[str, Any], password: str, totp_secret: str) -> dict[str, Any]:
    family, given = spec.get("name", ["", ""])
    credentials: list[dict[str, Any]] = [{"type": "password", "value": password, "temporary": False}]
    if spec.get("otp"):
        credentials.append({
            "type": "otp",
            "userLabel": "demo authenticator",
            "secretData": json.dumps({"value": totp_secret}),
            "credentialData": json.dumps(_OTP_CREDENTIAL_DATA),
        })
    return {
        "username": spec["username"],
        "enabled": True,
        "firstName": given,
        "lastName": family,
        "email": f"{spec['username']}@example.com",
        "emailVerified": True,
        "realmRoles": list(spec["roles"]),
        "attributes": {f"wms_{dim}": list(spec.get(dim, [])) for dim in ("warehouse", "channel", "order_type")},
        "credentials": credentials,
    }


def build_realm(demo: bool, realm_dir: Path = REALM_DIR, gateway_url: str | None = None) -> dict[str, Any]:
    """Assemble the realm representation.

    Args:
        demo: add the demo overlay (users, demo clients, known client secret).
        realm_dir: folder of the realm files.
        gateway_url: the gateway's public URL (scheme, host, port) when it is not the
            template's ``http://127.0.0.1:8080``: the ``wms-gateway`` client's login
            callback, logout return and back-channel logout addresses follow it.

    Returns:
        A Keycloak ``RealmRepresentation`` ready for ``POST /admin/realms``.
    """
    rep = _load_json(realm_dir / "realm.json")
    mappers = _load_json(realm_dir / "gateway-mappers.json")
    profile = _load_json(realm_dir / "user-profile.json")
    for client in rep["clients"]:
        if client.get("protocolMappers") == "@gateway-mappers":
            client["protocolMappers"] = copy.deepcopy(mappers)
        if client["clientId"] == "wms-gateway" and gateway_url:
            _point_gateway_client(client, gateway_url.rstrip("/"))
    for component in rep["components"]["org.keycloak.userprofile.UserProfileProvider"]:
        component["config"]["kc.user.profile.config"] = [json.dumps(profile, ensure_ascii=False)]
    if not demo:
        return rep
    overlay = demo_overlay(realm_dir)
    for client in rep["clients"]:
        if client["clientId"] == "wms-gateway":
            client["secret"] = overlay["gateway_client_secret"]
        if client["clientId"] == "wms-access-admin":
            client["secret"] = overlay["access_admin_client_secret"]
        if client["clientId"] == "wms-alerting":
            client["secret"] = overlay["alerting_client_secret"]
    for spec in overlay["clients"]:
        client = {k: v for k, v in spec.items() if k != "gateway_mappers"}
        client.setdefault("enabled", True)
        client.setdefault("protocol", "openid-connect")
        client["protocolMappers"] = copy.deepcopy(
            [m for m in mappers if spec.get("gateway_mappers") or m["protocolMapper"] != "oidc-audience-mapper"])
        rep["clients"].append(client)
    rep["users"] = rep.get("users", []) + [_user(u, overlay["password"], overlay["totp_secret"])
                                           for u in overlay["users"]]
    return rep


def _point_gateway_client(client: dict[str, Any], gateway_url: str) -> None:
    template = "http://127.0.0.1:8080"
    client["redirectUris"] = [u.replace(template, gateway_url) for u in client.get("redirectUris", [])]
    attributes = client.setdefault("attributes", {})
    for key in ("post.logout.redirect.uris", "backchannel.logout.url"):
        if key in attributes:
            attributes[key] = attributes[key].replace(template, gateway_url)


def keycloak_admin(base_url: str, username: str, password: str) -> KeycloakAdmin:
    """An admin API client logged in to the master realm."""
    return KeycloakAdmin(server_url=base_url.rstrip("/") + "/", username=username, password=password,
                         realm_name="master", user_realm_name="master", verify=True)


def apply_realm(admin: KeycloakAdmin, rep: dict[str, Any], replace: bool) -> bool:
    """Create the realm; with ``replace`` an existing one is deleted first.

    Returns:
        True when the realm was created, False when it existed and was kept.

    Raises:
        keycloak.exceptions.KeycloakError: Keycloak refused the realm.
    """
    name = rep["realm"]
    try:
        admin.get_realm(name)
        exists = True
    except KeycloakGetError:
        exists = False
    if exists and not replace:
        return False
    if exists:
        admin.delete_realm(name)
    admin.create_realm(payload=rep, skip_exists=False)
    return True
