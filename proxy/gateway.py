"""The gateway's collaborators (built once per app) and the birth of an audit record."""

from __future__ import annotations

import ipaddress
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from authorizer.approvals.store import ApprovalStore
from authorizer.audit import AuditRecord, AuditStore, AuditWriter
from authorizer.authn.identity import TokenVerifier
from authorizer.authn.revocation import RevocationCache
from authorizer.authn.step_up_demands import StepUpDemands
from authorizer.authz.attributes import AttributeResolver
from authorizer.authz.pdp import DecisionPoint, Obligations
from authorizer.authz.routes import RouteMap
from authorizer.config import GatewayConfig
from authorizer.enforce.enforcement import EnforcementModes
from authorizer.enforce.exports import EXPORT_APPROVAL_PARAM
from authorizer.enforce.mask_kinds import KeyedHasher, MaskKinds
from authorizer.enforce.reveals import RevealCache
from authorizer.iam.access import AccessService
from authorizer.iam.not_me import NotMeLinks, NotMeUses
from authorizer.iam.review_service import ReviewService
from proxy.forward import Forwarder
from proxy.management.alerts import AlertsClient
from proxy.metrics import GatewayMetrics
from proxy.replay import ApprovalExecutor
from proxy.sso import SsoService
from proxy.upstream_identity import UpstreamIdentity


@dataclass
class Gateway:
    """The PEP's collaborators, built once per app by :func:`proxy.app.create_app`."""

    config: GatewayConfig
    routes: RouteMap
    verifier: TokenVerifier
    resolver: AttributeResolver
    pdp: DecisionPoint
    forwarder: Forwarder
    identity: UpstreamIdentity
    audit: AuditWriter
    audit_store: AuditStore
    strip_headers: frozenset[str]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    approvals: ApprovalStore
    executor: ApprovalExecutor
    revocations: RevocationCache
    access: AccessService | None
    sso: SsoService | None = None
    alerts: AlertsClient | None = None
    enforcement: EnforcementModes = field(default_factory=EnforcementModes)
    metrics: GatewayMetrics | None = None
    reviews: ReviewService | None = None
    mask_hasher: KeyedHasher | None = None
    reveals: RevealCache | None = None
    step_up_demands: StepUpDemands | None = None
    not_me: NotMeLinks | None = None
    not_me_uses: NotMeUses | None = None

    def mask_kinds(self, obligations: Obligations) -> MaskKinds:
        """How a decision's masked fields are masked (its ``mask_kinds``, hashes under this
        gateway's key; without a key ``hash`` fields are redacted)."""
        return MaskKinds(obligations.mask_kinds, self.mask_hasher)

    @property
    def tenant_params(self) -> frozenset[str]:
        """The tenant's query parameter, when the WMS has tenants chosen by one (links in
        answers keep it, so following them stays in the same tenant)."""
        tenant = self.config.upstream.tenant
        return frozenset({tenant.query_param}) if tenant is not None and tenant.query_param else frozenset()

    @property
    def gateway_params(self) -> frozenset[str]:
        """Query parameters the gateway consumes itself (never forwarded to the WMS): the
        tenant's and :data:`EXPORT_APPROVAL_PARAM`."""
        return self.tenant_params | {EXPORT_APPROVAL_PARAM}


GATEWAY = web.AppKey("gateway", Gateway)


def client_address(request: web.Request, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The real client IP: the peer, or, when the peer is a trusted proxy, the last
    ``X-Forwarded-For`` entry that is not itself trusted."""
    peer = request.remote or ""

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer


def new_record(request: web.Request, gw: Gateway, path_limit: int = 2048) -> AuditRecord:
    """A fresh audit record of ``request`` (denied until decided): time, request line, from where."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(time.time() * 1000), decision="deny", reason_code="",
        http_status=0, method=request.method, path=raw_path[:path_limit], query=raw_query[:path_limit],
        client_ip=client_address(request, gw.trusted_proxies),
        user_agent=request.headers.get("User-Agent", "")[:512], device_id=request.headers.get("X-Device-Id", "")[:128],
    )
