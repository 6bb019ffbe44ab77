"""Issue 17, the publish gate: a bundle service with the gate on replays every edit against the real
proxy's audit trail; an edit that changes recorded decisions is held (the old bundle keeps serving)
until an admin with a stepped-up token approves it, and the approval is audited."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack
from wmsgate.tools import REPO, locate_tools


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture
def gated(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A second bundle service over a copy of the served policy, gated on the stack's audit trail."""
    policy = tmp_path / "policy"
    shutil.copytree(stack.stack.settings.policy_dir, policy)
    port = stack.stack.settings.ports.policy + 7
    url = f"http://{stack.stack.settings.host}:{port}"
    log = (tmp_path / "gated.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "policy_service", "--source", str(REPO / "rego" / "base"), "--source", str(policy),
         "--opa", str(locate_tools().opa), "--workdir", str(tmp_path / "work"), "--host", stack.stack.settings.host,
         "--port", str(port), "--poll-seconds", "0.5", "--no-tests", "--gate-audit-db", stack.audit.url,
         "--gate-days", "1", "--gate-max-changes", "0", "--gate-issuer", stack.stack.issuer],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        _wait(lambda: _status(url) is not None, 120, "the gated bundle service")
        yield url, policy
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _status(url: str) -> dict[str, Any] | None:
    try:
        resp = httpx.get(f"{url}/status", timeout=5)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def _take(policy: Path, permission: str) -> None:
    roles = policy / "wms" / "roles" / "data.yaml"
    text = roles.read_text(encoding="utf-8")
    old = "permissions: [portal:view, orders:view, orders:pick, orders:scan]"
    assert old in text
    roles.write_text(text.replace(old, old.replace(f", {permission}", ""), 1), encoding="utf-8")


def test_an_edit_that_changes_recorded_decisions_waits_for_an_admin(stack: Stack,
                                                                    gated: tuple[str, Path]) -> None:
    url, policy = gated
    with stack.client("picker.hf") as picker:
        for _ in range(2):
            pick = picker.get("/api/picking/tasks", params={"page_size": 1})
            assert pick.status_code == 200
    stack.audit_record(pick.headers["X-Decision-Id"])  # the gate replays the trail: the picks are in it
    before = _status(url)
    assert before is not None and before["status"] == "ok"
    served = before["serving"]["revision"]

    # an edit no recorded request notices goes live at once
    masks = policy / "wms" / "masks" / "data.yaml"
    masks.write_text(masks.read_text(encoding="utf-8") + "\n# reviewed 2026-12\n", encoding="utf-8")
    _wait(lambda: (_status(url) or {}).get("serving", {}).get("revision") != served, 120, "the harmless edit")
    harmless = _status(url)
    assert harmless is not None and harmless["status"] == "ok" and harmless["held"] is None
    served = harmless["serving"]["revision"]

    _take(policy, "orders:pick")
    _wait(lambda: (_status(url) or {}).get("status") == "held_for_approval", 120, "the edit to be held")
    held = _status(url)
    assert held is not None and held["serving"]["revision"] == served, "the old policy keeps serving"
    report = held["held"]["report"]
    assert report["passes"] is False and report["changed"] >= 2 and report["failed"] == 0
    assert any(g["kind"] == "revoked" and g["route"] == "/api/picking/tasks" for g in report["groups"])
    assert httpx.get(f"{url}/bundles/wms.wasm.tar.gz", timeout=10).headers["ETag"] == f'"{served}"'
    revision = held["held"]["revision"]

    with httpx.Client(base_url=url, timeout=30) as service:
        assert service.post("/approve", json={"revision": revision}).status_code == 401
        no_mfa = {"Authorization": f"Bearer {stack.tokens.get('admin1')}"}
        assert service.post("/approve", json={"revision": revision}, headers=no_mfa).status_code == 403
        picker = {"Authorization": f"Bearer {stack.tokens.get('picker.hf')}"}
        assert service.post("/approve", json={"revision": revision}, headers=picker).status_code == 403

    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "policy", "held", "--service", url], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and revision in out.stdout and "revoked" in out.stdout, out.stdout + out.stderr
    env = {**os.environ, "WMSGATE_TOKEN": stack.tokens.mfa("admin1")}
    wrong = subprocess.run([sys.executable, "-m", "wmsgate.cli", "policy", "approve", "sha256:0000000000000000",
                            "--service", url], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert wrong.returncode == 1 and "not_held" in wrong.stderr
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "policy", "approve", revision, "--service", url],
                         cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    after = _status(url)
    assert after is not None and after["status"] == "ok" and after["serving"]["revision"] == revision
    assert after["approved_by"]["username"] == "admin1"
    record = stack.audit_record(after["approved_by"]["decision_id"])
    assert (record["username"], record["module"], record["verb"], record["resource_id"], record["reason_code"]) == (
        "admin1", "sysadmin", "approve", revision, "policy_edit_approved")
