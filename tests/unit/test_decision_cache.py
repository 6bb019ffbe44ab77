"""The clock-free decision cache: what it keeps cannot change with the time or the client's address
(checked on every matrix input against the real policy compiled to Wasm), and what it refuses to
keep does change with the clock."""

from __future__ import annotations

import copy
import io
import json
import tarfile
import time
from typing import Any

import pytest

from authorizer.authz.decision_cache import (
    PROVEN_READERS,
    DecisionCache,
    cache_key,
    clock_free,
    clock_readers,
    proof_holds,
)
from authorizer.authz.opa_wasm import WasmPolicy
from authorizer.authz.pdp import Decision, Obligations, Reason, parse_decision
from policy_service.builder import BundleBuilder
from tests.support.policy_inputs import matrix_inputs
from wmsgate.tools import REPO, locate_tools

ENTRYPOINT = "wms/authz/decision"
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> WasmPolicy:
    """rego/base + rego/demo compiled to Wasm by the bundle service's builder."""
    result = BundleBuilder((REPO / "rego" / "base", REPO / "rego" / "demo"), locate_tools().opa,
                           tmp_path_factory.mktemp("bundles"), run_tests=False).build()
    assert result.ok and result.wasm_bundle is not None, result.error
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(result.wasm_bundle.read_bytes()), mode="r:gz") as tar:
        for info in tar:
            handle = tar.extractfile(info)
            if handle is not None:
                members[info.name.lstrip("/")] = handle.read()
    data = json.loads(members["data.json"])
    data["system"] = {"bundles": {"wms": {"manifest": json.loads(members[".manifest"])}}}
    return WasmPolicy(members["policy.wasm"], data)


def _decide(policy: WasmPolicy, policy_input: dict[str, Any]) -> Decision:
    results = json.loads(policy.evaluate(ENTRYPOINT, json.dumps(policy_input).encode()))
    return parse_decision(results[0]["result"] if results else None)


def _elsewhen(policy_input: dict[str, Any], shift_ms: int, client_ip: str) -> dict[str, Any]:
    moved = copy.deepcopy(policy_input)
    moved["request"]["time_ms"] += shift_ms
    moved["request"]["client_ip"] = client_ip
    return moved


def _inputs(policy: WasmPolicy) -> list[dict[str, Any]]:
    roles = ["picker", "temp_picker", "reviewer", "packer", "warehouse_keeper", "ops_supervisor", "channel_ops",
             "finance", "sysadmin"]
    modules = ["orders", "order_items", "order_amounts", "customers", "customs", "inventory", "locations", "batches",
               "stocktakes", "reports.warehouse", "reports.sales", "reports.finance", "reports.fulfillment", "reviews",
               "audit", "iam", "alerts", "portal"]
    return matrix_inputs(roles, modules, int(time.time() * 1000))


def test_what_the_cache_keeps_is_the_same_at_any_time_and_from_any_address(policy: WasmPolicy) -> None:
    kept, checked = 0, 0
    for policy_input in _inputs(policy):
        decision = _decide(policy, policy_input)
        if not clock_free(policy_input, decision):
            continue
        kept += 1
        for shift, address in ((-48 * HOUR_MS, "10.9.9.9"), (30 * 24 * HOUR_MS, "192.0.2.1"), (1, "::1")):
            checked += 1
            assert _decide(policy, _elsewhen(policy_input, shift, address)) == decision, policy_input
    assert kept > 3000 and checked == 3 * kept


def test_what_the_cache_refuses_to_keep_can_change_with_the_clock(policy: WasmPolicy) -> None:
    """Grant windows and step-up age: the same input decided otherwise two hours later."""
    changed = {"grants": 0, "step_up": 0}
    for policy_input in _inputs(policy):
        decision = _decide(policy, policy_input)
        if clock_free(policy_input, decision):
            continue
        later = _decide(policy, _elsewhen(policy_input, 2 * HOUR_MS, "127.0.0.1"))
        if later != decision:
            changed["grants" if policy_input["subject"]["grants"] else "step_up"] += 1
    assert changed["grants"] > 0 and changed["step_up"] > 0


def _allowed() -> Decision:
    return Decision(True, 200, (Reason("allowed", "允许", "allowed"),), Obligations(), "r1")


def _input(user: str, grants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"subject": {"id": user, "roles": ["picker"], "grants": grants or []},
            "action": {"module": "orders", "verb": "view"}, "resource": {"kind": "item", "id": "SO1"},
            "request": {"method": "GET", "route": "/api/orders/{no}", "client_ip": "10.0.0.1", "time_ms": 1}}


def test_the_key_leaves_out_time_and_address_and_names_the_revision() -> None:
    one, two = _input("u1"), _input("u1")
    two["request"].update(time_ms=99_999, client_ip="10.0.0.2")
    assert cache_key("r1", one) == cache_key("r1", two)
    assert cache_key("r1", one) != cache_key("r2", one)
    assert cache_key("r1", one) != cache_key("r1", _input("u2"))


def test_the_cache_keeps_only_clock_free_decisions_and_the_most_recent_ones() -> None:
    cache = DecisionCache(2)
    granted = _input("u0", [{"role": "picker", "valid_from": 0, "valid_until": 10}])
    cache.put(cache_key("r", granted), granted, _allowed())
    assert cache.get(cache_key("r", granted)) is None and len(cache) == 0
    for user in ("u1", "u2", "u3"):
        cache.put(cache_key("r", _input(user)), _input(user), _allowed())
    assert len(cache) == 2 and cache.get(cache_key("r", _input("u1"))) is None
    assert cache.get(cache_key("r", _input("u3"))) == _allowed()
    assert cache.hits == 1 and cache.misses == 2
    assert DecisionCache(0).get(b"x") is None
    empty = DecisionCache(0)
    empty.put(cache_key("r", _input("u1")), _input("u1"), _allowed())
    assert len(empty) == 0


def test_held_and_step_up_decisions_are_not_clock_free() -> None:
    held = Decision(True, 200, (Reason("allowed", "", ""),), Obligations(), "r", high_risk="order_delete")
    assert not clock_free(_input("u1"), held)
    approving = _input("u1")
    approving["action"]["verb"] = "approve"
    assert not clock_free(approving, _allowed())


def test_the_rules_read_the_clock_only_where_the_proof_says() -> None:
    """The proof in authorizer/authz/decision_cache.py names the rule lines that read time_ms and
    client_ip (and the rules using them); a new reader must extend it first (the proxy also checks
    every bundle it loads and turns the cache off for one the proof does not cover)."""
    sources = {str(p): p.read_text(encoding="utf-8") for p in (REPO / "rego").rglob("*.rego")}
    assert clock_readers(sources) == PROVEN_READERS and proof_holds(sources)
    office_hours = {"extra.rego": "office_hours if {\n\thour := (input.request.time_ms / 3600000) % 24\n}\n"}
    allow_list = {"extra.rego": 'allow if net.cidr_contains("10.0.0.0/8", input.request.client_ip)\n'}
    whole_input = {"extra.rego": "allow if walk(input, [_, _])\n"}
    for extra in (office_hours, allow_list, whole_input):
        assert not proof_holds({**sources, **extra})
    assert proof_holds({**sources, "extra_test.rego": "test_x if input.request.time_ms > 0\n"})  # tests are not rules


def test_an_operation_the_parser_drops_still_makes_a_decision_clock_dependent() -> None:
    """A deployment's operation id that is "" is not named in the parsed decision, yet has a step-up."""
    assert clock_free(_input("u1"), _allowed())
    assert not clock_free(_input("u1"), _allowed(), high_risk="")
