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

from alerting.notifiers.base import NotifierError, headline, text_lines
from alerting.notifiers.webhook import json_body, post_json


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with DingTalk's ``timestamp`` and ``sign`` query parameters."""
    to_sign = f"{timestamp_ms}\n{secret}".encode("utf-8")
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


class DingTalkNotifier:
    """A DingTalk group robot (markdown message; signed when a secret is set).

    Args:
        name: the notifier's name.
        url: the robot's webhook (``https://oapi.dingtalk.com/robot/send?access_token=...``).
        secret: the robot's signing secret (``SEC...``), or None.
        session: shared HTTP client session.
        console_url: where admins handle alerts (linked in the message), or None.
        timeout_seconds: limit of one attempt.
    """

    def __init__(self, name: str, url: str, secret: str | None, session: aiohttp.ClientSession,
                 console_url: str | None = None, timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._url, self._secret, self._session = url, secret, session
        self._console, self._timeout = console_url, timeout_seconds

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        url = dingtalk_signed_url(self._url, self._secret, int(time.time() * 1000)) if self._secret else self._url
        text = f"### {headline(alert)}\n\n" + "\n\n".join(f"- {line}" for line in text_lines(alert, self._console))
        payload = {"msgtype": "markdown", "markdown": {"title": alert["title_zh"][:64], "text": text}}
        status, answer = await post_json(self._session, url, json_body(payload), self._timeout)
        _errcode_ok(status, answer, "DingTalk")


class WeComNotifier:
    """A WeCom (企业微信) group robot (markdown message).

    Args:
        name: the notifier's name.
        url: the robot's webhook (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``).
        session: shared HTTP client session.
        console_url: where admins handle alerts, or None.
        timeout_seconds: limit of one attempt.
    """

    def __init__(self, name: str, url: str, session: aiohttp.ClientSession, console_url: str | None = None,
                 timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._url, self._session, self._console, self._timeout = url, session, console_url, timeout_seconds

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        content = f"**{headline(alert)}**\n" + "\n".join(f"> {line}" for line in text_lines(alert, self._console))
        payload = {"msgtype": "markdown", "markdown": {"content": content[:4000]}}
        status, answer = await post_json(self._session, self._url, json_body(payload), self._timeout)
        _errcode_ok(status, answer, "WeCom")


class SlackNotifier:
    """A Slack-compatible incoming webhook (``{"text": ...}``; any 2xx is a delivery).

    Args:
        name: the notifier's name.
        url: the incoming webhook URL.
        session: shared HTTP client session.
        console_url: where admins handle alerts, or None.
        timeout_seconds: limit of one attempt.
    """

    def __init__(self, name: str, url: str, session: aiohttp.ClientSession, console_url: str | None = None,
                 timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._url, self._session, self._console, self._timeout = url, session, console_url, timeout_seconds

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        text = f"*{headline(alert)}*\n" + "\n".join(text_lines(alert, self._console))
        status, answer = await post_json(self._session, self._url, json_body({"text": text}), self._timeout)
        if not 200 <= status < 300:
            raise NotifierError(f"Slack webhook answered {status}: {answer[:200]}")
