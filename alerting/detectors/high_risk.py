"""Detector 3: a high-risk operation (the policy's ``data.wms.high_risk`` table) was
requested, held for approval, refused or executed.

The gateway's audit records name the operation: ``detail.high_risk`` on the request
itself (set from the policy's decision) and ``detail.operation`` on the record of an
approved request's execution. Step-up challenges (401) are not alerts: the person has
not proven who they are yet, and the request that follows is.
"""

from __future__ import annotations

from alerting.detectors.base import Detection
from alerting.events import DECISION, SecurityEvent
from alerting.rules import HighRiskRule

_PHASES = {
    "held": ("已提交审批", "held for approval"),
    "refused": ("被拒绝", "refused"),
    "executed": ("已执行", "executed"),
    "failed": ("已发送但 WMS 报告失败", "reached the WMS, which reported a failure"),
}


def high_risk_phase(event: SecurityEvent) -> tuple[str, str] | None:
    """``(operation, phase)`` of a gateway decision about a high-risk operation, or None.

    Phases: ``held`` (four-eyes approval pending), ``refused`` (denied by the policy),
    ``executed`` (reached the WMS, directly or after approval), ``failed`` (reached the WMS,
    which answered 4xx/5xx, or reported a failure inside a 200 body: the audit record's
    ``upstream_status`` is the real outcome).
    """
    if event.kind != DECISION:
        return None
    details = event.details
    detail = details.get("detail") or {}
    status = details.get("upstream_status")
    failed = isinstance(status, int) and status >= 400
    if details.get("reason_code") == "approved_request_executed" and detail.get("operation"):
        return str(detail["operation"]), "failed" if failed else "executed"
    operation = detail.get("high_risk")
    if not operation or details.get("http_status") == 401:
        return None
    if details.get("reason_code") == "approval_required":
        return str(operation), "held"
    if event.type == "deny":
        return str(operation), "refused"
    if failed:
        return str(operation), "failed"
    if status is not None:
        return str(operation), "executed"
    return None


class HighRiskDetector:
    """One alert per person, operation, resource and phase (repeats are grouped)."""

    name = "high_risk_operation"

    def __init__(self, rule: HighRiskRule) -> None:
        self._rule = rule

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        found = high_risk_phase(event)
        if found is None or not self._rule.enabled:
            return []
        operation, phase = found
        person = event.username or event.user_id or "unknown"
        resource = str(event.details.get("resource_id") or "")
        module = str(event.details.get("module") or "")
        zh, en = _PHASES[phase]
        what = f"{module} {resource}".strip()
        return [Detection(
            rule=self.name, severity=self._rule.severity,
            group_key=f"{self.name}|{operation}|{person}|{module}|{resource}|{phase}", subject=person,
            title_zh=f"高风险操作 {operation}:{person} 对 {what} 的请求{zh}",
            title_en=f"high-risk operation {operation}: {person}'s request on {what} {en}",
            evidence=(event.key,), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"operation": operation, "phase": phase, "person": person, "module": module,
                   "resource_id": resource, "warehouse": event.details.get("warehouse") or "",
                   "channel": event.details.get("channel") or "", "approval_id": event.details.get("approval_id"),
                   "ip": event.ip, "path": event.details.get("path") or ""})]
