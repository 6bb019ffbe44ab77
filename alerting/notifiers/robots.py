"""Group robots: DingTalk and WeCom (企业微信) custom robots, and Slack-compatible
incoming webhooks (Slack, Mattermost, Rocket.Chat...).

DingTalk's "加签" (signed) mode: ``timestamp`` (ms) and ``sign`` =
base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")) are added to the URL, per
DingTalk's custom robot documentation. Both DingTalk and WeCom answer 200 with
``{"errcode": 0}`` on success and a non-zero ``errcode`` otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import aiohttp

from alerting.notifiers.base import NotifierError, digest_lines, headline, markdown_safe, slack_safe, text_lines
from alerting.notifiers.webhook import json_body, post_json


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with DingTalk's ``timestamp`` and ``sign`` query parameters."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()).decode()
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={urllib.parse.quote_plus(sign)}"


def _errcode_ok(status: int, text: str, service: str) -> None:
    if status != 200:
        raise NotifierError(f"{service} answered {status}: {text[:200]}")
    try:
        answer = json.loads(text)
    except ValueError:
        raise NotifierError(f"{service} answered 200 without JSON: {text[:200]}") from None
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        raise NotifierError(f"{service} refused the message: {text[:200]}")


class ChatRobot:
    """A group chat webhook: posts one JSON message per alert (subclasses say which).

    Args:
        name: the notifier's name.
        url: the robot's or incoming webhook's URL.
        session: shared HTTP client session.
        console_url: where admins handle alerts (linked in the message), or None.
        timeout_seconds: limit of one attempt.
    """

    service = "chat webhook"
    #: The largest message the service takes, UTF-8 bytes (a digest is cut to fit).
    max_bytes = 4000

    def __init__(self, name: str, url: str, session: aiohttp.ClientSession, console_url: str | None = None,
                 timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._url, self._session, self._console, self._timeout = url, session, console_url, timeout_seconds

    def payload(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The message body for ``alert``."""
        raise NotImplementedError

    def url(self) -> str:
        """Where to post (DingTalk adds its signature here)."""
        return self._url

    def check(self, status: int, answer: str) -> None:
        """Raise :class:`NotifierError` unless the answer means delivered (default: any 2xx)."""
        if not 200 <= status < 300:
            raise NotifierError(f"{self.service} answered {status}: {answer[:200]}")

    def digest_payload(self, alerts: list[dict[str, Any]], escalation: bool = False) -> dict[str, Any]:
        """One message for several alerts of one rule, or their escalation (see :func:`digest_lines`)."""
        raise NotImplementedError

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        await self._post(self.payload(alert))

    async def send_many(self, alerts: list[dict[str, Any]], escalation: bool = False) -> None:
        """Deliver several alerts of one rule as one message (the delivery worker paces robots
        so a burst of alerts is a digest, not a flood the service would refuse).

        Raises:
            NotifierError: not delivered.
        """
        single = len(alerts) == 1 and not escalation
        await self._post(self.payload(alerts[0]) if single else self.digest_payload(alerts, escalation))

    async def _post(self, payload: dict[str, Any]) -> None:
        status, answer = await post_json(self._session, self.url(), json_body(payload), self._timeout)
        self.check(status, answer)


class DingTalkNotifier(ChatRobot):
    """A DingTalk group robot (markdown message; signed when a secret is set); the robot's
    URL is ``https://oapi.dingtalk.com/robot/send?access_token=...``.

    Args:
        secret: the robot's signing secret (``SEC...``), or None; the rest as :class:`ChatRobot`.
    """

    service = "DingTalk"
    max_bytes = 20000

    def __init__(self, name: str, url: str, secret: str | None, session: aiohttp.ClientSession,
                 console_url: str | None = None, timeout_seconds: float = 10.0) -> None:
        super().__init__(name, url, session, console_url, timeout_seconds)
        self._secret = secret

    def url(self) -> str:
        """The robot URL, with ``timestamp`` and ``sign`` when a secret is set."""
        return dingtalk_signed_url(self._url, self._secret, int(time.time() * 1000)) if self._secret else self._url

    def payload(self, alert: dict[str, Any]) -> dict[str, Any]:
        """A markdown message."""
        lines = text_lines(alert, self._console, markdown_safe)
        text = f"### {headline(alert, markdown_safe)}\n\n" + "\n\n".join(f"- {line}" for line in lines)
        return {"msgtype": "markdown", "markdown": {"title": markdown_safe(alert["title_zh"])[:64], "text": text}}

    def digest_payload(self, alerts: list[dict[str, Any]], escalation: bool = False) -> dict[str, Any]:
        """A markdown digest."""
        title, lines = digest_lines(alerts, self._console, markdown_safe, self.max_bytes, escalation)
        text = f"### {title}\n\n" + "\n\n".join(f"- {line}" for line in lines)
        return {"msgtype": "markdown", "markdown": {"title": title[:64], "text": text}}

    def check(self, status: int, answer: str) -> None:
        """Delivered only with ``{"errcode": 0}``."""
        _errcode_ok(status, answer, self.service)


class WeComNotifier(ChatRobot):
    """A WeCom (企业微信) group robot (markdown message); the robot's URL is
    ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``."""

    service = "WeCom"
    max_bytes = 4096  # markdown content, per WeCom's group robot documentation

    def payload(self, alert: dict[str, Any]) -> dict[str, Any]:
        """A markdown message (WeCom takes at most 4096 bytes of content)."""
        lines = text_lines(alert, self._console, markdown_safe)
        content = f"**{headline(alert, markdown_safe)}**\n" + "\n".join(f"> {line}" for line in lines)
        return {"msgtype": "markdown", "markdown": {"content": content[:1300]}}

    def digest_payload(self, alerts: list[dict[str, Any]], escalation: bool = False) -> dict[str, Any]:
        """A markdown digest within WeCom's 4096 bytes."""
        title, lines = digest_lines(alerts, self._console, markdown_safe, self.max_bytes, escalation)
        return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n" + "\n".join(f"> {x}" for x in lines)}}

    def check(self, status: int, answer: str) -> None:
        """Delivered only with ``{"errcode": 0}``."""
        _errcode_ok(status, answer, self.service)


class SlackNotifier(ChatRobot):
    """A Slack-compatible incoming webhook (``{"text": ...}``; any 2xx is a delivery)."""

    service = "Slack webhook"

    def payload(self, alert: dict[str, Any]) -> dict[str, Any]:
        """A text message."""
        lines = text_lines(alert, self._console, slack_safe)
        return {"text": f"*{headline(alert, slack_safe)}*\n" + "\n".join(lines)}

    def digest_payload(self, alerts: list[dict[str, Any]], escalation: bool = False) -> dict[str, Any]:
        """A text digest."""
        title, lines = digest_lines(alerts, self._console, slack_safe, self.max_bytes, escalation)
        return {"text": f"*{title}*\n" + "\n".join(lines)}
