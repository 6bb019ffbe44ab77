"""The real stack for integration and browser tests: Keycloak, OPA, the policy bundle service,
the demo WMS, the proxy and the alerting service on 127.0.0.1 (with a webhook and an SMTP
receiver for its alerts); and the store backend the tests run on
(``WMSGATE_TEST_DB=sqlite`` by default, or ``postgresql``: a throwaway cluster).

The stack runs on the default ports + 10000 (``WMSGATE_TEST_PORT_OFFSET`` picks another
offset, e.g. to run a second checkout's tests beside a CI run) with its own state folder,
so a demo running beside it is untouched. It starts once per test session, for whichever
test needs it first. If a tool is missing the tests fail (they are never
skipped): run ``make test``, which sets everything up first.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.auditdb import AuditDb, backend
from tests.support.sinks import SmtpSink, WebhookSink
from tests.support.stack import PASSWORD, SERVICE_TOKEN, STATE, AccessLog, Stack, Tokens
from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.pgcluster import LocalPostgres
from wmsgate.tools import REPO

#: Added to every default port (Keycloak 8180 -> 18180...); the checkout's state folder is its own.
PORT_OFFSET = int(os.environ.get("WMSGATE_TEST_PORT_OFFSET", "10000"))
PG_PORT = 5432 + PORT_OFFSET  # PostgreSQL's default port + the offset, like the stack's
_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres | None]:
    """A throwaway PostgreSQL cluster when ``WMSGATE_TEST_DB=postgresql``, else None."""
    if backend() != "postgresql":
        yield None
        return
    pg = LocalPostgres(PG_PORT)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def store_url(tmp_path: Path, pg_cluster: LocalPostgres | None) -> str:
    """A fresh, empty store for one test: a SQLite file, or a new PostgreSQL database."""
    if pg_cluster is not None:
        return pg_cluster.create_database(f"store_test_{next(_DATABASES)}")
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@dataclass(frozen=True)
class _AlertSinkPorts:
    webhook: int
    smtp: int


#: Where the test stack's alerting service delivers (the alerting port + 1 and + 2).
ALERT_SINKS = _AlertSinkPorts(Ports.offset(PORT_OFFSET).alerting + 1, Ports.offset(PORT_OFFSET).alerting + 2)
ALERT_WEBHOOK_SECRET = "test-alert-webhook-secret"


@pytest.fixture(scope="session")
def webhook_sink() -> Iterator[WebhookSink]:
    """The generic webhook the test stack's alerts go to (up; tests may take it down)."""
    sink = WebhookSink("127.0.0.1", ALERT_SINKS.webhook, ALERT_WEBHOOK_SECRET)
    sink.up()
    try:
        yield sink
    finally:
        sink.down()


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """The SMTP server the test stack's alert e-mails go to."""
    sink = SmtpSink("127.0.0.1", ALERT_SINKS.smtp)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def stack(pg_cluster: LocalPostgres | None) -> Iterator[Stack]:
    """Start the real stack once for the whole session; stop it at the end."""
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    (STATE / "service-token").write_text(SERVICE_TOKEN + "\n", encoding="utf-8")
    shutil.copytree(REPO / "rego" / "demo", STATE / "policy")  # a copy of the demo layer the hot-reload tests edit
    settings = StackSettings(
        policy_dir=STATE / "policy",
        state=STATE,
        ports=Ports.offset(PORT_OFFSET),
        fresh=True,
        proxy_overrides={
            "oidc.leeway_seconds": 1,
            "grants.sweep_seconds": 2,
            "access_reviews.sweep_seconds": 1,
            "access_reviews.min_deadline_hours": 0.001,  # the deadline test waits seconds, not a day
            "audit.checkpoint_every_seconds": 1,
            "upstream.credentials": [{"header": "X-WMS-Service-Token", "file": str(STATE / "service-token")}],
            # every decision of the suite is made in-process and checked against OPA's (the differential test)
            "opa.compare_with_sidecar": True,
        },
        alerting_overrides={
            "notifiers": [
                {"kind": "webhook", "name": "test-webhook", "url": f"http://127.0.0.1:{ALERT_SINKS.webhook}/alerts",
                 "secret": ALERT_WEBHOOK_SECRET, "timeout_seconds": 3},
                {"kind": "email", "name": "test-mail", "host": "127.0.0.1", "port": ALERT_SINKS.smtp,
                 "security": "none", "from": "wms-alerts@example.test", "to": ["security@example.test"],
                 "timeout_seconds": 3},
            ],
            "delivery.retry_initial_seconds": 0.5,
            "delivery.retry_max_seconds": 2,
            "keycloak.backfill_interval_seconds": 5,
        },
    )
    if pg_cluster is not None:
        settings = dataclasses.replace(settings, audit_url=pg_cluster.create_database("wmsgate"),
                                       alerts_url=pg_cluster.create_database("wmsgate_alerts"))
    local = LocalStack(settings)
    try:
        local.start()
        yield Stack(local, Tokens(local.issuer), AccessLog(local.wms_access_log),
                    AuditDb(local.audit_url, STATE, pg_cluster))
        _no_pdp_mismatch(local)
    finally:
        local.stop()


def _no_pdp_mismatch(local: LocalStack) -> None:
    """After the whole session: the proxy's in-process decisions all matched OPA's (see
    tests/integration/test_pdp_differential.py); a mismatch is logged in the proxy's log."""
    import re

    import httpx

    text = httpx.get(f"http://{local.settings.host}:{local.settings.ports.gateway_management}/metrics",
                     timeout=10).text
    counts = {name: float(m.group(1)) for name in ("compared", "mismatched")
              if (m := re.search(rf"^wmsgate_pdp_{name} ([0-9.e+]+)$", text, re.M))}
    assert "compared" in counts, "the test proxy does not compare its decisions with OPA's"
    assert counts.get("mismatched") == 0, f"in-process decisions differed from OPA's: see {local.logs}/proxy.log"
    # the counters restart with a proxy; its log (appended across restarts) keeps every mismatch
    log = (local.logs / "proxy.log").read_text(encoding="utf-8", errors="replace")
    assert "in-process decision differs from OPA's" not in log, f"see {local.logs}/proxy.log"


@pytest.fixture
def throwaway_user(stack: Stack) -> Iterator[Callable[..., tuple[str, str]]]:
    """Makes users that exist only for one test (deleted afterwards): ``make(prefix, enabled=True,
    roles=(), warehouses=(), attributes=None)``; with ``warehouses`` the scope is those warehouses
    and every channel and order type, ``attributes`` adds user attributes (``wms_reports_to``)."""
    admin = stack.keycloak_admin()
    made: list[str] = []

    def make(prefix: str, enabled: bool = True, roles: tuple[str, ...] = (), warehouses: tuple[str, ...] = (),
             attributes: dict[str, list[str]] | None = None) -> tuple[str, str]:
        username = f"{prefix}.{uuid.uuid4().hex[:6]}"
        user_id = admin.create_user({"username": username, "enabled": enabled, "firstName": "临时", "lastName": "测试",
                                     "email": f"{username}@example.test", "emailVerified": True,
                                     "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}]})
        made.append(user_id)
        if roles:
            admin.assign_realm_roles(user_id, [admin.get_realm_role(role) for role in roles])
        if warehouses or attributes:
            scope = {"wms_warehouse": list(warehouses), "wms_channel": ["*"], "wms_order_type": ["*"]} \
                if warehouses else {}
            admin.update_user(user_id, {"attributes": {**scope, **(attributes or {})}})
        return username, user_id

    yield make
    for user_id in made:
        admin.delete_user(user_id)
