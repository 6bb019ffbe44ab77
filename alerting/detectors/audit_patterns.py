"""Detector 6: patterns in the gateway's audit trail: one order's status changed again
and again, many inventory records deleted in a short window, and one person revealing
many masked fields (time-boxed reveals, :mod:`authorizer.enforce.reveals`).

Only requests that reached the WMS and succeeded (``upstream_status`` 2xx) count, the
same rule as ``authorizer.audit.anomalies`` (the on-demand queries of ``wmsgate audit``).
"""

from __future__ import annotations

from alerting.detectors.base import Detection, WindowCounter
from alerting.events import DECISION, SecurityEvent
from alerting.rules import WindowCountRule
from authorizer.audit.anomalies import STATUS_CHANGING_VERBS


def _succeeded(event: SecurityEvent) -> bool:
    status = event.details.get("upstream_status")
    return event.kind == DECISION and isinstance(status, int) and 200 <= status < 300


class OrderStatusChurnDetector:
    """``threshold`` successful status changes (update, pick, review, pack, ship) of one order."""

    name = "order_status_churn"

    def __init__(self, rule: WindowCountRule) -> None:
        self._rule = rule
        self._orders = WindowCounter(rule.window_seconds * 1000)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector` (a batch request counts for each of its orders)."""
        details = event.details
        if not self._rule.enabled or not _succeeded(event) or details.get("module") != "orders" \
                or details.get("verb") not in STATUS_CHANGING_VERBS:
            return []
        found = []
        for order in {o.strip() for o in str(details.get("resource_id") or "").split(",") if o.strip()}:
            evidence = self._orders.add(order, event.time_ms, event.key)
            if len(evidence) < self._rule.threshold:
                continue
            minutes = self._rule.window_seconds // 60
            found.append(Detection(
                rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{order}", subject=order,
                title_zh=f"订单 {order} 的状态在 {minutes} 分钟内被修改 {len(evidence)} 次",
                title_en=f"order {order}'s status changed {len(evidence)} times within {minutes} min",
                evidence=tuple(evidence), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
                facts={"order": order, "changes": len(evidence), "last_person": event.username,
                       "last_verb": details.get("verb"), "warehouse": details.get("warehouse") or ""}))
        return found


class BulkInventoryDeleteDetector:
    """``threshold`` successful inventory deletions in one warehouse."""

    name = "bulk_inventory_deletes"

    def __init__(self, rule: WindowCountRule) -> None:
        self._rule = rule
        self._warehouses = WindowCounter(rule.window_seconds * 1000)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        details = event.details
        if not self._rule.enabled or not _succeeded(event) or details.get("module") != "inventory" \
                or details.get("verb") != "delete":
            return []
        warehouse = str(details.get("warehouse") or "?")
        evidence = self._warehouses.add(warehouse, event.time_ms, event.key)
        if len(evidence) < self._rule.threshold:
            return []
        minutes = self._rule.window_seconds // 60
        return [Detection(
            rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{warehouse}",
            subject=f"warehouse {warehouse}",
            title_zh=f"仓库 {warehouse} 在 {minutes} 分钟内删除了 {len(evidence)} 条库存记录",
            title_en=f"{len(evidence)} inventory records deleted in warehouse {warehouse} within {minutes} min",
            evidence=tuple(evidence), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"warehouse": warehouse, "deletes": len(evidence), "last_person": event.username})]


class FieldRevealDetector:
    """``threshold`` time-boxed reveals of masked fields by one person (each is allowed and
    has a reason, but many in an hour is someone reading personal data one by one)."""

    name = "field_reveals"

    def __init__(self, rule: WindowCountRule) -> None:
        self._rule = rule
        self._people = WindowCounter(rule.window_seconds * 1000)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        details = event.details
        if not self._rule.enabled or event.kind != DECISION or event.type != "allow" \
                or details.get("verb") != "reveal":
            return []
        person = event.username or event.user_id or "?"
        evidence = self._people.add(person, event.time_ms, event.key)
        if len(evidence) < self._rule.threshold:
            return []
        minutes = self._rule.window_seconds // 60
        reveal = details.get("detail", {}).get("reveal") or {}
        return [Detection(
            rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{person}", subject=person,
            title_zh=f"{person} 在 {minutes} 分钟内临时查看了 {len(evidence)} 个脱敏字段",
            title_en=f"{person} revealed {len(evidence)} masked fields within {minutes} min",
            evidence=tuple(evidence), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"person": person, "reveals": len(evidence), "last_module": details.get("module"),
                   "last_record": details.get("resource_id"), "last_field": reveal.get("field"),
                   "last_reason": reveal.get("reason")})]
