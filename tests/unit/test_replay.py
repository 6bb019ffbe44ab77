"""Policy replay's comparison of two decisions and its report (the real bundles are in
tests/integration/test_policy_replay.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from authorizer.authz.pdp import ApprovalRule, Decision, ExportControl, Obligations, Reason
from authorizer.authz.replay import ReplayPolicy, compare, replay


def _allow(row_filter: dict[str, tuple[str, ...]] | None = None, mask: tuple[str, ...] = (),
           approval: ApprovalRule | None = None) -> Decision:
    return Decision(True, 200, (Reason("allowed", "允许", "allowed"),), Obligations(row_filter or {}, mask, None,
                                                                                   approval), "rev")


DENY = Decision(False, 403, (Reason("missing_permission", "无权限", "no permission"),), Obligations(), "rev")


def test_a_flip_is_revoked_or_granted_with_the_reasons() -> None:
    assert compare(_allow(), DENY) == [("revoked", "allowed -> missing_permission")]
    assert compare(DENY, _allow()) == [("granted", "missing_permission -> allowed")]
    assert compare(DENY, DENY) == []


def test_row_filters_widen_and_narrow_per_dimension() -> None:
    hf = {"warehouse": ("HF",)}
    assert compare(_allow(hf), _allow({"warehouse": ("HF", "SH")})) == [("scope_widened", "warehouse+SH")]
    assert compare(_allow(hf), _allow({"warehouse": ("*",)})) == [("scope_widened", "warehouse=*")]
    assert compare(_allow(hf), _allow({})) == [("scope_widened", "warehouse=*")], "a dropped dimension is all rows"
    assert compare(_allow({}), _allow(hf)) == [("scope_narrowed", "warehouse=HF")]
    assert compare(_allow({"warehouse": ("HF", "SH")}), _allow({"warehouse": ("HF", "SZ")})) == [
        ("scope_widened", "warehouse+SZ"), ("scope_narrowed", "warehouse-SH")]
    assert compare(_allow({"warehouse": ("SH", "HF")}), _allow({"warehouse": ("HF", "SH")})) == []


def test_masks_and_approvals_are_compared() -> None:
    rule = ApprovalRule("order_delete", 1, 3600)
    assert compare(_allow(mask=("customer", "phone")), _allow(mask=("phone", "amount"))) == [
        ("unmasked", "customer"), ("masked", "amount")]
    assert compare(_allow(approval=rule), _allow()) == [("approval_dropped", "order_delete")]
    assert compare(_allow(), _allow(approval=rule)) == [("approval_added", "order_delete")]
    two = ApprovalRule("order_delete", 2, 3600)
    assert compare(_allow(approval=two), _allow(approval=rule)) == [
        ("approval_weakened", "order_delete: 2 approval(s) within 3600s -> 1 within 3600s")]
    assert compare(_allow(approval=rule), _allow(approval=two))[0][0] == "approval_strengthened"


def test_the_report_groups_changes_and_counts_what_it_could_not_replay() -> None:
    baseline = _FakePolicy({"picker.hf", "finance"})
    draft = _FakePolicy({"finance"})
    rows = [_row("d1", "picker.hf", "picker"), _row("d2", "picker.hf", "picker"), _row("d3", "finance", "finance"),
            {"decision_id": "d4", "roles": "", "detail": {}}]
    report = asyncio.run(replay(_aiter(rows), baseline, draft))  # type: ignore[arg-type]
    doc = report.as_dict()
    assert (doc["replayed"], doc["skipped"], doc["changed"], doc["widening"]) == (3, 1, 2, 0)
    [group] = doc["groups"]
    assert (group["kind"], group["roles"], group["module"], group["route"], group["records"], group["examples"]) == (
        "revoked", "picker", "orders", "/api/picking/tasks", 2, ["d1", "d2"])


def test_export_thresholds_that_rise_are_a_loosening() -> None:
    tight = Decision(True, 200, (Reason("allowed", "允许", "allowed"),),
                     Obligations(export=ExportControl(20, 10000)), "rev")
    loose = Decision(True, 200, (Reason("allowed", "允许", "allowed"),),
                     Obligations(export=ExportControl(1000, 10000)), "rev")
    assert compare(tight, loose) == [("export_loosened",
                                      "reason>20,approve>none,refuse>10000 -> reason>1000,approve>none,refuse>10000")]
    assert compare(loose, tight)[0][0] == "export_tightened"
    assert compare(tight, _allow())[0][0] == "export_loosened"


def test_an_export_approval_raised_or_weakened_is_a_loosening() -> None:
    def export(approve: int | None, approvals: int) -> Decision:
        rule = ApprovalRule("large_export", approvals, 86400) if approvals else None
        return Decision(True, 200, (Reason("allowed", "允许", "allowed"),),
                        Obligations(export=ExportControl(20, 10000, (), approve, rule)), "rev")

    assert compare(export(40, 1), export(400, 1))[0][0] == "export_loosened"  # held later
    assert compare(export(40, 2), export(40, 1))[0][0] == "export_loosened"  # fewer approvers
    assert compare(export(40, 1), export(None, 0))[0][0] == "export_loosened"  # never held
    assert compare(export(400, 1), export(40, 1)) == [
        ("export_tightened", "reason>20,approve>400,refuse>10000 -> reason>20,approve>40,refuse>10000")]


class _FakePolicy(ReplayPolicy):
    """A stand-in for a Wasm bundle: allows the usernames in ``allowed``."""

    def __init__(self, allowed: set[str]) -> None:
        object.__setattr__(self, "revision", "fake")
        object.__setattr__(self, "allowed", allowed)

    def decide(self, policy_input: dict[str, Any]) -> Decision:
        return _allow() if policy_input["subject"]["username"] in self.allowed else DENY  # type: ignore[attr-defined]


def _row(decision_id: str, username: str, roles: str) -> dict[str, Any]:
    return {"decision_id": decision_id, "roles": roles, "module": "orders", "verb": "pick",
            "detail": {"input": {"subject": {"username": username}, "request": {"route": "/api/picking/tasks"}}}}


async def _aiter(rows: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for row in rows:
        yield row
