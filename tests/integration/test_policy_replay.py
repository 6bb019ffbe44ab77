"""Issue 17, policy replay: recorded requests re-decided under a draft policy, against the real
proxy's audit trail, the real bundle service's live bundle and a draft built with the real OPA."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _replay(stack: Stack, draft: Path, since: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "policy", "replay", "--config",
                           str(stack.stack.gateway_config), "--bundle", str(draft), "--since", since, *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def _draft_without(stack: Stack, tmp_path: Path, role: str, permission: str) -> Path:
    """A copy of the served policy layer with ``permission`` taken from ``role``."""
    draft = tmp_path / "draft"
    shutil.copytree(stack.stack.settings.policy_dir, draft)
    roles = draft / "wms" / "roles" / "data.yaml"
    lines = roles.read_text(encoding="utf-8").splitlines()
    at = lines.index(f"{role}:")
    perm_line = next(i for i in range(at + 1, len(lines)) if lines[i].strip().startswith("permissions:"))
    assert f" {permission}," in lines[perm_line] or f" {permission}]" in lines[perm_line]
    lines[perm_line] = lines[perm_line].replace(f" {permission},", "").replace(f", {permission}]", "]")
    roles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return draft


def test_removing_a_picker_permission_flips_exactly_the_recorded_picker_calls_of_that_module(
        stack: Stack, tmp_path: Path) -> None:
    since = dt.datetime.now(dt.UTC).isoformat()
    picks: list[str] = []
    with stack.client("picker.hf") as picker:
        for _ in range(3):
            resp = picker.get("/api/picking/tasks", params={"page_size": 1})
            assert resp.status_code == 200
            picks.append(resp.headers["X-Decision-Id"])
        assert picker.get("/api/orders", params={"page_size": 1}).status_code == 200  # orders:view stays
        assert_refused(picker.get("/api/reports/finance"), 403, "missing_permission")  # denied before and after
    with stack.client("temp.picker01") as temp:  # another role with orders:pick: untouched by the draft
        assert temp.get("/api/picking/tasks", params={"page_size": 1}).status_code == 200
    with stack.client("packer.hf") as packer:
        last = packer.get("/api/orders", params={"page_size": 1})
        assert last.status_code == 200
    stack.audit_record(last.headers["X-Decision-Id"])  # the replay reads the trail: every record is in it
    picked = stack.audit_record(picks[-1])
    detail = picked["detail"] if isinstance(picked["detail"], dict) else json.loads(picked["detail"])
    assert detail["input"]["action"] == {"module": "orders", "verb": "pick", "also": []}, "the decision log"

    draft = _draft_without(stack, tmp_path, "picker", "orders:pick")
    out = _replay(stack, draft, since, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    assert report["replayed"] >= 7 and report["failed"] == 0
    assert report["baseline"] == picked["policy_revision"] and report["draft"] != report["baseline"]
    assert report["changed"] == 3 and report["widening"] == 0
    [group] = report["groups"]
    assert (group["kind"], group["roles"], group["module"], group["verb"], group["route"]) == (
        "revoked", picked["roles"], "orders", "pick", "/api/picking/tasks")
    assert group["records"] == 3 and group["examples"] == picks
    assert group["detail"].endswith("-> missing_permission")

    gate = _replay(stack, draft, since, "--max-changes", "2")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "would change, 0 of them widen access" in gate.stdout and "more than --max-changes 2" in gate.stderr


def test_a_draft_that_widens_access_is_reported_as_widening(stack: Stack, tmp_path: Path) -> None:
    since = dt.datetime.now(dt.UTC).isoformat()
    with stack.client("picker.hf") as picker:
        denied = assert_refused(picker.get("/api/inventory", params={"page_size": 1}), 403, "missing_permission")
    stack.audit_record(denied["decision_id"])
    draft = tmp_path / "draft"
    shutil.copytree(stack.stack.settings.policy_dir, draft)
    roles = draft / "wms" / "roles" / "data.yaml"
    text = roles.read_text(encoding="utf-8")
    roles.write_text(text.replace("permissions: [portal:view, orders:view, orders:pick, orders:scan]",
                                  "permissions: [portal:view, orders:view, orders:pick, orders:scan, "
                                  "inventory:view]", 1), encoding="utf-8")
    out = _replay(stack, draft, since, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    granted = [g for g in report["groups"] if g["kind"] == "granted"]
    assert [(g["module"], g["records"], g["examples"]) for g in granted] == [
        ("inventory", 1, [denied["decision_id"]])]
    assert report["widening"] >= 1 and report["groups"][0]["kind"] == "granted", "widening changes come first"


def test_a_draft_that_does_not_compile_is_refused_with_the_compiler_output(stack: Stack, tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    shutil.copytree(stack.stack.settings.policy_dir, draft)
    (draft / "wms" / "authz" / "broken_test.rego").write_text("package wms.authz\n\ntest_x if {\n", encoding="utf-8")
    out = _replay(stack, draft, "1h")
    assert out.returncode == 2
    assert "draft" in out.stderr and "does not build" in out.stderr and "rego_parse_error" in out.stderr
