"""The proxy's app factory: one shared HTTP session, the PEP pipeline, the management endpoints."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.approvals.store import ApprovalStore
from authorizer.audit import AuditRecord, AuditStore, AuditWriter, WriterSettings
from authorizer.audit.chain import load_private_key
from authorizer.audit.retention import run_retention_forever
from authorizer.audit.spool import Spool
from authorizer.audit.witness import DirectoryWitness, WitnessPublisher
from authorizer.authn.identity import JwksCache, TokenVerifier
from authorizer.authn.oidc_rp import RelyingParty, RpSettings
from authorizer.authn.revocation import RevocationCache, RevocationStore
from authorizer.authn.sessions import SessionStore
from authorizer.authn.step_up_demands import DemandsUnavailable, StepUpDemands
from authorizer.authz.attributes import AttributeResolver
from authorizer.authz.inprocess_pdp import InProcessPdp, InProcessSettings
from authorizer.authz.pdp import DecisionPoint, OpaClient
from authorizer.authz.routes import RouteMap, RouteMapError
from authorizer.config import GatewayConfig, OpaSettings
from authorizer.db import create_schema, make_engine
from authorizer.enforce.enforcement import EnforcementModes, ModeChange, record_modes
from authorizer.enforce.mask_kinds import KeyedHasher
from authorizer.enforce.reveals import RevealCache, RevealStore
from authorizer.iam.access import AccessService, AdminEventWatcher, KeycloakAdminSettings
from authorizer.iam.grants import GrantStore
from authorizer.iam.not_me import NotMeLinks, NotMeUses
from authorizer.iam.review_service import ReviewService, run_review_sweeper
from authorizer.iam.reviews import ReviewStore
from authorizer.messages import TEXTS
from authorizer.tls import client_context
from proxy.console_pages import setup_templates
from proxy.forward import Forwarder
from proxy.gateway import GATEWAY, Gateway
from proxy.heap import CHeap, trim_forever
from proxy.lifecycle import PREFIX, audited_requests, sub_path
from proxy.management import access as access_api
from proxy.management import alerts as alerts_api
from proxy.management import api_routes, console, console_alerts, console_reveals, console_reviews
from proxy.management import approvals as approvals_api
from proxy.management import auth as auth_api
from proxy.management import not_me as not_me_api
from proxy.management import reviews as reviews_api
from proxy.management.health import health_handler
from proxy.metrics import GatewayMetrics, management_app, start_management
from proxy.pipeline import handle
from proxy.replay import ApprovalExecutor
from proxy.sso import SSO, SsoService, apply_session_cookie
from proxy.upstream_identity import UpstreamIdentity

SESSION = web.AppKey("session", aiohttp.ClientSession)
JWKS = web.AppKey("jwks", JwksCache)
STORE = web.AppKey("audit_store", AuditStore)
TASKS = web.AppKey("background_tasks", list)
#: The in-process PDP, when ``opa.evaluation: in_process`` (health shows its revision).
IN_PROCESS_PDP = web.AppKey("in_process_pdp", InProcessPdp)
MANAGEMENT = web.AppKey("management_runner", web.AppRunner)
#: The port the management listener (``/metrics``) is bound to, once started.
MANAGEMENT_PORT = web.AppKey("management_port", int)

log = logging.getLogger(__name__)


def mode_change_record(change: ModeChange) -> AuditRecord:
    """The audit record of a route (or the default, ``*``) switched between enforce and report."""
    before, after = TEXTS[f"mode_{change.before}"], TEXTS[f"mode_{change.after}"]
    text = TEXTS["mode_changed"]
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(time.time() * 1000), decision="allow",
        reason_code="enforcement_mode_changed", http_status=0, method="", path="", username="wmsgate-config",
        module="sysadmin", verb="update", resource_id=change.key,
        reason_zh=text.zh.format(key=change.key, before=before.zh, after=after.zh),
        reason_en=text.en.format(key=change.key, before=before.en, after=after.en),
        detail={"route": change.key, "from": change.before, "to": change.after,
                **({"routes": change.routes} if change.routes else {})})


async def _neutral_server_header(_: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: no answer names the software behind the gateway (the WMS's
    banner is dropped by the forwarder; aiohttp would add its own name and version)."""
    response.headers["Server"] = "wmsgate"


