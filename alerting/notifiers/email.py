"""E-mail over SMTP (aiosmtplib): plain text, zh-CN first, UTF-8."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from alerting.notifiers.base import NotifierError, headline, text_lines


@dataclass(frozen=True)
class SmtpServer:
    """Where and how messages are sent.

    Attributes:
        host, port: the SMTP server.
        security: ``none``, ``starttls`` or ``tls`` (implicit TLS, port 465).
        username, password: SMTP AUTH credentials, or None.
        timeout_seconds: limit of one attempt.
        tls_context: how the server's certificate is verified (None: the system's CAs).
    """

    host: str
    port: int
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 20.0
    tls_context: ssl.SSLContext | None = None


class EmailNotifier:
    """Sends each alert as one message to every recipient.

    Args:
        name: the notifier's name.
        server: the SMTP server and how to reach it.
        sender: the From address.
        recipients: the To addresses.
        console_url: where admins handle alerts, or None.
    """

    def __init__(self, name: str, server: SmtpServer, sender: str, recipients: list[str],
                 console_url: str | None = None) -> None:
        self.name = name
        self._server, self._sender, self._recipients, self._console = server, sender, recipients, console_url

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
            server = self._server
            await aiosmtplib.send(message, hostname=server.host, port=server.port,
                                  username=server.username, password=server.password,
                                  use_tls=server.security == "tls", start_tls=server.security == "starttls",
                                  timeout=server.timeout_seconds, tls_context=server.tls_context)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifierError(f"SMTP {self._server.host}:{self._server.port}: {type(exc).__name__}: {exc}") from exc
