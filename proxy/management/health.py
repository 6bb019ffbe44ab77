"""``GET /_gateway/health``: 200 only when Keycloak's keys, OPA and the WMS all answer."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.identity import IssuerUnavailable, JwksCache

_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


async def _probe(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(url, timeout=_TIMEOUT) as resp:
            await resp.read()
            return {"ok": resp.status == 200, "status": resp.status}
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return {"ok": False, "error": type(exc).__name__}


async def _keys(jwks: JwksCache) -> dict[str, Any]:
    try:
        keys = await asyncio.wait_for(jwks.fetch(), timeout=3.0)
        return {"ok": len(keys.keys) > 0, "keys": len(keys.keys)}
    except (IssuerUnavailable, asyncio.TimeoutError) as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}


def health_handler(session_key: web.AppKey[aiohttp.ClientSession], jwks_key: web.AppKey[JwksCache],
                   opa_url: str, upstream_url: str) -> Any:
    """Build the handler; it probes the three dependencies concurrently (2-3 s timeouts).

    Answers ``{"status": "ok"|"degraded", "checks": {"keycloak_keys", "opa", "wms"}}``
    with 200 when all are ok, else 503.
    """

    async def handler(request: web.Request) -> web.Response:
        session = request.app[session_key]
        keycloak, opa, wms = await asyncio.gather(
            _keys(request.app[jwks_key]), _probe(session, f"{opa_url}/health"), _probe(session, f"{upstream_url}/healthz"))
        checks = {"keycloak_keys": keycloak, "opa": opa, "wms": wms}
        healthy = all(c["ok"] for c in checks.values())
        failing = [name for name, c in checks.items() if not c["ok"]]
        return web.json_response({"status": "ok" if healthy else "degraded", "failing": failing, "checks": checks},
                                 status=200 if healthy else 503, headers={"Cache-Control": "no-store"})

    return handler
