"""The real gateway app in one event loop, with in-process fakes around it: an issuer with a
static JWKS (tokens minted here), a fake PDP that validates every input against
``rego/base/schemas/input.json`` and answers what the test says, and a small JSON WMS.

Used by the in-process tests of the request path (``tests/unit/test_request_path.py``); the
same behaviours are proven against Keycloak, OPA and the demo WMS in ``tests/integration``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from joserfc import jwt
from joserfc.jwk import RSAKey

from authorizer.config import load_config
from proxy.app import create_app

REPO = Path(__file__).resolve().parents[2]
INPUT_SCHEMA = json.loads((REPO / "rego" / "base" / "schemas" / "input.json").read_text(encoding="utf-8"))
AUDIENCE = "wms-gateway"

Decide = Callable[[dict[str, Any]], dict[str, Any]]


def allow(_: dict[str, Any]) -> dict[str, Any]:
    """A PDP answer that allows with no obligations."""
    return {"allow": True, "reasons": [{"code": "allowed", "zh-CN": "允许", "en": "allowed"}],
            "obligations": {}, "policy_revision": "test"}


@dataclass
class FakePdp:
    """OPA's data API as the gateway calls it. Every ``input`` is validated against the policy's
    input schema (a mismatch is a 500 and is kept in ``invalid``); ``decide`` gives the result."""

    decide: Decide = allow
    inputs: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /v1/data/...``: ``{"result": decide(input)}``."""
        body = await request.json()
        policy_input = body["input"]
        self.inputs.append(policy_input)
        try:
            jsonschema.validate(policy_input, INPUT_SCHEMA)
        except jsonschema.ValidationError as exc:
            self.invalid.append(f"{exc.json_path}: {exc.message}")
            return web.Response(status=500, text=exc.message)
        return web.json_response({"result": self.decide(policy_input)})


class FakeIssuer:
    """An OIDC issuer's discovery document and static JWKS; :meth:`token` mints access tokens."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.url = ""

    def app(self) -> web.Application:
        """The issuer's endpoints (``url`` must be set to where it listens + ``/realms/test``)."""
        app = web.Application()

        async def discovery(_: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/protocol/openid-connect/certs"})

        async def certs(_: web.Request) -> web.Response:
            return web.json_response({"keys": [self.key.as_dict(private=False)]})

        app.router.add_get("/realms/test/.well-known/openid-configuration", discovery)
        app.router.add_get("/realms/test/protocol/openid-connect/certs", certs)
        return app

    def token(self, username: str = "clerk", roles: tuple[str, ...] = ("clerk",),
              scope: dict[str, list[str]] | None = None, **extra: Any) -> str:
        """A signed access token (RS256, 5 minutes) for ``username``."""
        now = int(time.time())
        claims = {"iss": self.url, "aud": [AUDIENCE], "sub": f"id-{username}", "typ": "Bearer", "azp": "wms-cli",
                  "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "preferred_username": username,
                  "acr": "1", "auth_time": now, "realm_access": {"roles": list(roles)},
                  "wms_scope": scope or {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}, **extra}
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)


def fake_wms() -> web.Application:
    """A JSON WMS: ``GET /api/orders`` lists rows, ``GET /api/export.json`` answers a list of 3
    rows, ``GET /api/orders.json`` a list export of 3 HF orders, anything else echoes the
    request line."""
    app = web.Application()

    async def orders(_: web.Request) -> web.Response:
        return web.json_response({"rows": [{"order_no": "SO1", "warehouse": "HF", "amount": 10}], "total": 1})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "path": request.path})

    async def export(request: web.Request) -> web.Response:  # rows name the Range they were asked with
        return web.json_response([{"n": n, "range": request.headers.get("Range")} for n in range(3)])

    async def orders_export(_: web.Request) -> web.Response:
        return web.json_response({"rows": [{"order_no": f"SO{n}", "warehouse": "HF"} for n in range(3)]})

    app.router.add_get("/api/orders", orders)
    app.router.add_get("/api/export.json", export)
    app.router.add_get("/api/orders.json", orders_export)
    app.router.add_get("/healthz", echo)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


