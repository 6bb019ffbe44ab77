"""What every detector shares: the detection it reports and a sliding-window counter."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerting.events import SecurityEvent


@dataclass(frozen=True)
class Detection:
    """One sighting of a suspicious pattern (several are grouped into one alert).

    Attributes:
        rule: the rule name (``multi_device_login``, ``privilege_burst``...).
        severity: ``critical``, ``high``, ``medium`` or ``low``.
        group_key: detections with the same key within ``group_window_ms`` are one alert.
        subject: who or what the alert is about (a username, an address, an order).
        title_zh, title_en: one line for people (zh-CN first).
        evidence: keys of the events that make it up (``user:<keycloak event id>``,
            ``admin:<id>``, ``decision:<audit decision id>``).
        at_ms: time of the newest event, ms since the epoch (UTC).
        group_window_ms: the rule's grouping window, ms.
        facts: details for the notification (devices, operation, counts...).
    """

    rule: str
    severity: str
    group_key: str
    subject: str
    title_zh: str
    title_en: str
    evidence: tuple[str, ...]
    at_ms: int
    group_window_ms: int
    facts: dict[str, Any] = field(default_factory=dict)


class Detector(Protocol):
    """A detector sees every event once, in arrival order, and reports what it finds."""

    name: str

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """Take ``event`` into account; return the detections it completes (often none)."""
        ...


class WindowCounter:
    """Events per key within a sliding time window (events may arrive out of order).

    Args:
        window_ms: the window, ms.
        max_per_key: memory bound per key (the oldest entries go first).
    """

    def __init__(self, window_ms: int, max_per_key: int = 1000) -> None:
        self.window_ms = window_ms
        self._max = max_per_key
        self._entries: dict[str, list[tuple[int, str]]] = {}
        self._adds = 0

    def add(self, key: str, at_ms: int, evidence: str) -> list[str]:
        """Count one event; returns the evidence of every event of ``key`` in the window
        ending at ``at_ms`` (this one included), oldest first."""
        self._adds += 1
        if self._adds % 1000 == 0:  # keys of people and addresses long quiet go (bounded memory)
            self.forget_idle(at_ms)
        entries = self._entries.setdefault(key, [])
        bisect.insort(entries, (at_ms, evidence))
        newest = entries[-1][0]
        cut = bisect.bisect_left(entries, (newest - self.window_ms, ""))
        if cut or len(entries) > self._max:
            del entries[:max(cut, len(entries) - self._max)]
        low = bisect.bisect_left(entries, (at_ms - self.window_ms, ""))
        high = bisect.bisect_right(entries, (at_ms, "\uffff"))
        return [e for _, e in entries[low:high]]

    def forget_idle(self, now_ms: int) -> None:
        """Drop keys whose newest event left the window (bounds memory over time)."""
        for key in [k for k, v in self._entries.items() if not v or v[-1][0] < now_ms - self.window_ms]:
            del self._entries[key]
