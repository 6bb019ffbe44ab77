"""The product's shared proxy-hygiene cases, each named by its id, against the real stack.

"Refused" means: an error status, a JSON body with an error code, an audit
record of the refusal, and nothing reaching the WMS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from keycloak import KeycloakAdmin
from tests.support.stack import RawResponse, Stack, assert_refused, raw_request


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def _refused_unforwarded(stack: Stack, target: str, status: int, user: str = "picker.hf", method: str = "GET",
                         marker: str = "finance") -> dict[str, Any]:
    token = stack.tokens.get(user)
    mark = stack.access_log.mark()
    resp = raw_request(stack.proxy, method, target, [("Authorization", f"Bearer {token}")])
    body = assert_refused(resp, status)
    assert not [e for e in stack.access_log.since(mark) if marker in e["path"]], "request reached the WMS"
    record = stack.audit_record(body["decision_id"])
    assert record["decision"] == "deny" and record["http_status"] == status
    return body


def test_case_path_001_dot_segments(stack: Stack) -> None:
    """CASE-PATH-001: GET /api/picking/tasks/../../reports/finance -> 400, not forwarded."""
    body = _refused_unforwarded(stack, "/api/picking/tasks/../../reports/finance", 400)
    assert body["error"] == "dot_segment"


def test_case_path_002_encoded_dot_segments(stack: Stack) -> None:
    """CASE-PATH-002: GET /api/picking/tasks/%2e%2e/%2e%2e/reports/finance -> 400, not forwarded."""
    body = _refused_unforwarded(stack, "/api/picking/tasks/%2e%2e/%2e%2e/reports/finance", 400)
    assert body["error"] == "dot_segment"


def test_case_path_003_encoded_slash(stack: Stack) -> None:
    """CASE-PATH-003: keeper.hf GET /api/inventory/HF%2FA01-01/SKU00001 -> 400, not forwarded."""
    body = _refused_unforwarded(stack, "/api/inventory/HF%2FA01-01/SKU00001", 400, user="keeper.hf",
                                marker="/api/inventory/HF")
    assert body["error"] == "encoded_slash"


def test_case_path_004_path_parameters(stack: Stack) -> None:
    """CASE-PATH-004: GET /api/reports/finance;jsessionid=1 -> 400, not forwarded."""
    body = _refused_unforwarded(stack, "/api/reports/finance;jsessionid=1", 400)
    assert body["error"] == "path_parameters"


def test_case_path_005_empty_segment(stack: Stack) -> None:
    """CASE-PATH-005: GET //api/reports/finance -> refused, not forwarded."""
    body = _refused_unforwarded(stack, "//api/reports/finance", 400)
    assert body["error"] == "empty_segment"


def test_case_path_006_case_variant_is_unmapped(stack: Stack) -> None:
    """CASE-PATH-006: GET /API/Reports/Finance -> refused as an unmapped route, not forwarded."""
    body = _refused_unforwarded(stack, "/API/Reports/Finance", 403, marker="inance")
    assert body["error"] == "route_not_mapped"