def gateway_endpoints(config: GatewayConfig) -> web.Application:
    """The ``/_gateway`` sub-application: every endpoint of the gateway's own on one router
    (the console and logins only with SSO). Its requests run in the one audited-request path
    (:mod:`proxy.lifecycle`, the parent app's middleware); a path it does not know is a 404."""
    endpoints = web.Application()
    if config.sso is not None:
        auth_api.add_routes(endpoints)
        console.add_routes(endpoints)
        console_alerts.add_routes(endpoints)
        console_reveals.add_routes(endpoints)
        console_reviews.add_routes(endpoints)
    endpoints.router.add_get(sub_path("/_gateway/health"), health_handler(
        SESSION, JWKS, config.opa, config.upstream.url, config.upstream.health,
        audit=lambda a: a[GATEWAY].audit if GATEWAY in a else None,
        in_process=lambda a: a.get(IN_PROCESS_PDP)))
    approvals_api.add_routes(endpoints)
    api_routes.add_routes(endpoints)
    not_me_api.add_routes(endpoints)
    return endpoints


def _not_me_links(config: GatewayConfig) -> NotMeLinks | None:
    """The checker of alerts' "not me" links (keyed on the alert API token), or None without
    an alerting link (or with a token too short to key them)."""
    if config.alerting is None:
        return None
    try:
        return NotMeLinks(config.alerting.api_token)
    except ValueError as exc:
        log.warning("not-me links are off: %s", exc)
        return None


async def _decision_point(app: web.Application, session: aiohttp.ClientSession, opa: OpaSettings) -> DecisionPoint:
    """The PDP of ``opa.evaluation``: OPA over HTTP, or the signed Wasm bundle in this process
    (its first bundle loaded before the proxy serves, when the bundle service answers)."""
    if opa.evaluation != "in_process":
        return OpaClient(session, opa)
    assert opa.wasm_bundle_url is not None and opa.bundle_public_key_file is not None  # the schema requires them
    pdp = InProcessPdp(session, InProcessSettings(opa.wasm_bundle_url, opa.bundle_public_key_file,
                                                  opa.decision_path, opa.bundle_poll_seconds,
                                                  cache_size=opa.decision_cache_size),
                       reference=OpaClient(session, opa) if opa.compare_with_sidecar else None)
    await pdp.start()
    app[IN_PROCESS_PDP] = pdp
    return pdp


def read_mask_hasher(path: Path | None) -> KeyedHasher | None:
    """The keyed hasher of ``hash`` masks from ``masking.hash_key_file`` (its bytes, a trailing
    newline dropped), or None when none is configured.

    Raises:
        ValueError: the file cannot be read or holds fewer than 16 bytes.
    """
    if path is None:
        return None
    try:
        key = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ValueError(f"masking.hash_key_file: cannot read {path}: {exc}") from exc
    return KeyedHasher(key)


