"""E-mail over SMTP (aiosmtplib): plain text, zh-CN first, UTF-8."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from alerting.notifiers.base import NotifierError, headline, text_lines


class EmailNotifier:
    """Sends each alert as one message to every recipient.

    Args:
        name: the notifier's name.
        host, port: the SMTP server.
        sender: the From address.
        recipients: the To addresses.
        security: ``none``, ``starttls`` or ``tls`` (implicit TLS, port 465).
        username, password: SMTP AUTH credentials, or None.
        console_url: where admins handle alerts, or None.
        timeout_seconds: limit of one attempt.
        tls_context: how the server's certificate is verified (None: the system's CAs).
    """

    def __init__(self, name: str, host: str, port: int, sender: str, recipients: list[str], security: str = "starttls",
                 username: str | None = None, password: str | None = None, console_url: str | None = None,
                 timeout_seconds: float = 20.0, tls_context: ssl.SSLContext | None = None) -> None:
        self.name = name
        self._host, self._port, self._sender, self._recipients = host, port, sender, recipients
        self._security, self._username, self._password = security, username, password
        self._console, self._timeout = console_url, timeout_seconds
        self._tls = tls_context

    def message(self, alert: dict[str, Any]) -> EmailMessage:
        """The message for ``alert`` (``Message-ID`` derived from the alert id)."""
        msg = EmailMessage()
        msg["Subject"] = headline(alert)[:900]
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["Message-ID"] = make_msgid(idstring=alert["alert_id"], domain="wmsgate.alerts")
        msg["X-WMS-Alert-Id"] = alert["alert_id"]
        msg.set_content("\n".join([alert["title_zh"], alert["title_en"], "", *text_lines(alert, self._console)]),
                        charset="utf-8")
        return msg

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        try:
            message = self.message(alert)
        except ValueError as exc:  # a header the mail library refuses; never retried in vain
            raise NotifierError(f"cannot build the message: {exc}") from exc
        try:
            await aiosmtplib.send(message, hostname=self._host, port=self._port,
                                  username=self._username, password=self._password,
                                  use_tls=self._security == "tls", start_tls=self._security == "starttls",
                                  timeout=self._timeout, tls_context=self._tls)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifierError(f"SMTP {self._host}:{self._port}: {type(exc).__name__}: {exc}") from exc