def test_case_hdr_001_spoofed_user_header_is_replaced(stack: Stack) -> None:
    """CASE-HDR-001: picker.hf confirms an HF pending_pick order with X-WMS-User: admin1 -> allowed;
    the WMS records picker.hf, never admin1."""
    order = stack.order(warehouse="HF", status="pending_pick")
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        resp = c.post(f"/api/picking/{order['order_no']}/confirm", headers={"X-WMS-User": "admin1"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["updated_by"] == "picker.hf"
    seen = [e["headers"].get("x-wms-user") for e in stack.access_log.since(mark)]
    assert "admin1" not in seen and "picker.hf" in seen
    with stack.wms() as wms:
        assert wms.get(f"/api/orders/{order['order_no']}").json()["updated_by"] == "picker.hf"


def test_case_hdr_002_method_override_is_refused(stack: Stack) -> None:
    """CASE-HDR-002: POST confirm with X-HTTP-Method-Override: DELETE -> 400; no order is deleted."""
    order = stack.order(warehouse="HF", status="pending_pick")
    mark = stack.access_log.mark()
    with stack.client("picker.hf") as c:
        for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
            resp = c.post(f"/api/picking/{order['order_no']}/confirm", headers={header: "DELETE"})
            body = assert_refused(resp, 400, "method_override_refused")
            assert stack.audit_record(body["decision_id"])["reason_code"] == "method_override_refused"
    assert not stack.access_log.since(mark)
    with stack.wms() as wms:
        current = wms.get(f"/api/orders/{order['order_no']}")
    assert current.status_code == 200 and current.json()["status"] == "pending_pick"


def test_case_hdr_003_two_authorization_headers(stack: Stack) -> None:
    """CASE-HDR-003: two Authorization headers (picker.hf's and supervisor's) -> 400."""
    mark = stack.access_log.mark()
    resp = raw_request(stack.proxy, "GET", "/api/picking/tasks", [
        ("Authorization", f"Bearer {stack.tokens.get('picker.hf')}"),
        ("Authorization", f"Bearer {stack.tokens.get('supervisor')}"),
    ])
    body = assert_refused(resp, 400, "duplicate_authorization")
    assert not stack.access_log.since(mark)
    assert stack.audit_record(body["decision_id"])["decision"] == "deny"


def _get_tasks_with(stack: Stack, token: str) -> RawResponse:
    return raw_request(stack.proxy, "GET", "/api/picking/tasks", [("Authorization", f"Bearer {token}")])


def test_case_jwt_001_alg_none(stack: Stack) -> None:
    """CASE-JWT-001: header alg none, no signature, claims of a real picker.hf token -> 401."""
    real = stack.tokens.get("picker.hf")
    header = {**_header(real), "alg": "none"}
    forged = f"{_b64(json.dumps(header).encode())}.{real.split('.')[1]}."
    assert_refused(_get_tasks_with(stack, forged), 401, "invalid_token")


def test_case_jwt_002_hs256_with_public_key_as_secret(stack: Stack) -> None:
    """CASE-JWT-002: a token signed HS256 with the realm's RSA public key (PEM) as HMAC secret -> 401."""
    real = stack.tokens.get("picker.hf")
    jwks = httpx.get(f"{stack.stack.issuer}/protocol/openid-connect/certs").json()
    kid = _header(real)["kid"]
    pem = RSAKey.import_key(next(k for k in jwks["keys"] if k["kid"] == kid)).as_pem(private=False)
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{real.split('.')[1]}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert_refused(_get_tasks_with(stack, f"{signing_input}.{_b64(signature)}"), 401, "invalid_token")


def test_case_jwt_003_token_for_another_client(stack: Stack) -> None:
    """CASE-JWT-003: a real token of the same realm issued to a client whose audience lacks the proxy -> 401."""
    token = stack.tokens.login("picker.hf", client_id="legacy-report-tool")["access_token"]
    assert "wms-gateway" not in (_claims(token).get("aud") or [])
    assert _claims(token)["iss"] == stack.stack.issuer
    assert_refused(_get_tasks_with(stack, token), 401, "invalid_token")


def test_case_jwt_004_expired_token(stack: Stack) -> None:
    """CASE-JWT-004: a real picker.hf token after it expired -> 401 with WWW-Authenticate saying it expired."""
    admin = KeycloakAdmin(server_url=stack.stack.keycloak_url + "/", username="kcadmin", password="kcadmin-demo",
                          realm_name="wms", user_realm_name="master")
    short = {k: v for k, v in admin.get_client(admin.get_client_id("wms-cli")).items() if k != "id"}
    short["clientId"] = "wms-cli-short-lived"
    short["attributes"] = {**short.get("attributes", {}), "access.token.lifespan": "2"}
    short["protocolMappers"] = [{k: v for k, v in m.items() if k != "id"} for m in short.get("protocolMappers", [])]
    admin.create_client(short, skip_exists=True)
    token = stack.tokens.login("picker.hf", client_id="wms-cli-short-lived")["access_token"]
    claims = _claims(token)
    assert claims["exp"] - claims["iat"] <= 2
    time.sleep(max(0.0, claims["exp"] + 2.5 - time.time()))
    resp = _get_tasks_with(stack, token)
    assert_refused(resp, 401, "token_expired")
    assert 'error="invalid_token"' in resp.header("WWW-Authenticate")
    assert "expired" in resp.header("WWW-Authenticate")


@pytest.fixture(scope="module")
def foreign_realm_token(stack: Stack) -> str:
    """A token from realm wms-foreign on the same Keycloak, with the same username, roles, scope and audience."""
    admin = KeycloakAdmin(server_url=stack.stack.keycloak_url + "/", username="kcadmin", password="kcadmin-demo",
                          realm_name="master", user_realm_name="master")
    admin.create_realm(payload={
        "realm": "wms-foreign", "enabled": True,
        "roles": {"realm": [{"name": "picker"}]},
        "clients": [{"clientId": "wms-cli", "publicClient": True, "directAccessGrantsEnabled": True,
                     "protocolMappers": [{"name": "aud", "protocol": "openid-connect",
                                          "protocolMapper": "oidc-audience-mapper",
                                          "config": {"included.client.audience": "wms-gateway",
                                                     "access.token.claim": "true"}}]}],
        "users": [{"username": "picker.hf", "enabled": True, "firstName": "F", "lastName": "R",
                   "email": "f@example.com", "emailVerified": True, "realmRoles": ["picker"],
                   "credentials": [{"type": "password", "value": "wms-demo", "temporary": False}]}],
    }, skip_exists=True)
    issuer = f"{stack.stack.keycloak_url}/realms/wms-foreign"
    return stack.tokens.login("picker.hf", issuer=issuer)["access_token"]


def test_case_jwt_005_token_from_another_realm(stack: Stack, foreign_realm_token: str) -> None:
    """CASE-JWT-005: a token from a different realm on the same Keycloak -> 401."""
    assert "wms-gateway" in _claims(foreign_realm_token)["aud"]
    assert_refused(_get_tasks_with(stack, foreign_realm_token), 401, "invalid_token")


def test_token_signed_by_another_key_with_the_realm_kid_is_refused(stack: Stack) -> None:
    """A token with real claims and the realm's kid, but signed by a key the realm never had -> 401."""
    real = stack.tokens.get("picker.hf")
    key = RSAKey.generate_key(2048, parameters={"kid": _header(real)["kid"]})
    forged = jwt.encode({"alg": "RS256", "kid": _header(real)["kid"]}, _claims(real), KeySet([key]))
    assert_refused(_get_tasks_with(stack, forged), 401, "invalid_token")
