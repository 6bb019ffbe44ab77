"""Issue "Performance": the in-process PDP (the bundle compiled to Wasm) decides exactly as the OPA
sidecar does, on the same bundle.

Two ways, against the real stack:

- every role x module x verb of the policy's own data (the RBAC matrix), with scopes in and out,
  every resource kind, step-up fresh and stale, grant windows open and closed, approvals by the
  requester and by others: each input decided by OPA (HTTP) and by the Wasm bundle the bundle
  service serves (signature verified), the decision documents compared whole;
- the product's cases (data scope, proxy hygiene) and every other request of the integration
  suite, sent to the real proxy, which runs ``opa.evaluation: in_process`` with
  ``compare_with_sidecar`` (tests/conftest.py): every decision it makes is also asked of OPA, and
  the proxy's counters must show comparisons and no mismatch (the stack fixture checks the same
  counters once more when the session ends).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import wasmtime
from joserfc.jwk import RSAKey

from authorizer.authz.bundle_signature import SIGNATURE_HEADER
from authorizer.authz.inprocess_pdp import LoadedBundle, load_bundle
from authorizer.authz.pdp import parse_decision
from tests.support.policy_inputs import matrix_inputs
from tests.support.stack import Stack

ENTRYPOINT = "wms/authz/decision"


def _opa(stack: Stack, client: httpx.Client, path: str, policy_input: dict[str, Any] | None = None) -> Any:
    url = f"{stack.stack.opa_url}/v1/data/{path}"
    resp = client.post(url, json={"input": policy_input}) if policy_input is not None else client.get(url)
    assert resp.status_code == 200, resp.text
    return resp.json().get("result")


def _same_revision_bundle(stack: Stack, client: httpx.Client) -> LoadedBundle:
    """The Wasm bundle the bundle service serves, once OPA enforces the same revision."""
    key = RSAKey.import_key(stack.stack.policy_signing_key()[1].read_bytes())
    deadline = time.monotonic() + 20
    while True:
        resp = client.get(f"{stack.stack.policy_url}/bundles/wms.wasm.tar.gz")
        assert resp.status_code == 200
        bundle = load_bundle(resp.content, resp.headers.get(SIGNATURE_HEADER), key, ENTRYPOINT, wasmtime.Engine())
        if _opa(stack, client, "wms/authz/policy_revision") == bundle.revision:
            return bundle
        assert time.monotonic() < deadline, "OPA and the bundle service did not converge on one revision"
        time.sleep(0.5)


def _normalized(result: Any) -> Any:
    """A decision document with its one set (the mask) in one order: OPA serializes sets
    sorted, the Wasm build in insertion order; the PEP sorts it (parse_decision)."""
    if isinstance(result, dict) and isinstance(result.get("obligations"), dict):
        obligations = dict(result["obligations"])
        obligations["mask"] = sorted(obligations.get("mask") or [])
        return {**result, "obligations": obligations}
    return result


def test_every_matrix_input_is_decided_alike_in_process_and_by_opa(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        bundle = _same_revision_bundle(stack, client)
        roles = sorted(_opa(stack, client, "wms/authz/role_names"))
        modules = sorted(_opa(stack, client, "wms/authz/modules"))
        assert {"picker", "sysadmin", "warehouse_keeper"} <= set(roles) and {"orders", "iam"} <= set(modules)
        inputs = matrix_inputs(roles, modules, int(time.time() * 1000))
        differences, allowed, statuses = [], 0, set()
        for policy_input in inputs:
            opa = _normalized(_opa(stack, client, ENTRYPOINT, policy_input))
            wasm = json.loads(bundle.policy.evaluate(ENTRYPOINT, json.dumps(policy_input).encode()))
            in_process = _normalized(wasm[0]["result"] if wasm else None)
            if opa != in_process or parse_decision(opa) != parse_decision(in_process):
                differences.append((policy_input, opa, in_process))
            allowed += bool(opa and opa["allow"])
            statuses.add(opa["status"] if opa else None)
    assert not differences, f"{len(differences)} of {len(inputs)} differ; first: {differences[0]}"
    # the inputs reach every outcome the policy has (else the comparison proves little)
    assert len(inputs) > 7000 and allowed > 100 and {200, 401, 403, 404} <= statuses


def _metric(stack: Stack, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.stack.settings.ports.gateway_management}/metrics", timeout=10).text
    found = re.search(rf"^wmsgate_pdp_{name} ([0-9.e+]+)$", text, re.M)
    assert found, f"wmsgate_pdp_{name} is not exported: is the test proxy comparing with OPA?"
    return float(found.group(1))


def _case_requests(stack: Stack) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(user, method, path, body) of the data-scope cases and a few ordinary requests."""
    douyin, hf, sh = stack.order(channel="douyin"), stack.order(warehouse="HF", status="picked"), \
        stack.order(warehouse="SH", status="picked")
    return [
        ("ops.taobao", "GET", f"/legacy/order_detail.do?order_no={douyin['order_no']}", None),   # CASE-SCOPE-001
        ("keeper.hf", "POST", "/api/orders/batch_status",
         {"order_nos": [hf["order_no"], sh["order_no"]], "status": "exception"}),                 # CASE-SCOPE-002
        ("keeper.hf", "GET", "/api/inventory?warehouse=HF&warehouse=SH", None),                  # CASE-SCOPE-003
        ("keeper.hf", "POST", "/api/inventory/adjust",
         {"warehouse": "SH", "location": "A01-01", "sku": "SKU00001", "delta": -5, "reason": "x"}),  # CASE-SCOPE-004
        ("ops.amazon", "GET", "/api/reports/sales", None),                                       # CASE-SCOPE-005
        ("picker.hf", "GET", f"/api/orders/{hf['order_no']}", None),                             # CASE-SCOPE-007
        ("picker.hf", "GET", "/api/picking/tasks?page_size=5", None),
        ("picker.hf", "GET", "/api/reports/finance", None),
        ("finance", "GET", "/api/reports/finance", None),
        ("supervisor", "DELETE", f"/api/orders/{sh['order_no']}", None),  # a step-up challenge (401)
        ("admin1", "GET", "/_gateway/audit/records?limit=1", None),
    ]


def test_case_requests_through_the_proxy_are_decided_alike(stack: Stack) -> None:
    """CASE-SCOPE-001..007 and ordinary requests: the proxy's in-process decisions match OPA's."""
    before = _metric(stack, "compared")
    requests = _case_requests(stack)
    for user, method, path, body in requests:
        with stack.client(user) as c:
            resp = c.request(method, path, json=body)
        assert resp.status_code < 500 and resp.status_code != 202, (user, path, resp.status_code, resp.text)
    assert _metric(stack, "compared") >= before + len(requests)  # every decision was checked against OPA's
    assert _metric(stack, "mismatched") == 0