ROUTES = """\
version: 1
routes:
  - route: GET /api/orders
    module: orders
    verb: view
    kind: list
    list: {rows: rows, total: total, narrow: {warehouse: warehouse}}
  - route: GET /api/orders/{order_no}
    module: orders
    verb: view
    resource: "{path.order_no}"
    attributes: {warehouse: query.warehouse}
  - route: GET /api/export.json
    module: orders
    verb: export
    kind: aggregate
    query: {allow: [day]}
    enforcement: report
  - route: GET /api/orders.json
    module: orders
    verb: export
    kind: list
    list: {rows: rows, narrow: {warehouse: warehouse}}
  - route: GET /api/report.json
    module: orders
    verb: export
    kind: aggregate
"""


@dataclass
class InProcessGateway:
    """A running gateway app (``client``) with its fakes; close with :meth:`close`."""

    client: TestClient[Any, Any]
    pdp: FakePdp
    issuer: FakeIssuer
    servers: list[TestServer]
    config_path: Path

    @property
    def app(self) -> web.Application:
        """The gateway's aiohttp application."""
        return self.client.app  # type: ignore[return-value]

    def bearer(self, **claims: Any) -> dict[str, str]:
        """An ``Authorization`` header with a fresh token (see :meth:`FakeIssuer.token`)."""
        return {"Authorization": f"Bearer {self.issuer.token(**claims)}"}

    async def close(self) -> None:
        """Stop the gateway (its audit writer flushes) and the fakes."""
        await self.client.close()
        for server in self.servers:
            await server.close()


async def start(tmp: Path, pdp: FakePdp | None = None, sso: bool = False) -> InProcessGateway:
    """Start the fakes and the gateway app on 127.0.0.1 (ephemeral ports), state under ``tmp``.

    Args:
        tmp: a fresh directory (audit database, spool, route map, config).
        pdp: the fake PDP (default: allows everything).
        sso: configure browser SSO (the console and the login endpoints).
    """
    pdp = pdp or FakePdp()
    issuer = FakeIssuer()
    issuer_server = TestServer(issuer.app(), host="127.0.0.1")
    await issuer_server.start_server()
    issuer.url = str(issuer_server.make_url("/realms/test"))
    opa = web.Application()
    opa.router.add_post("/v1/data/{path:.*}", pdp.handle)
    opa_server = TestServer(opa, host="127.0.0.1")
    await opa_server.start_server()
    wms_server = TestServer(fake_wms(), host="127.0.0.1")
    await wms_server.start_server()
    (tmp / "routes.yaml").write_text(ROUTES, encoding="utf-8")
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "oidc": {"issuer": issuer.url, "audience": AUDIENCE},
        "opa": {"url": str(opa_server.make_url("")).rstrip("/"), "timeout_seconds": 2},
        "upstream": {"url": str(wms_server.make_url("")).rstrip("/"), "health": {"path": "/healthz"}},
        "audit": {"url": f"sqlite+aiosqlite:///{tmp / 'audit.db'}", "flush_interval_seconds": 0.05,
                  "spool_file": str(tmp / "spool.jsonl")},
        "route_map": "routes.yaml",
        "revocation": {"refresh_seconds": 0.5},
        "management": {"host": "127.0.0.1", "port": 0},
    }
    if sso:
        config["sso"] = {"client_id": "wms-gateway", "client_secret": "test-secret",
                         "public_url": "http://127.0.0.1:1"}
    config_path = tmp / "gateway.yaml"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    app = create_app(load_config(config_path), spool_dir=tmp)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return InProcessGateway(client, pdp, issuer, [issuer_server, opa_server, wms_server], config_path)
