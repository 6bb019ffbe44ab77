"""What a notifier is, and the text every channel shows (zh-CN first, English beside it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from alerting.events import clean_text

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


#: Makes a value safe for one channel's markup (values come partly from outsiders: typed usernames).
Escape = Callable[[str], str]

#: Markdown (DingTalk, WeCom) characters that make links, mentions, emphasis or headings,
#: replaced by their full-width forms so that a value shows as typed and does nothing.
_MARKDOWN = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "[]()<>*_`#@!~|\\"})


def plain(value: Any) -> str:
    """A value as one clean line (no control characters), for plain text and mail."""
    return clean_text(value, 1000)


def markdown_safe(value: Any) -> str:
    """A value for DingTalk / WeCom markdown: no links, mentions, emphasis or headings."""
    return plain(value).translate(_MARKDOWN)


def slack_safe(value: Any) -> str:
    """A value for Slack's mrkdwn: ``&``, ``<``, ``>`` escaped (no links, no @channel)."""
    return plain(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(alert: dict[str, Any], escape: Escape = plain) -> str:
    """``[WMS 告警 alert/高 high] <title zh> / <title en>``."""
    severity = str(alert["severity"])
    return (f"[WMS 告警 alert/{SEVERITY_ZH.get(severity, escape(severity))} {escape(severity)}] "
            f"{escape(alert['title_zh'])} / {escape(alert['title_en'])}")


def text_lines(alert: dict[str, Any], console_url: str | None, escape: Escape = plain) -> list[str]:
    """The body of a notification, one fact per line, bilingual; values through ``escape``."""
    lines = [
        f"规则 rule: {escape(alert['rule'])}",
        f"对象 subject: {escape(alert['subject'])}",
        f"次数 count: {escape(alert['count'])}",
        f"首次 first seen (UTC): {escape(alert['first_seen'])}",
        f"最近 last seen (UTC): {escape(alert['last_seen'])}",
    ]
    for key, value in sorted(alert.get("facts", {}).items()):
        if value not in (None, "", []):
            lines.append(f"{escape(key)}: {escape(value)}")
    evidence = [escape(e) for e in alert.get("evidence") or []]
    lines.append(f"证据 evidence: {', '.join(evidence[:10])}{' ...' if len(evidence) > 10 else ''}")
    if console_url:
        lines.append(f"处理 handle: {console_url.rstrip('/')}/_gateway/ui/alerts")
    lines.append(f"告警编号 alert id: {escape(alert['alert_id'])}")
    return lines


def escalated(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as its escalation shows it: the title says it is still unacknowledged."""
    return {**alert, "title_zh": f"【未确认·升级】{alert['title_zh']}",
            "title_en": f"[unacknowledged, escalated] {alert['title_en']}"}


def digest_lines(alerts: list[dict[str, Any]], console_url: str | None, escape: Escape,
                 max_bytes: int, escalation: bool = False) -> tuple[str, list[str]]:
    """A digest of several alerts of one rule: ``(headline, lines)``, one line per alert (its
    headline and id) for as many as fit in ``max_bytes`` (UTF-8), then how many more there are
    and where to see them all. An ``escalation`` digest says they are still unacknowledged."""
    rule = escape(alerts[0]["rule"]) if alerts else ""
    n = len(alerts)
    title = (f"[WMS 告警升级 escalation] {rule}: {n} 条告警仍未确认 / {n} alerts still unacknowledged" if escalation
             else f"[WMS 告警 alert] {rule}: {n} 条 / {n} alerts")
    tail = f"处理 handle: {console_url.rstrip('/')}/_gateway/ui/alerts" if console_url else ""
    budget = max_bytes - len(title.encode("utf-8")) - len(tail.encode("utf-8")) - 200
    lines: list[str] = []
    for index, alert in enumerate(alerts):
        line = f"{headline(alert, escape)} · {escape(alert['subject'])} · {escape(alert['alert_id'])}"
        budget -= len(line.encode("utf-8")) + 4
        if budget < 0:
            rest = n - index
            lines.append(f"…… 另有 {rest} 条 / and {rest} more")
            break
        lines.append(line)
    if tail:
        lines.append(tail)
    return title, lines