def create_app(config: GatewayConfig, spool_dir: Path | None = None,
               management_offset: int = 0, heap: CHeap | None = None) -> web.Application:
    """Build the gateway application.

    The route map and credential files are read and validated here, so a bad
    configuration fails at start, not on the first request. Network clients are
    created on startup and closed on cleanup; the audit writer flushes on cleanup.

    Args:
        config: the loaded configuration.
        spool_dir: directory for the audit spool file (records wait there while the
            database is down) when ``audit.spool_file`` is not set; defaults to the working directory.
        management_offset: added to ``management.port`` (a worker's index under ``--workers``).
        heap: the C heap, trimmed every ``memory.trim_seconds`` (None: left alone).

    Raises:
        authorizer.authz.routes.RouteMapError: the route map is invalid.
        ValueError: a credential file or the masking key cannot be read.
    """
    routes = RouteMap.load(config.route_map)
    tenant_routes = [r for r in routes.routes if r.uses_tenant]
    if tenant_routes and config.upstream.tenant is None:
        raise RouteMapError(f"{config.route_map}:{tenant_routes[0].line}: {tenant_routes[0].key} takes an attribute "
                            "from the tenant, but the gateway config has no upstream.tenant")
    for route in tenant_routes:
        wrong = [d for d, src in route.attributes.items() if src.kind == "tenant"
                 and config.upstream.tenant is not None and d != config.upstream.tenant.dimension]
        if wrong:
            raise RouteMapError(f"{config.route_map}:{route.line}: {route.key}: only the tenant dimension "
                                f"({config.upstream.tenant.dimension if config.upstream.tenant else ''}) "
                                f"can come from the tenant, not {', '.join(wrong)}")
    enforcement = EnforcementModes(config.enforcement,
                                   {r.key: r.enforcement for r in routes.routes if r.enforcement is not None})
    identity = UpstreamIdentity(config.upstream)
    mask_hasher = read_mask_hasher(config.mask_hash_key_file)
    app = web.Application(client_max_size=config.upstream.max_body_bytes, middlewares=[audited_requests])
    engine = make_engine(config.audit.url)
    store = AuditStore(engine=engine)
    app[STORE] = store
    approval_store = ApprovalStore(engine)
    revocation_store = RevocationStore(engine)
    revocations = RevocationCache(revocation_store, config.revocation_refresh_seconds)
    reveals = RevealCache(RevealStore(engine), config.reveal_refresh_seconds)
    access: AccessService | None = None
    if config.keycloak_admin is not None:
        issuer_base, _, realm = config.oidc.issuer.rpartition("/realms/")
        access = AccessService(KeycloakAdminSettings(issuer_base, realm, config.keycloak_admin.client_id,
                                                     config.keycloak_admin.client_secret,
                                                     str(config.trust_ca_file) if config.trust_ca_file else True),
                               revocation_store, revocations, GrantStore(engine),
                               access_api.opa_role_conflicts(config))
    spool = Spool(config.audit.spool_file or (spool_dir or Path.cwd()) / "audit-spool.jsonl",
                  config.audit.spool_max_bytes)

    async def startup(app: web.Application) -> None:
        # outbound HTTPS (the WMS, Keycloak, OPA) verifies certificates: system CAs plus trust.ca_file
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=128, ttl_dns_cache=300, keepalive_timeout=30,
                                         ssl=client_context(config.trust_ca_file))
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        app[SESSION] = session
        jwks = JwksCache(session, config.oidc.issuer, config.oidc.jwks_min_refresh_seconds)
        app[JWKS] = jwks
        await create_schema(engine)
        await revocations.refresh()
        await reveals.refresh()
        signing_key = load_private_key(config.audit.signing_key_file) if config.audit.signing_key_file else None
        witness = (WitnessPublisher(store, DirectoryWitness(config.audit.witness_dir))
                   if config.audit.witness_dir is not None else None)
        writer = AuditWriter(store, WriterSettings(
            config.audit.flush_interval_seconds, config.audit.batch_size, config.audit.max_pending,
            config.audit.checkpoint_every_records, config.audit.checkpoint_every_seconds), spool, signing_key,
            witness)
        await writer.start()
        for change in await record_modes(engine, enforcement, [r.key for r in routes.routes]):
            await writer.commit(mode_change_record(change))
        pdp = await _decision_point(app, session, config.opa)
        metrics = GatewayMetrics(lambda: writer.pending, lambda: writer.spool_bytes, revocations.age_seconds,
                                 pdp if isinstance(pdp, InProcessPdp) else None, witness)
        if config.management is not None:  # before serving: a port taken is a start-up error
            app[MANAGEMENT], app[MANAGEMENT_PORT] = await start_management(
                management_app(lambda: metrics), config.management, management_offset)
        verifier = TokenVerifier(config.oidc, jwks)
        sso = None
        if config.sso is not None:
            rp = RelyingParty(RpSettings(config.oidc.issuer, config.sso.client_id, config.sso.client_secret,
                                         config.sso.public_url + auth_api.CALLBACK, config.oidc.algorithms,
                                         config.oidc.leeway_seconds,
                                         verify=client_context(config.trust_ca_file)), jwks)
            sso = SsoService(config.sso, SessionStore(engine, config.sso.session_idle_seconds,
                                                      config.sso.session_max_seconds), rp, verifier)
            app[SSO] = sso
        reviews = ReviewService(ReviewStore(engine), access, signing_key) \
            if access is not None and signing_key is not None else None
        alerts = alerts_api.AlertsClient(config.alerting, session) if config.alerting is not None else None
        demands = None if alerts is None or config.alerting is None else StepUpDemands(
            functools.partial(alerts_api.step_up_demands, alerts), config.alerting.step_up_refresh_seconds)
        if demands is not None:  # before serving: a restart does not drop the demands of open alerts
            try:
                await demands.refresh()
            except DemandsUnavailable as exc:
                log.warning("step-up demands unknown until the alerting service answers: %s", exc)
        app[GATEWAY] = Gateway(
            config=config,
            routes=routes,
            verifier=verifier,
            resolver=AttributeResolver(session, config.upstream.url, config.upstream.lookup_headers,
                                       config.upstream.lookup_cache_seconds),
            pdp=pdp,
            forwarder=Forwarder(session, config.upstream),
            identity=identity,
            audit=writer,
            audit_store=store,
            strip_headers=frozenset(h.lower() for h in config.strip_request_headers),
            trusted_proxies=tuple(ipaddress.ip_network(n, strict=False) for n in config.trusted_proxies),
            approvals=approval_store,
            executor=ApprovalExecutor(
                approval_store, session, config.upstream, identity, writer,
                internal=None if access is None else
                (lambda method, path, body, actor: access_api.replay(access, method, path, body, actor)),
                public_origin=config.public_origin),
            revocations=revocations,
            access=access,
            sso=sso,
            alerts=alerts,
            enforcement=enforcement,
            metrics=metrics,
            reviews=reviews,
            mask_hasher=mask_hasher,
            reveals=reveals,
            step_up_demands=demands,
            not_me=_not_me_links(config),
            not_me_uses=NotMeUses(engine),
        )
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(app[GATEWAY].executor.run_forever(config.approval_sweep_seconds),
                                  name="approval-sweeper"),
                 loop.create_task(revocations.run_forever(), name="revocation-refresh"),
                 loop.create_task(reveals.run_forever(), name="reveal-refresh")]
        if demands is not None:
            tasks.append(loop.create_task(demands.run_forever(), name="step-up-demands"))
        if heap is not None and config.heap_trim_seconds > 0:
            tasks.append(loop.create_task(trim_forever(heap, config.heap_trim_seconds), name="heap-trim"))
        if access is not None and config.keycloak_admin is not None:
            watcher = AdminEventWatcher(access, revocation_store, revocations,
                                        config.keycloak_admin.events_interval_seconds)
            tasks.append(loop.create_task(watcher.run_forever(), name="keycloak-admin-events"))
            tasks.append(loop.create_task(access.run_grant_sweeper(config.grant_sweep_seconds), name="grant-sweeper"))
        if witness is not None:
            tasks.append(loop.create_task(witness.run_forever(), name="audit-witness"))
            witness.notify()  # a witness left behind by an earlier run catches up now
        if reviews is not None:
            async def review_closed(done: dict[str, Any]) -> None:
                await writer.commit(reviews_api.closed_record(done))

            async def review_retried(done: dict[str, Any]) -> None:
                await writer.commit(reviews_api.retried_record(done))

            tasks.append(loop.create_task(run_review_sweeper(reviews, config.review_sweep_seconds, review_closed,
                                                             review_retried), name="review-sweeper"))
        if config.audit.retention_days is not None and config.audit.archive_dir is not None and signing_key:
            tasks.append(loop.create_task(run_retention_forever(
                store, signing_key, config.audit.archive_dir, config.audit.retention_days,
                config.audit.archive_every_seconds), name="audit-retention"))
        app[TASKS] = tasks

    async def cleanup(app: web.Application) -> None:
        for task in app.get(TASKS, []):
            task.cancel()
        if IN_PROCESS_PDP in app:
            await app[IN_PROCESS_PDP].close()
        if MANAGEMENT in app:
            await app[MANAGEMENT].cleanup()
        if GATEWAY in app:
            await app[GATEWAY].audit.close()
        await engine.dispose()
        if SESSION in app:
            await app[SESSION].close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.on_response_prepare.append(apply_session_cookie)
    app.on_response_prepare.append(_neutral_server_header)
    setup_templates(app)  # the console's pages (Jinja2, autoescaped)
    app.add_subapp(PREFIX, gateway_endpoints(config))
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
