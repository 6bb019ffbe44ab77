"""One audit trail entry: who did what, when, how it was decided, from where, with what result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AuditRecord:
    """A decision, allowed or denied, as it is stored.

    Attributes:
        decision_id: unique id of the decision (also returned to the client).
        ts_ms: when the request arrived, milliseconds since the epoch (UTC).
        user_id, username, roles: who (empty when unauthenticated).
        module, verb, resource_id, warehouse, channel, order_type: what; scope values
            of several resources are joined with ``,``.
        decision: ``allow`` or ``deny``.
        reason_code, reason_zh, reason_en: why (the main reason).
        policy_revision: the policy that decided (empty when the PDP was not asked).
        client_ip, user_agent, device_id: from where.
        method, path, query: the request line as received.
        http_status: what the client got.
        upstream_status, upstream_ms: what the WMS answered and how long it took
            (None when nothing was forwarded).
        total_ms: time spent in the gateway for this request, milliseconds.
        detail: extra facts (JSON object), e.g. rows filtered by the safety net.
        approval_id: the four-eyes approval this record belongs to, if any.
    """

    decision_id: str
    ts_ms: int
    decision: str
    reason_code: str
    http_status: int
    method: str
    path: str
    query: str = ""
    user_id: str = ""
    username: str = ""
    roles: str = ""
    module: str = ""
    verb: str = ""
    resource_id: str = ""
    warehouse: str = ""
    channel: str = ""
    order_type: str = ""
    reason_zh: str = ""
    reason_en: str = ""
    policy_revision: str = ""
    client_ip: str = ""
    user_agent: str = ""
    device_id: str = ""
    upstream_status: int | None = None
    upstream_ms: float | None = None
    total_ms: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    approval_id: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The record as a flat dict of column values (a shallow copy; ``detail`` is shared)."""
        return dict(self.__dict__)
