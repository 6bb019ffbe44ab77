"""What a notifier is, and the text every channel shows (zh-CN first, English beside it)."""

from __future__ import annotations

from typing import Any, Protocol

SEVERITY_ZH = {"critical": "严重", "high": "高", "medium": "中", "low": "低"}


class NotifierError(Exception):
    """A delivery attempt failed (it will be retried); the message says why."""


class Notifier(Protocol):
    """A channel alerts are delivered to."""

    name: str

    async def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert document (:func:`alerting.store.alert_document`).

        Raises:
            NotifierError: not delivered (unreachable, refused, bad answer).
        """
        ...


def headline(alert: dict[str, Any]) -> str:
    """``[WMS 告警/高] <title zh> / <title en>``."""
    severity = alert["severity"]
    return f"[WMS 告警 alert/{SEVERITY_ZH.get(severity, severity)} {severity}] {alert['title_zh']} / {alert['title_en']}"


def text_lines(alert: dict[str, Any], console_url: str | None) -> list[str]:
    """The body of a notification, one fact per line, bilingual."""
    lines = [
        f"规则 rule: {alert['rule']}",
        f"对象 subject: {alert['subject']}",
        f"次数 count: {alert['count']}",
        f"首次 first seen (UTC): {alert['first_seen']}",
        f"最近 last seen (UTC): {alert['last_seen']}",
    ]
    for key, value in sorted(alert.get("facts", {}).items()):
        if value not in (None, "", []):
            lines.append(f"{key}: {value}")
    evidence = alert.get("evidence") or []
    lines.append(f"证据 evidence: {', '.join(evidence[:10])}{' ...' if len(evidence) > 10 else ''}")
    if console_url:
        lines.append(f"处理 handle: {console_url.rstrip('/')}/_gateway/ui/alerts")
    lines.append(f"告警编号 alert id: {alert['alert_id']}")
    return lines
