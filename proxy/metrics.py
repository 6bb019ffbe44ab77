"""Prometheus metrics of one proxy process, served on the management listener only.

``GET /metrics`` on ``management.host:management.port`` (+ the worker index under
``--workers``) answers the Prometheus text format. The public listener never serves it: its
``/metrics`` is a WMS path like any other, decided by the policy.

Metrics (``wmsgate_`` prefix; times in seconds):

- ``requests_total{module,verb,decision,status}``: every request the proxy answered
  (``module="-"`` before it was classified: hygiene, authentication, unmapped);
- ``request_seconds``: time spent in the gateway per request (histogram);
- ``decision_seconds``: the PDP's round trip per decision (histogram);
- ``upstream_seconds``: the WMS's answer time per forwarded request (histogram);
- ``audit_queue_records`` and ``audit_spool_bytes``: audit records not yet committed, and
  the size of the spool file they wait in while the database is down;
- ``audit_witness_lag_checkpoints``, ``audit_witness_failures`` (with ``audit.witness_dir``):
  signed checkpoints not yet copied to the audit witness, and failed copies (retried);
- ``revocation_refresh_age_seconds``: since the revocation list was last refreshed;
- ``gc_frozen_objects``: objects set aside from the garbage collector's full collections after
  start-up (``gc.freeze``, :mod:`proxy.collector`; 0 in a process that did not freeze them);
- ``policy_bundle_info{revision}``: the bundle revision of the last decision;
- ``pdp_cache_hits``, ``pdp_cache_misses`` (``opa.evaluation: in_process``): decisions answered
  from the clock-free decision cache, and evaluated;
- ``pdp_compared``, ``pdp_mismatched``, ``pdp_compare_skipped`` (in-process; counted when
  ``opa.compare_with_sidecar``): decisions checked against OPA's, those that differed, those not compared.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (no process-global state).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from authorizer.audit import AuditRecord
from authorizer.audit.witness import WitnessPublisher
from authorizer.authz.inprocess_pdp import InProcessPdp
from authorizer.config import ManagementListener

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """The proxy's metrics in their own registry.

    Args:
        audit_pending: gives the audit records not yet committed (memory and spool).
        spool_bytes: gives the audit spool file's size in bytes.
        revocation_age: gives the seconds since the revocation list was last refreshed.
        pdp: the in-process PDP (its decision cache, its differential check against OPA when on).
        witness: copies checkpoints to the audit witness (None: no witness configured).
    """

    def __init__(self, audit_pending: Callable[[], float], spool_bytes: Callable[[], float],
                 revocation_age: Callable[[], float], pdp: InProcessPdp | None = None,
                 witness: WitnessPublisher | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter("wmsgate_requests", "Requests answered by the proxy",
                                 ["module", "verb", "decision", "status"], registry=self.registry)
        self._request_seconds = Histogram("wmsgate_request_seconds", "Time spent in the gateway per request",
                                          buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._decision_seconds = Histogram("wmsgate_decision_seconds", "PDP round trip per decision",
                                           buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._upstream_seconds = Histogram("wmsgate_upstream_seconds", "WMS answer time per forwarded request",
                                           buckets=_LATENCY_BUCKETS, registry=self.registry)
        Gauge("wmsgate_audit_queue_records", "Audit records not yet committed to the store",
              registry=self.registry).set_function(audit_pending)
        Gauge("wmsgate_audit_spool_bytes", "Size of the audit spool file", registry=self.registry).set_function(
            spool_bytes)
        Gauge("wmsgate_revocation_refresh_age_seconds", "Seconds since the revocation list was refreshed",
              registry=self.registry).set_function(revocation_age)
        self._frozen = Gauge("wmsgate_gc_frozen_objects", "Objects set aside from the garbage collector after start-up",
                             registry=self.registry)
        if witness is not None:
            Gauge("wmsgate_audit_witness_lag_checkpoints", "Signed checkpoints not yet copied to the audit witness",
                  registry=self.registry).set_function(lambda: float(witness.lag))
            Gauge("wmsgate_audit_witness_failures", "Failed copies of checkpoints to the audit witness (retried)",
                  registry=self.registry).set_function(lambda: float(witness.failures))
        if pdp is not None:
            cache, seen = pdp.cache, pdp.comparison
            Gauge("wmsgate_pdp_cache_hits", "In-process decisions answered from the decision cache",
                  registry=self.registry).set_function(lambda: float(cache.hits))
            Gauge("wmsgate_pdp_cache_misses", "In-process decisions evaluated (not in the cache)",
                  registry=self.registry).set_function(lambda: float(cache.misses))
            Gauge("wmsgate_pdp_compared", "In-process decisions compared with OPA's",
                  registry=self.registry).set_function(lambda: float(seen.compared))
            Gauge("wmsgate_pdp_mismatched", "In-process decisions that differed from OPA's",
                  registry=self.registry).set_function(lambda: float(seen.mismatched))
            Gauge("wmsgate_pdp_compare_skipped", "In-process decisions not compared (OPA down, other revision)",
                  registry=self.registry).set_function(lambda: float(seen.skipped))
        self._bundle = Info("wmsgate_policy_bundle", "Policy bundle revision of the last decision",
                            registry=self.registry)
        self._revision = ""

    def frozen(self, count: int) -> None:
        """Note how many objects start-up set aside from the garbage collector (:mod:`proxy.collector`)."""
        self._frozen.set(count)

    def observe(self, record: AuditRecord, decision_seconds: float | None) -> None:
        """Count one answered request from its audit record (and the PDP's time, if it was asked)."""
        self._requests.labels(record.module or "-", record.verb or "-", record.decision,
                              str(record.http_status)).inc()
        self._request_seconds.observe(record.total_ms / 1000)
        if decision_seconds is not None:
            self._decision_seconds.observe(decision_seconds)
        if record.upstream_ms is not None:
            self._upstream_seconds.observe(record.upstream_ms / 1000)
        if record.policy_revision and record.policy_revision != self._revision:
            self._revision = record.policy_revision
            self._bundle.info({"revision": record.policy_revision})

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def management_app(metrics: Callable[[], GatewayMetrics | None]) -> web.Application:
    """The management listener's app: ``GET /metrics`` (``metrics`` gives the registry once started)."""

    async def handler(_: web.Request) -> web.Response:
        current = metrics()
        if current is None:
            return web.Response(status=503, text="starting\n")
        return web.Response(body=current.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                                "Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


async def start_management(app: web.Application, listener: ManagementListener,
                           offset: int = 0) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on the management listener (``port + offset``: a worker's index; port 0: any free port).

    Returns:
        The runner (clean it up on shutdown) and the port it listens on.

    Raises:
        OSError: the port cannot be bound (the proxy does not start without its metrics).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = listener.port + offset if listener.port else 0
    site = web.TCPSite(runner, listener.host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("management listener on %s:%s (/metrics)", listener.host, bound)
    return runner, int(bound)
