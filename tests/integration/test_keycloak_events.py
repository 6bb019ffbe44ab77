"""Keycloak pushes its user and admin events through the gateway's event listener (issue
"Keycloak event plugin and the alerting service"): the real Keycloak with the plugin, a
local receiver standing in for the alerting service on its port."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack
from wmsgate.realm import demo_overlay


class Sink:
    """An HTTP receiver on the alerting service's port that keeps every event and its signature."""

    def __init__(self, host: str, port: int) -> None:
        self.events: list[tuple[dict[str, Any], bytes, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.events.append((json.loads(body), body, self.headers.get("X-WMS-Signature", "")))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> tuple[dict[str, Any], bytes,
                                                                                                  str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if match(event[0]):
                    return event
            time.sleep(0.1)
        raise AssertionError(f"no matching event among {len(self.events)} received")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(stack: Stack) -> Iterator[Sink]:
    """The receiver in the alerting service's place (which is stopped meanwhile, then started again)."""
    stack.stack.stop_alerting()
    s = Sink(stack.stack.settings.host, stack.stack.settings.ports.alerting)
    try:
        yield s
    finally:
        s.close()
        stack.stack.start_alerting()


def _signed(body: bytes, signature: str) -> bool:
    expected = hmac.new(demo_overlay()["events_secret"].encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, f"sha256={expected}")


def test_a_failed_login_reaches_the_receiver_signed(stack: Stack, sink: Sink) -> None:
    started = int(time.time() * 1000)
    resp = httpx.post(f"{stack.stack.issuer}/protocol/openid-connect/token",
                      data={"grant_type": "password", "client_id": "wms-cli", "username": "packer.hf",
                            "password": "not-the-password"}, headers={"User-Agent": "wms-test-agent/1.0"})
    assert resp.status_code == 401
    event, body, signature = sink.wait_for(
        lambda e: e.get("type") == "LOGIN_ERROR" and e.get("time", 0) >= started
        and (e.get("details") or {}).get("username") == "packer.hf")
    assert event["kind"] == "user" and event["error"] == "invalid_user_credentials"
    assert event["ip_address"] == "127.0.0.1" and event["client_id"] == "wms-cli"
    assert event["user_agent"] == "wms-test-agent/1.0"  # Keycloak keeps none; the listener adds it
    assert _signed(body, signature), "the event's HMAC-SHA256 signature does not verify"


def test_an_admin_change_reaches_the_receiver_with_who_made_it(stack: Stack, sink: Sink) -> None:
    admin = stack.keycloak_admin()
    user_id = admin.get_user_id("temp.picker01")
    user = admin.get_user(user_id)
    started = int(time.time() * 1000)
    admin.update_user(user_id, {"firstName": user.get("firstName") or "临时",
                                "attributes": user.get("attributes") or {}})
    event, body, signature = sink.wait_for(
        lambda e: e.get("kind") == "admin" and e.get("time", 0) >= started
        and e.get("resource_path") == f"users/{user_id}")
    assert event["operation"] == "UPDATE" and event["resource_type"] == "USER"
    assert event["auth"]["user_id"] and "representation" in event
    assert _signed(body, signature)
