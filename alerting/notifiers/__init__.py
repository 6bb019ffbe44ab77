"""Where alerts go: generic signed webhook, DingTalk, WeCom, Slack-compatible, e-mail."""

from __future__ import annotations

from alerting.notifiers.base import Notifier, NotifierError
from alerting.notifiers.email import EmailNotifier, SmtpServer
from alerting.notifiers.robots import DingTalkNotifier, SlackNotifier, WeComNotifier
from alerting.notifiers.webhook import WebhookNotifier

__all__ = ["DingTalkNotifier", "EmailNotifier", "Notifier", "NotifierError", "SlackNotifier", "SmtpServer",
           "WeComNotifier", "WebhookNotifier"]
