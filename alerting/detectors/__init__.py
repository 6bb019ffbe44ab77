"""The detectors (one module each) and the set the service runs."""

from __future__ import annotations

from alerting.detectors.audit_patterns import (
    BulkInventoryDeleteDetector,
    FieldRevealDetector,
    OrderStatusChurnDetector,
)
from alerting.detectors.base import Detection, Detector, WindowCounter
from alerting.detectors.high_risk import HighRiskDetector
from alerting.detectors.logins import BlockedAccountDetector, FailedLoginDetector
from alerting.detectors.privilege import PrivilegeBurstDetector
from alerting.detectors.sessions import MultiDeviceDetector
from alerting.detectors.travel import ImpossibleTravelDetector
from alerting.rules import Rules

__all__ = ["Detection", "Detector", "WindowCounter", "build_detectors"]


def build_detectors(rules: Rules) -> list[Detector]:
    """One detector per rule (disabled rules still track state, they just report nothing)."""
    return [MultiDeviceDetector(rules.multi_device_login), PrivilegeBurstDetector(rules.privilege_burst),
            HighRiskDetector(rules.high_risk_operation), FailedLoginDetector(rules.failed_login_burst),
            BlockedAccountDetector(rules.blocked_account_login), OrderStatusChurnDetector(rules.order_status_churn),
            BulkInventoryDeleteDetector(rules.bulk_inventory_deletes), FieldRevealDetector(rules.field_reveals),
            ImpossibleTravelDetector(rules.impossible_travel)]
