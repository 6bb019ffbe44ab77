"""The proxy's app factory: one shared HTTP session, the PEP pipeline, the management endpoints."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

import aiohttp
from aiohttp import web

from authorizer.approvals import ApprovalStore
from authorizer.attributes import AttributeResolver
from authorizer.audit import AuditStore, AuditWriter
from authorizer.config import GatewayConfig
from authorizer.db import create_schema, make_engine
from authorizer.identity import JwksCache, TokenVerifier
from authorizer.pdp import OpaClient
from authorizer.routes import RouteMap
from proxy.forward import Forwarder, UpstreamIdentity
from proxy.management import approvals as approvals_api
from proxy.management.health import health_handler
from proxy.pipeline import GATEWAY, Gateway, handle
from proxy.replay import ApprovalExecutor

SESSION = web.AppKey("session", aiohttp.ClientSession)
JWKS = web.AppKey("jwks", JwksCache)
STORE = web.AppKey("audit_store", AuditStore)
SWEEPER = web.AppKey("approval_sweeper", asyncio.Task)

log = logging.getLogger(__name__)


def create_app(config: GatewayConfig, spool_dir: Path | None = None) -> web.Application:
    """Build the gateway application.

    The route map and credential files are read and validated here, so a bad
    configuration fails at start, not on the first request. Network clients are
    created on startup and closed on cleanup; the audit writer flushes on cleanup.

    Args:
        config: the loaded configuration.
        spool_dir: directory for the audit spool file (records the database could
            not take at shutdown); defaults to the route map's directory's ``.spool``.

    Raises:
        authorizer.routes.RouteMapError: the route map is invalid.
        ValueError: a credential file cannot be read.
    """
    routes = RouteMap.load(config.route_map)
    identity = UpstreamIdentity(config.upstream)
    app = web.Application(client_max_size=config.upstream.max_body_bytes)
    engine = make_engine(config.audit.url)
    store = AuditStore(engine=engine)
    app[STORE] = store
    approval_store = ApprovalStore(engine)
    spool = (spool_dir or Path.cwd()) / "audit-spool.jsonl"

    async def startup(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=128, ttl_dns_cache=300, keepalive_timeout=30)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        app[SESSION] = session
        jwks = JwksCache(session, config.oidc.issuer, config.oidc.jwks_min_refresh_seconds)
        app[JWKS] = jwks
        await create_schema(engine)
        writer = AuditWriter(store, config.audit.flush_interval_seconds, config.audit.batch_size,
                             config.audit.max_pending, spool)
        await writer.start()
        app[GATEWAY] = Gateway(
            config=config,
            routes=routes,
            verifier=TokenVerifier(config.oidc, jwks),
            resolver=AttributeResolver(session, config.upstream.url, config.upstream.lookup_headers,
                                       config.upstream.lookup_cache_seconds),
            pdp=OpaClient(session, config.opa),
            forwarder=Forwarder(session, config.upstream),
            identity=identity,
            audit=writer,
            strip_headers=frozenset(h.lower() for h in config.strip_request_headers),
            trusted_proxies=tuple(ipaddress.ip_network(n, strict=False) for n in config.trusted_proxies),
            approvals=approval_store,
            executor=ApprovalExecutor(approval_store, session, config.upstream, identity, writer),
        )
        app[SWEEPER] = asyncio.get_running_loop().create_task(
            app[GATEWAY].executor.run_forever(config.approval_sweep_seconds), name="approval-sweeper")

    async def cleanup(app: web.Application) -> None:
        if SWEEPER in app:
            app[SWEEPER].cancel()
        if GATEWAY in app:
            await app[GATEWAY].audit.close()
        await engine.dispose()
        if SESSION in app:
            await app[SESSION].close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/_gateway/health", health_handler(SESSION, JWKS, config.opa, config.upstream.url))
    approvals_api.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
