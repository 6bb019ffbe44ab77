"""Local receivers standing in for where alerts go: a webhook endpoint that can be taken
down and brought back, and an SMTP server (aiosmtpd). Both listen on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One alert a sink received."""

    alert: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    signature_ok: bool


class WebhookSink:
    """A generic JSON webhook receiver checking the ``X-WMS-Signature`` of each alert.

    Args:
        host, port: where to listen.
        secret: the HMAC key the alerting service signs with.
    """

    def __init__(self, host: str, port: int, secret: str) -> None:
        self.host, self.port, self.secret = host, port, secret
        self.received: list[Received] = []
        self.attempts_while_up = 0
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        """Start listening (again)."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(sink.secret.encode(), body, hashlib.sha256).hexdigest()
                signature_ok = hmac.compare_digest(expected, self.headers.get("X-WMS-Signature", ""))
                sink.attempts_while_up += 1
                sink.received.append(Received(json.loads(body)["alert"], time.monotonic(), signature_ok))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening (connections are refused until :meth:`up`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def matching(self, match: Callable[[dict[str, Any]], bool]) -> list[Received]:
        """Every received alert ``match`` accepts."""
        return [r for r in list(self.received) if match(r.alert)]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> Received:
        """The first received alert ``match`` accepts, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(match)
            if found:
                return found[0]
            time.sleep(0.05)
        rules = [f"{r.alert['rule']}:{r.alert['subject']}" for r in self.received[-20:]]
        raise AssertionError(f"no matching alert within {timeout}s; last received: {rules}")


class _Collect:
    def __init__(self, into: list[EmailMessage]) -> None:
        self._into = into

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self._into.append(message)
        return "250 OK"


class SmtpSink:
    """An SMTP server (aiosmtpd) keeping every message it receives."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[EmailMessage] = []
        self._controller = Controller(_Collect(self.messages), hostname=host, port=port)

    def start(self) -> None:
        """Start listening."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def wait_for(self, match: Callable[[EmailMessage], bool], timeout: float = 15.0) -> EmailMessage:
        """The first message ``match`` accepts, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if match(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no matching e-mail within {timeout}s among {len(self.messages)}")
