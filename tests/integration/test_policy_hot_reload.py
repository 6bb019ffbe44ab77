"""Policy edits take effect without restarts; broken edits are rejected while the last good policy serves.

The test stack serves rego/base with a copy of the demo layer rego/demo (.state/test/policy), which these tests edit
and restore.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx

from tests.support.policy_edit import policy_dir, policy_status, wait_for
from tests.support.stack import Stack, assert_refused

__all__ = ["policy_dir"]  # the fixture, imported for pytest

SALES_MASK = """
reports.sales:
  - permission: order_amounts:view
    fields: ["rows[].revenue"]
"""


def _sales(stack: Stack, path: str) -> httpx.Response:
    with stack.client("ops.amazon") as c:
        return c.get(path)


def test_a_data_edit_changes_decisions_within_seconds_without_restarts(stack: Stack, policy_dir: Path) -> None:
    before = _sales(stack, "/api/reports/sales?channel=amazon")
    assert before.status_code == 200 and all(r["revenue"] is not None for r in before.json()["rows"])
    old_revision = stack.audit_record(before.headers["X-Decision-Id"])["policy_revision"]
    pids = {s.name: s.process.pid for s in stack.stack.services if s.process}

    masks = policy_dir / "wms" / "masks" / "data.yaml"
    masks.write_text(masks.read_text(encoding="utf-8") + SALES_MASK, encoding="utf-8")
    waited = wait_for(lambda: all(r["revenue"] is None for r in _sales(stack, "/api/reports/sales?channel=amazon")
                               .json()["rows"]), 10, "the new mask to apply")
    assert waited <= 5.0, f"the edit took {waited:.1f}s to apply"

    after = _sales(stack, "/api/reports/sales?channel=amazon")
    new_revision = stack.audit_record(after.headers["X-Decision-Id"])["policy_revision"]
    assert new_revision != old_revision and new_revision == policy_status(stack)["serving"]["revision"]
    csv_text = _sales(stack, "/api/reports/sales.csv?channel=amazon").text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert rows and all(row["revenue"] == "***" for row in rows)
    with stack.client("finance") as c:
        assert all(r["revenue"] is not None for r in c.get("/api/reports/sales").json()["rows"])
    assert pids == {s.name: s.process.pid for s in stack.stack.services if s.process}, "something restarted"


def test_a_broken_edit_is_rejected_and_the_last_good_policy_keeps_serving(stack: Stack, policy_dir: Path) -> None:
    good = policy_status(stack)["serving"]["revision"]
    (policy_dir / "wms" / "authz" / "typo_test.rego").write_text("package wms.authz_test\n\ntest_x if {\n",
                                                                  encoding="utf-8")
    wait_for(lambda: policy_status(stack)["rejected"] is not None, 30, "the broken edit to be rejected")
    status = policy_status(stack)
    assert status["serving"]["revision"] == good and status["status"] == "rejected_edit"
    assert "typo_test.rego" in status["rejected"]["error"] and "rego_parse_error" in status["rejected"]["error"]
    health = httpx.get(f"{stack.proxy}/_gateway/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["policy"]["rejected_edit"]["revision"] == status["rejected"]["revision"]
    assert any("rejected" in w for w in health.json()["warnings"])
    with stack.client("picker.hf") as c:
        tasks = c.get("/api/picking/tasks")
        finance = c.get("/api/reports/finance")
    assert tasks.status_code == 200
    assert_refused(finance, 403, "missing_permission")
    assert stack.audit_record(tasks.headers["X-Decision-Id"])["policy_revision"] == good


def test_an_edit_that_fails_the_policy_tests_is_rejected(stack: Stack, policy_dir: Path) -> None:
    good = policy_status(stack)["serving"]["revision"]
    roles = policy_dir / "wms" / "roles" / "data.yaml"
    roles.write_text(roles.read_text(encoding="utf-8").replace(
        "permissions: [portal:view, orders:view, orders:pick, orders:scan]\ntemp_picker",
        "permissions: [portal:view, orders:view, orders:pick, orders:scan, inventory:update]\ntemp_picker"),
        encoding="utf-8")
    assert "inventory:update]\ntemp_picker" in roles.read_text(encoding="utf-8")
    wait_for(lambda: policy_status(stack)["rejected"] is not None, 30, "the edit to be rejected by opa test")
    assert policy_status(stack)["serving"]["revision"] == good
    assert "test_every_named_cell_of_the_role_matrix_holds" in policy_status(stack)["rejected"]["error"]
    with stack.client("picker.hf") as c:
        resp = c.post("/api/inventory/adjust", json={"warehouse": "HF", "location": "A01-01", "sku": "SKU00001",
                                                      "delta": 1, "reason": "x"})
    assert_refused(resp, 403, "missing_permission")


def test_a_deployment_layer_holding_rules_is_rejected(stack: Stack, policy_dir: Path) -> None:
    """Rules are the base layer's: a deployment's layer cannot add to package wms.authz (a rule
    there could lift the hold on access changes)."""
    good = policy_status(stack)["serving"]["revision"]
    (policy_dir / "wms" / "authz" / "lift.rego").write_text(
        'package wms.authz\n\nmatched_operations contains "aa" if input.subject.username == "admin1"\n',
        encoding="utf-8")
    wait_for(lambda: policy_status(stack)["rejected"] is not None, 30, "the rule to be rejected")
    status = policy_status(stack)
    assert status["serving"]["revision"] == good and "lift.rego" in status["rejected"]["error"]
    assert "base layer" in status["rejected"]["error"]
