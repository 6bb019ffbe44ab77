"""The real stack for integration and browser tests: Keycloak, OPA, the policy bundle service,
the demo WMS and the proxy on 127.0.0.1.

The stack runs on the default ports + 10000 with its own state folder, so a demo
running beside it is untouched. It starts once per test session, for whichever
test needs it first. If a tool is missing the tests fail (they are never
skipped): run ``make test``, which sets everything up first.
"""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from tests.support.stack import SERVICE_TOKEN, STATE, AccessLog, Stack, Tokens
from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.tools import REPO


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Start the real stack once for the whole session; stop it at the end."""
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    (STATE / "service-token").write_text(SERVICE_TOKEN + "\n", encoding="utf-8")
    shutil.copytree(REPO / "rego", STATE / "policy")  # a copy the hot-reload tests may edit
    settings = StackSettings(
        policy_dir=STATE / "policy",
        state=STATE,
        ports=Ports.offset(10000),
        fresh=True,
        proxy_overrides={
            "oidc.leeway_seconds": 1,
            "grants.sweep_seconds": 2,
            "audit.checkpoint_every_seconds": 1,
            "upstream.credentials": [{"header": "X-WMS-Service-Token", "file": str(STATE / "service-token")}],
        },
    )
    local = LocalStack(settings)
    local.start()
    try:
        yield Stack(local, Tokens(local.issuer), AccessLog(local.wms_access_log))
    finally:
        local.stop()
