"""Built-in anomaly queries over the audit trail (what a security team looks for first).

Each query reads only records of requests that reached the WMS and succeeded
(``upstream_status`` 2xx) unless it is about refusals, and returns findings with the
evidence (decision ids) an investigator opens next.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select

from authorizer.audit.store import AuditStore, audit_records

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUS_CHANGING_VERBS = ("update", "pick", "review", "pack", "ship")


@dataclass
class Finding:
    """One anomaly.

    Attributes:
        kind: ``order_status_churn``, ``bulk_inventory_deletes``, ``high_risk_after_hours`` or ``denial_spike``.
        subject: the order, person, or record concerned.
        count: how many records make it up.
        first_ms, last_ms: when it started and ended (ms since the epoch, UTC).
        evidence: decision ids of the records.
        summary: one line in English.
    """

    kind: str
    subject: str
    count: int
    first_ms: int
    last_ms: int
    evidence: list[str] = field(default_factory=list)
    summary: str = ""

    def document(self) -> dict[str, Any]:
        """A JSON-friendly dict (times as ISO 8601 UTC)."""
        def iso(ms: int) -> str:
            return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")
        return {"kind": self.kind, "subject": self.subject, "count": self.count, "first": iso(self.first_ms),
                "last": iso(self.last_ms), "summary": self.summary, "evidence": self.evidence[:50]}


def _densest_window(rows: list[dict[str, Any]], window_ms: int) -> list[dict[str, Any]]:
    """The largest run of ``rows`` (sorted by ts_ms) that fits in ``window_ms``."""
    best: list[dict[str, Any]] = []
    start = 0
    for end in range(len(rows)):
        while rows[end]["ts_ms"] - rows[start]["ts_ms"] > window_ms:
            start += 1
        if end - start + 1 > len(best):
            best = rows[start:end + 1]
    return best


def _by_person(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["username"]].append(row)
    return grouped


def _span(run: list[dict[str, Any]]) -> str:
    return f"{(run[-1]['ts_ms'] - run[0]['ts_ms']) / 1000:.0f}"


def _bursts(kind: str, groups: dict[str, list[dict[str, Any]]], window_s: int, threshold: int,
            describe: Callable[[str, list[dict[str, Any]]], str]) -> list[Finding]:
    """A finding for every group whose densest ``window_s`` holds at least ``threshold`` records."""
    found = []
    for subject, rows in groups.items():
        run = _densest_window(rows, window_s * 1000)
        if len(run) >= threshold:
            found.append(Finding(kind, subject, len(run), run[0]["ts_ms"], run[-1]["ts_ms"],
                                 [r["decision_id"] for r in run], describe(subject, run)))
    return found


def _ok(row: dict[str, Any]) -> bool:
    status = row.get("upstream_status")
    return status is not None and 200 <= status < 300


async def _rows(store: AuditStore, since: dt.datetime, *conditions: Any) -> list[dict[str, Any]]:
    t = audit_records.c
    stmt = select(t.decision_id, t.ts_ms, t.username, t.module, t.verb, t.resource_id, t.decision,
                  t.upstream_status, t.approval_id, t.reason_code).where(
        and_(t.ts_ms >= int(since.timestamp() * 1000), *conditions)).order_by(t.ts_ms)
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(stmt)).mappings()]


@dataclass(frozen=True)
class Thresholds:
    """When a pattern in the audit trail is a finding.

    Attributes:
        status_changes, status_window_s: an order whose status changed this often within this window (s).
        deletes, delete_window_s: one person deleting this many inventory records within this window (s).
        denials, denial_window_s: one person refused this often within this window (s).
        working_hours: local (Asia/Shanghai) hours [start, end) outside which a high-risk
            operation (anything run through an approval, any access change) is reported.
    """

    status_changes: int = 5
    status_window_s: int = 86_400
    deletes: int = 20
    delete_window_s: int = 300
    denials: int = 20
    denial_window_s: int = 600
    working_hours: tuple[int, int] = (8, 20)


async def find_anomalies(store: AuditStore, since: dt.datetime, thresholds: Thresholds | None = None
                         ) -> list[Finding]:
    """Run every built-in query over records since ``since`` (UTC) with ``thresholds`` (defaults:
    :class:`Thresholds`).

    Returns:
        Findings, the most records first.
    """
    th = thresholds or Thresholds()
    status_changes, status_window_s, deletes, delete_window_s = (th.status_changes, th.status_window_s, th.deletes,
                                                                 th.delete_window_s)
    denials, denial_window_s, working_hours = th.denials, th.denial_window_s, th.working_hours
    t = audit_records.c
    findings: list[Finding] = []

    orders = [r for r in await _rows(store, since, t.module == "orders", t.verb.in_(STATUS_CHANGING_VERBS))
              if _ok(r)]
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in orders:
        for order_no in filter(None, row["resource_id"].split(",")):
            by_order[order_no].append(row)
    findings += _bursts("order_status_churn", by_order, status_window_s, status_changes,
                        lambda order_no, run: f"order {order_no} changed {len(run)} times "
                                              f"(by {', '.join(sorted({r['username'] for r in run}))})")

    deleted = [r for r in await _rows(store, since, t.module == "inventory", t.verb == "delete") if _ok(r)]
    findings += _bursts("bulk_inventory_deletes", _by_person(deleted), delete_window_s, deletes,
                        lambda person, run: f"{person} deleted {len(run)} inventory records within {_span(run)} s")

    start_hour, end_hour = working_hours
    for row in await _rows(store, since, t.reason_code.in_(("approved_request_executed",))):
        local = dt.datetime.fromtimestamp(row["ts_ms"] / 1000, SHANGHAI)
        if not start_hour <= local.hour < end_hour:
            findings.append(Finding("high_risk_after_hours", row["resource_id"], 1, row["ts_ms"], row["ts_ms"],
                                    [row["decision_id"]],
                                    f"{row['module']}:{row['verb']} on {row['resource_id']} ran at "
                                    f"{local:%H:%M} Asia/Shanghai (approval {row['approval_id']})"))

    denied = await _rows(store, since, t.decision == "deny", t.username != "")
    findings += _bursts("denial_spike", _by_person(denied), denial_window_s, denials,
                        lambda person, run: f"{person} was refused {len(run)} times within {_span(run)} s")
    return sorted(findings, key=lambda f: -f.count)
