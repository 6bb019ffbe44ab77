"""The bundle service's publish gate state: a held build does not replace what is served until
accepted; approvers need the role and a stepped-up token (the real gate: tests/integration/test_policy_gate.py)."""

from __future__ import annotations

from pathlib import Path

from authorizer.authn.identity import Principal
from policy_service.builder import BuildResult
from policy_service.gate import GateSettings, may_approve
from policy_service.server import PolicyState


def _build(tmp_path: Path, revision: str) -> BuildResult:
    bundle, wasm = tmp_path / f"{revision}.tar.gz", tmp_path / f"{revision}.wasm.tar.gz"
    bundle.write_bytes(revision.encode())
    wasm.write_bytes(b"wasm-" + revision.encode())
    return BuildResult(revision, True, bundle, "", "2026-12-07T00:00:00Z", wasm, "")


def test_a_held_build_waits_and_an_accepted_one_is_served(tmp_path: Path) -> None:
    state = PolicyState()
    state.accept(_build(tmp_path, "r1"))
    state.hold(_build(tmp_path, "r2"), {"changed": 3, "widening": 1, "passes": False})
    status = state.status()
    assert status["status"] == "held_for_approval" and status["serving"]["revision"] == "r1"
    assert status["held"]["revision"] == "r2" and status["held"]["report"]["changed"] == 3
    assert state.wasm_bundle == b"wasm-r1"
    state.hold(_build(tmp_path, "r3"), {"changed": 1, "passes": False})  # a newer edit replaces the held one
    assert state.status()["held"]["revision"] == "r3" and not (tmp_path / "r2.tar.gz").exists()
    assert state.held is not None
    state.accept(state.held)
    assert state.status()["status"] == "ok" and state.status()["held"] is None and state.wasm_bundle == b"wasm-r3"


def test_an_approver_needs_the_role_and_a_stepped_up_token() -> None:
    gate = GateSettings("sqlite+aiosqlite:///x.db")
    admin = Principal("u1", "admin1", ("sysadmin",), {}, acr="mfa")
    assert may_approve(gate, admin)
    assert not may_approve(gate, Principal("u1", "admin1", ("sysadmin",), {}, acr="pwd"))
    assert not may_approve(gate, Principal("u2", "picker.hf", ("picker",), {}, acr="mfa"))
