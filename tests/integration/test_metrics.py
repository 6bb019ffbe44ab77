"""Issue "One audited-request path": ``/metrics`` on the management listener of the real proxy
(never on its public listener), with the real Keycloak, OPA and demo WMS behind it."""

from __future__ import annotations

import re
import time

import httpx

from tests.support.stack import Stack, assert_refused


def _metrics(stack: Stack, port: int) -> str:
    resp = httpx.get(f"http://{stack.stack.settings.host}:{port}/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return resp.text


def _count(text: str, **labels: str) -> float:
    """The value of ``wmsgate_requests_total`` with exactly ``labels`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^wmsgate_requests_total\{{{re.escape(wanted)}\}} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_requests_decisions_and_the_bundle_are_counted_on_the_management_port(stack: Stack) -> None:
    port = stack.stack.settings.ports.gateway_management
    before = _metrics(stack, port)
    with stack.client("picker.hf") as c:
        assert c.get("/api/picking/tasks").status_code == 200
        assert_refused(c.get("/api/reports/finance"), 403, "missing_permission")
    after = _metrics(stack, port)
    allowed = {"module": "orders", "verb": "pick", "decision": "allow", "status": "200"}
    denied = {"module": "reports.finance", "verb": "view", "decision": "deny", "status": "403"}
    assert _count(after, **allowed) == _count(before, **allowed) + 1
    assert _count(after, **denied) >= _count(before, **denied) + 1
    assert re.search(r'^wmsgate_policy_bundle_info\{revision="[^"]+"\} 1\.0$', after, re.M)
    assert re.search(r"^wmsgate_decision_seconds_count [1-9]", after, re.M)
    assert re.search(r"^wmsgate_revocation_refresh_age_seconds [0-9.e+-]+$", after, re.M)
    age = float(re.search(r"^wmsgate_revocation_refresh_age_seconds ([0-9.e+-]+)$", after, re.M).group(1))
    assert age < 5  # the stack refreshes revocations every 0.5 s
    # `wmsgate proxy` froze what its start-up built (proxy/collector.py): tens of thousands of objects
    frozen = float(re.search(r"^wmsgate_gc_frozen_objects ([0-9.e+-]+)$", after, re.M).group(1))
    assert frozen > 10_000
    # the test stack writes an audit witness (in a task of its own); nothing stays stuck on its way there
    assert re.search(r"^wmsgate_audit_witness_failures 0\.0$", after, re.M)
    deadline = time.monotonic() + 10
    while not re.search(r"^wmsgate_audit_witness_lag_checkpoints 0\.0$", _metrics(stack, port), re.M):
        assert time.monotonic() < deadline, "checkpoints stay behind on their way to the witness"
        time.sleep(0.2)


def test_the_public_listener_does_not_serve_metrics(stack: Stack) -> None:
    with stack.client("finance") as c:
        resp = c.get("/metrics")
    assert "wmsgate_requests_total" not in resp.text
    assert_refused(resp, 403, "route_not_mapped")
