"""Policy replay: re-decide recorded requests under a draft policy before it goes live.

Every PEP decision's audit record keeps the exact ``input`` the PDP decided on
(``detail.input``, as OPA's decision log does; the hash chain covers it). A replay
evaluates each recorded input under two Wasm bundles, the *baseline* (what is live) and
the *draft*, at the request's own time (``input.request.time_ms``: time-boxed grants and
step-up ages are judged as they were), and reports what the draft would change:

- ``revoked`` / ``granted``: the decision flips (allow -> deny / deny -> allow);
- ``scope_widened`` / ``scope_narrowed``: a list's row filter lets more / fewer rows through
  on some dimension (a dimension the filter drops, ``*``, or values added);
- ``unmasked`` / ``masked``: fields no longer / newly masked;
- ``approval_dropped`` / ``approval_added``: a four-eyes hold removed / added;
  ``approval_weakened`` / ``approval_strengthened``: fewer approvals or a longer wait / the reverse;
- ``export_loosened`` / ``export_tightened``: an export's row thresholds raised (or its
  control dropped) / lowered (or added).

Changes are grouped by kind, the person's roles, module, verb and route, with a few
decision ids of each group as examples.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

from authorizer.authz.bundle_signature import BundleRejected
from authorizer.authz.inprocess_pdp import evaluate_decision, instantiate, read_bundle
from authorizer.authz.opa_wasm import WasmPolicy, WasmPolicyError
from authorizer.authz.pdp import Decision, ExportControl

#: How many example decision ids a group keeps.
EXAMPLES = 5
#: Change kinds that give someone more than the baseline does (what a reviewer must look at first).
WIDENING = frozenset({"granted", "scope_widened", "unmasked", "approval_dropped", "approval_weakened",
                      "export_loosened"})


@dataclass(frozen=True)
class ReplayPolicy:
    """One side of a replay.

    Attributes:
        revision: the bundle's revision (``sha256:...``).
        policy: its instantiated Wasm module.
        entrypoint: the decision rule (``wms/authz/decision``).
    """

    revision: str
    policy: WasmPolicy
    entrypoint: str = "wms/authz/decision"

    def decide(self, policy_input: dict[str, Any]) -> Decision:
        """The decision for ``policy_input``.

        Raises:
            WasmPolicyError: the evaluation failed.
        """
        return evaluate_decision(self.policy, self.entrypoint, policy_input)[0]


def _filter_change(before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]) -> list[str]:
    """``scope_widened`` / ``scope_narrowed`` with the dimension and values, for a row filter change.

    A dimension missing from a filter is not narrowed on (all rows); ``*`` means all values.
    """
    changes: list[str] = []
    for dim in sorted(set(before) | set(after)):
        was, now = before.get(dim), after.get(dim)
        all_was, all_now = was is None or "*" in was, now is None or "*" in now
        if all_was and all_now:
            continue
        if all_now:
            changes.append(f"scope_widened:{dim}=*")
        elif all_was:
            changes.append(f"scope_narrowed:{dim}={','.join(sorted(now or ()))}")
        else:
            added, removed = sorted(set(now or ()) - set(was or ())), sorted(set(was or ()) - set(now or ()))
            if added:
                changes.append(f"scope_widened:{dim}+{','.join(added)}")
            if removed:
                changes.append(f"scope_narrowed:{dim}-{','.join(removed)}")
    return changes


def compare(before: Decision, after: Decision) -> list[tuple[str, str]]:
    """What ``after`` changes relative to ``before`` for the same input.

    Returns:
        ``(kind, detail)`` pairs (kinds as in the module docstring); empty when they agree on
        the decision and on every obligation.
    """
    if before.allow != after.allow:
        return [("revoked", f"{before.reason.code} -> {after.reason.code}")] if before.allow else [
            ("granted", f"{before.reason.code} -> {after.reason.code}")]
    if not before.allow:
        return []
    b, a = before.obligations, after.obligations
    found: list[tuple[str, str]] = []
    for change in _filter_change(b.row_filter, a.row_filter):
        kind, _, detail = change.partition(":")
        found.append((kind, detail))
    unmasked, masked = sorted(set(b.mask) - set(a.mask)), sorted(set(a.mask) - set(b.mask))
    if unmasked:
        found.append(("unmasked", ",".join(unmasked)))
    if masked:
        found.append(("masked", ",".join(masked)))
    if b.approval is not None and a.approval is None:
        found.append(("approval_dropped", b.approval.operation))
    elif a.approval is not None and b.approval is None:
        found.append(("approval_added", a.approval.operation))
    elif a.approval is not None and b.approval is not None and a.approval != b.approval:
        weaker = a.approval.approvals < b.approval.approvals or a.approval.expires_seconds > b.approval.expires_seconds
        found.append(("approval_weakened" if weaker else "approval_strengthened",
                      f"{b.approval.operation}: {b.approval.approvals} approval(s) within {b.approval.expires_seconds}s"
                      f" -> {a.approval.approvals} within {a.approval.expires_seconds}s"))
    if b.export != a.export:
        found.append(_export_change(b.export, a.export))
    return found


def _export_change(before: ExportControl | None, after: ExportControl | None) -> tuple[str, str]:
    """``export_loosened`` when a threshold rose (an approval threshold that went away counts as
    risen), the export approval got weaker, or the control went away; else ``export_tightened``."""
    def text(control: ExportControl | None) -> str:
        if control is None:
            return "none"
        approve = "none" if control.approve_over_rows is None else control.approve_over_rows
        return f"reason>{control.reason_over_rows},approve>{approve},refuse>{control.refuse_over_rows}"

    def approve_limit(control: ExportControl) -> int:
        return control.refuse_over_rows if control.approve_over_rows is None else control.approve_over_rows

    def approvals(control: ExportControl) -> int:
        return control.approval.approvals if control.approval is not None else 0

    loosened = after is None or (before is not None and (
        after.reason_over_rows > before.reason_over_rows or after.refuse_over_rows > before.refuse_over_rows
        or approve_limit(after) > approve_limit(before) or approvals(after) < approvals(before)))
    return ("export_loosened" if loosened else "export_tightened", f"{text(before)} -> {text(after)}")


@dataclass
class ChangeGroup:
    """Records with the same change for the same kind of caller and route.

    Attributes:
        kind: the change (module docstring).
        roles: the person's roles at the time (as recorded, comma-separated).
        module, verb, route: what was asked (the route map's template).
        detail: what changed, e.g. ``missing_permission`` reasons or ``warehouse+SH``.
        records: how many recorded requests would change this way.
        examples: up to :data:`EXAMPLES` of their decision ids.
    """

    kind: str
    roles: str
    module: str
    verb: str
    route: str
    detail: str
    records: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    """What a draft would change over the replayed records.

    Attributes:
        baseline, draft: the two bundles' revisions.
        replayed: records re-decided; skipped: records without a stored input (not PEP
            decisions, or recorded before inputs were kept); failed: inputs a bundle could
            not evaluate (their decision ids in ``failed_examples``).
        changed: records with at least one change; groups: the changes, grouped.
    """

    baseline: str
    draft: str
    replayed: int = 0
    skipped: int = 0
    failed: int = 0
    changed: int = 0
    failed_examples: list[str] = field(default_factory=list)
    groups: dict[tuple[str, ...], ChangeGroup] = field(default_factory=dict)

    @property
    def widening(self) -> int:
        """Records whose change gives more than the baseline (a grant, wider scope, an unmask, no approval)."""
        return sum(g.records for g in self.groups.values() if g.kind in WIDENING)

    def add(self, row: dict[str, Any], changes: list[tuple[str, str]]) -> None:
        """Count one replayed record (its audit columns) and its changes."""
        self.replayed += 1
        if not changes:
            return
        self.changed += 1
        route = str(((row.get("detail") or {}).get("input") or {}).get("request", {}).get("route", ""))
        for kind, detail in changes:
            key = (kind, row.get("roles", ""), row.get("module", ""), row.get("verb", ""), route, detail)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = ChangeGroup(kind, row.get("roles", ""), row.get("module", ""),
                                                       row.get("verb", ""), route, detail)
            group.records += 1
            if len(group.examples) < EXAMPLES:
                group.examples.append(str(row.get("decision_id", "")))

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data; groups sorted widening first, then by size."""
        groups = sorted(self.groups.values(), key=lambda g: (g.kind not in WIDENING, -g.records, g.kind, g.route))
        return {"baseline": self.baseline, "draft": self.draft, "replayed": self.replayed, "skipped": self.skipped,
                "failed": self.failed, "failed_examples": self.failed_examples, "changed": self.changed,
                "widening": self.widening, "groups": [g.__dict__ for g in groups]}


async def replay(rows: AsyncIterable[dict[str, Any]], baseline: ReplayPolicy, draft: ReplayPolicy) -> ReplayReport:
    """Re-decide every recorded input of ``rows`` (audit records as column dicts) under both bundles.

    Returns:
        The report. An input a bundle cannot evaluate is counted in ``failed``, not raised.
    """
    report = ReplayReport(baseline.revision, draft.revision)
    async for row in rows:
        policy_input = (row.get("detail") or {}).get("input")
        if not isinstance(policy_input, dict):
            report.skipped += 1
            continue
        try:
            before, after = baseline.decide(policy_input), draft.decide(policy_input)
        except WasmPolicyError:
            report.failed += 1
            if len(report.failed_examples) < EXAMPLES:
                report.failed_examples.append(str(row.get("decision_id", "")))
            continue
        report.add(row, compare(before, after))
    return report


def policy_from_bundle(tarball: bytes) -> ReplayPolicy:
    """A replay side from a Wasm bundle's bytes (``opa build -t wasm``; its signature, if any,
    is the caller's to check).

    Raises:
        BundleRejected: not a Wasm bundle this process can run.
    """
    members = read_bundle(tarball)
    return ReplayPolicy(str(members.manifest.get("revision", "")), instantiate(members))


__all__ = ["BundleRejected", "ChangeGroup", "ReplayPolicy", "ReplayReport", "compare", "policy_from_bundle", "replay"]
